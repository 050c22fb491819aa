/**
 * The secret that signs the query API's cursors, and its rotation: every
 * ROTATION_DAYS the cursor-rotation function writes a fresh random key as
 * AWSCURRENT; the replaced one stays AWSPREVIOUS, which the query function
 * still accepts, so cursors issued just before a rotation keep working for
 * their hour. The rotation role may touch only this secret.
 */
import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { CfnRotationSchedule, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { BundledFunction } from './bundled-function.js';

/** Days between rotations. */
export const ROTATION_DAYS = 30;

/** The secret's stages the query function reads: AWSCURRENT signs, AWSPREVIOUS still verifies. */
export const CURSOR_KEY_STAGES = ['AWSCURRENT', 'AWSPREVIOUS'];

/** What the rotation function calls, on this secret only. */
export const ROTATION_ACTIONS = [
  'secretsmanager:DescribeSecret',
  'secretsmanager:GetSecretValue',
  'secretsmanager:PutSecretValue',
  'secretsmanager:UpdateSecretVersionStage',
];

/** Settings of the cursor key. */
export interface CursorKeyProps {
  logRetention: RetentionDays;
  logLevel: string;
  logKey: IKey;
  logGroupName: string;
}

/** The cursor secret with its rotation function and schedule. */
export class CursorKey extends Construct {
  readonly secret: Secret;
  readonly rotation: BundledFunction;

  constructor(scope: Construct, id: string, props: CursorKeyProps) {
    super(scope, id);
    this.secret = new Secret(this, 'Secret', {
      description:
        'udpwatch: signs the query API pagination cursors (AWSCURRENT signs, AWSPREVIOUS verifies)',
      // The first key; the first rotation (right after creation) replaces it.
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.rotation = new BundledFunction(this, 'Rotation', {
      name: 'cursor-rotation',
      description: 'Rotates the udpwatch cursor key (a fresh random key every 30 days)',
      memorySize: 256,
      timeout: Duration.seconds(30),
      logRetention: props.logRetention,
      logLevel: props.logLevel,
      logKey: props.logKey,
      logGroupName: props.logGroupName,
      environment: {},
    });
    this.rotation.role.addToPrincipalPolicy(
      new PolicyStatement({ actions: ROTATION_ACTIONS, resources: [this.secret.secretArn] }),
    );
    // Not Secret.addRotationSchedule: it also grants secretsmanager:GetRandomPassword
    // on "*", which this function does not call (it makes its own random key).
    this.rotation.function.addPermission('SecretsManagerInvokes', {
      principal: new ServicePrincipal('secretsmanager.amazonaws.com'),
      sourceAccount: Aws.ACCOUNT_ID,
    });
    const schedule = new CfnRotationSchedule(this, 'Schedule', {
      secretId: this.secret.secretArn,
      rotationLambdaArn: this.rotation.function.functionArn,
      rotationRules: { scheduleExpression: `rate(${ROTATION_DAYS} days)` },
    });
    // The invoke permission (a child of the function) and the role's policy come first.
    schedule.node.addDependency(this.rotation.function, this.rotation.role);
  }
}
