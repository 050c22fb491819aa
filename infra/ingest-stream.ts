/**
 * The Kinesis data stream the agents write connection logs into, encrypted at
 * rest with KMS. The AWS managed key (aws/kinesis) rather than a customer
 * managed one: producers then need no KMS permission and no per-request KMS
 * cost, and nothing in udpwatch needs key policies of its own.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Stream, StreamEncryption, StreamMode } from 'aws-cdk-lib/aws-kinesis';
import { Construct } from 'constructs';
import { RESOURCE_NAMES } from '../contract/resources.js';

/** Settings of the ingest stream. */
export interface IngestStreamProps {
  namePrefix: string;
  /** Provisioned shards; undefined means on-demand. */
  shardCount?: number;
  retentionHours: number;
  production: boolean;
}

/** A KMS-encrypted stream (AWS managed key), on-demand unless a shard count is given. */
export class IngestStream extends Construct {
  readonly stream: Stream;

  constructor(scope: Construct, id: string, props: IngestStreamProps) {
    super(scope, id);
    const removalPolicy = props.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const provisioned = props.shardCount !== undefined;
    this.stream = new Stream(this, 'Stream', {
      streamName: `${props.namePrefix}${RESOURCE_NAMES.stream}`,
      streamMode: provisioned ? StreamMode.PROVISIONED : StreamMode.ON_DEMAND,
      shardCount: props.shardCount,
      retentionPeriod: Duration.hours(props.retentionHours),
      encryption: StreamEncryption.MANAGED,
      // Records not yet aggregated are the only copy of that traffic.
      removalPolicy,
    });
  }
}
