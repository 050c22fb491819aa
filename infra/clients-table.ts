/**
 * The single DynamoDB table the aggregator writes, the summarizer writes and
 * reads, and the API reads, laid out exactly as contract/resources.ts TABLE
 * says: generic string keys, TTL, and no secondary index (every read is a
 * Query on an exact partition key, see contract/table-keys.ts).
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import {
  type Attribute,
  AttributeType,
  BillingMode,
  Table,
  TableEncryption,
} from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { type KeyAttribute, RESOURCE_NAMES, TABLE } from '../contract/resources.js';
import { TABLE_CAPACITY_DEFAULTS } from './config.js';

/** Settings of the clients table. */
export interface ClientsTableProps {
  namePrefix: string;
  /** Production turns on deletion protection and retains the table on removal. */
  production: boolean;
  /**
   * Provisioned capacity under auto scaling, up to these ceilings (write and
   * read capacity units); absent for an on-demand table.
   */
  provisioned?: { maxWriteCapacity: number; maxReadCapacity: number };
}

/** Maps a contract key attribute to its CDK form. */
function attribute(key: KeyAttribute): Attribute {
  return {
    name: key.name,
    type: key.type === 'S' ? AttributeType.STRING : AttributeType.NUMBER,
  };
}

/** Table with TTL and point-in-time recovery, keyed as the contract says, provisioned under auto scaling or on-demand. */
export class ClientsTable extends Construct {
  readonly table: Table;

  constructor(scope: Construct, id: string, props: ClientsTableProps) {
    super(scope, id);
    this.table = new Table(this, 'Table', {
      tableName: `${props.namePrefix}${RESOURCE_NAMES.table}`,
      partitionKey: attribute(TABLE.partitionKey),
      sortKey: attribute(TABLE.sortKey),
      ...(props.provisioned
        ? {
            billingMode: BillingMode.PROVISIONED,
            readCapacity: TABLE_CAPACITY_DEFAULTS.minCapacity,
            writeCapacity: TABLE_CAPACITY_DEFAULTS.minCapacity,
          }
        : { billingMode: BillingMode.PAY_PER_REQUEST }),
      // Blocks, roll-ups and summaries expire by TTL, never by a delete per item.
      timeToLiveAttribute: TABLE.ttlAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // An AWS owned key would also encrypt, but the AWS managed key leaves a
      // CloudTrail record of its use; callers need no KMS permission for either.
      encryption: TableEncryption.AWS_MANAGED,
      deletionProtection: props.production,
      removalPolicy: props.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    if (props.provisioned) {
      // Target tracking on the per-minute consumption. Writes arrive spread
      // over SEND_SPREAD_SECONDS of each minute, so the instantaneous rate is
      // at most 60/50 of the mean, under the 100/70 headroom the target
      // leaves; short bursts (the hourly roll-ups) draw on burst capacity, and
      // a throttled write is retried by the SDK and, failing that, by the
      // event source, overwriting the same bytes.
      const target = TABLE_CAPACITY_DEFAULTS.targetUtilizationPercent;
      const min = TABLE_CAPACITY_DEFAULTS.minCapacity;
      this.table
        .autoScaleWriteCapacity({
          minCapacity: min,
          maxCapacity: props.provisioned.maxWriteCapacity,
        })
        .scaleOnUtilization({ targetUtilizationPercent: target });
      this.table
        .autoScaleReadCapacity({ minCapacity: min, maxCapacity: props.provisioned.maxReadCapacity })
        .scaleOnUtilization({ targetUtilizationPercent: target });
    }
  }
}
