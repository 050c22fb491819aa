/**
 * The single DynamoDB table the aggregator writes and the API reads, laid out
 * exactly as contract/resources.ts TABLE says (keys, indexes, TTL attribute).
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import {
  type Attribute,
  AttributeType,
  BillingMode,
  ProjectionType,
  Table,
  TableEncryption,
} from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { type KeyAttribute, RESOURCE_NAMES, TABLE } from '../contract/resources.js';

/** Settings of the clients table. */
export interface ClientsTableProps {
  namePrefix: string;
  /** Production turns on deletion protection and retains the table on removal. */
  production: boolean;
}

/** Maps a contract key attribute to its CDK form. */
function attribute(key: KeyAttribute): Attribute {
  return {
    name: key.name,
    type: key.type === 'S' ? AttributeType.STRING : AttributeType.NUMBER,
  };
}

/** On-demand table with TTL, point-in-time recovery and the contract's indexes. */
export class ClientsTable extends Construct {
  readonly table: Table;

  constructor(scope: Construct, id: string, props: ClientsTableProps) {
    super(scope, id);
    this.table = new Table(this, 'Table', {
      tableName: `${props.namePrefix}${RESOURCE_NAMES.table}`,
      partitionKey: attribute(TABLE.partitionKey),
      sortKey: attribute(TABLE.sortKey),
      billingMode: BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: TABLE.ttlAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // An AWS owned key would also encrypt, but the AWS managed key leaves a
      // CloudTrail record of its use; callers need no KMS permission for either.
      encryption: TableEncryption.AWS_MANAGED,
      deletionProtection: props.production,
      removalPolicy: props.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    for (const index of TABLE.indexes) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: attribute(index.partitionKey),
        sortKey: attribute(index.sortKey),
        projectionType:
          index.projection === 'KEYS_ONLY' ? ProjectionType.KEYS_ONLY : ProjectionType.ALL,
      });
    }
  }
}
