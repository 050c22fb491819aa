/**
 * The SNS topic every alarm notifies, encrypted with a key whose policy lets
 * CloudWatch publish to it; an e-mail subscription is optional.
 */
import { Aws, RemovalPolicy } from 'aws-cdk-lib';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { RESOURCE_NAMES } from '../contract/resources.js';

/** Settings of the alarm topic. */
export interface AlarmTopicProps {
  namePrefix: string;
  email?: string;
}

/** Encrypted SNS topic for alarm notifications. */
export class AlarmTopic extends Construct {
  readonly topic: Topic;
  readonly key: Key;

  constructor(scope: Construct, id: string, props: AlarmTopicProps) {
    super(scope, id);
    this.key = new Key(this, 'Key', {
      description: 'udpwatch alarm notifications',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // CloudWatch encrypts the notification it publishes to an encrypted topic;
    // these are the actions AWS documents for that, limited to this account.
    this.key.addToResourcePolicy(
      new PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    );
    this.topic = new Topic(this, 'Topic', {
      topicName: `${props.namePrefix}${RESOURCE_NAMES.alarmTopic}`,
      displayName: 'udpwatch alarms',
      masterKey: this.key,
      enforceSSL: true,
    });
    if (props.email !== undefined) {
      this.topic.addSubscription(new EmailSubscription(props.email));
    }
  }
}
