/**
 * What a host agent may do: put records into this one stream and read its
 * shape, nothing else. A customer managed policy that fleets attach to their
 * own instance or host roles, and optionally an EC2 role and instance
 * profile that already carry it.
 */
import {
  InstanceProfile,
  ManagedPolicy,
  PolicyStatement,
  Role,
  ServicePrincipal,
} from 'aws-cdk-lib/aws-iam';
import type { Stream } from 'aws-cdk-lib/aws-kinesis';
import { Construct } from 'constructs';

/** The only Kinesis call an agent makes (agent/kinesis-shipper.ts): PutRecords. */
export const AGENT_KINESIS_ACTIONS = ['kinesis:PutRecords'];

/** Settings of the agent access. */
export interface AgentAccessProps {
  stream: Stream;
  /** Also create an EC2 role and instance profile with the policy attached. */
  instanceProfile: boolean;
}

/** The agent policy and the optional EC2 role and instance profile. */
export class AgentAccess extends Construct {
  readonly policy: ManagedPolicy;
  readonly role?: Role;
  readonly instanceProfile?: InstanceProfile;

  constructor(scope: Construct, id: string, props: AgentAccessProps) {
    super(scope, id);
    this.policy = new ManagedPolicy(this, 'Policy', {
      description: 'udpwatch agent: put connection logs into the udpwatch stream',
      statements: [
        new PolicyStatement({
          sid: 'PutConnectionLogs',
          actions: AGENT_KINESIS_ACTIONS,
          resources: [props.stream.streamArn],
        }),
        // The stream is encrypted with the AWS managed key aws/kinesis, whose
        // key policy already lets Kinesis use it on the caller's behalf: no
        // KMS statement is needed here.
      ],
    });
    if (props.instanceProfile) {
      this.role = new Role(this, 'Role', {
        assumedBy: new ServicePrincipal('ec2.amazonaws.com'),
        description: 'udpwatch agent on EC2 instances',
        managedPolicies: [this.policy],
      });
      this.instanceProfile = new InstanceProfile(this, 'InstanceProfile', { role: this.role });
    }
  }
}
