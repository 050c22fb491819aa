/**
 * The customer managed KMS key of the log groups that hold client addresses
 * (the functions' logs and the API access logs). Rotated yearly by KMS; its
 * key policy lets only CloudWatch Logs of this stack's region use it, and
 * only for log groups under this stack's prefix (the encryption context
 * CloudWatch Logs passes names the log group).
 */
import { Aws, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

/** What CloudWatch Logs does with a log group's key: data keys to encrypt, and reading them back. */
export const LOGS_KEY_ACTIONS = [
  'kms:Encrypt',
  'kms:Decrypt',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
  'kms:GenerateDataKey',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:DescribeKey',
];

/** Name of a log group of this stack: the key policy admits exactly these. */
export function logGroupName(stackName: string, part: string): string {
  return `/udpwatch/${stackName}/${part}`;
}

/** The log groups' key. */
export class LogsKey extends Construct {
  readonly key: Key;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const stack = Stack.of(this);
    this.key = new Key(this, 'Key', {
      description: `udpwatch ${stack.stackName}: log groups holding client addresses`,
      enableKeyRotation: true,
      // Logs expire with their retention; the key must outlive nothing else.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.key.addToResourcePolicy(
      new PolicyStatement({
        sid: 'CloudWatchLogsOfThisStack',
        principals: [new ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`)],
        actions: LOGS_KEY_ACTIONS,
        // In a key policy "*" is this key.
        resources: ['*'],
        conditions: {
          ArnLike: {
            'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:${logGroupName(stack.stackName, '*')}`,
          },
        },
      }),
    );
  }
}
