/**
 * dynalite has no TTL, so local mode deletes expired items itself, on the
 * same `ttl` attribute (epoch seconds) the deployed table's TTL uses. A Scan
 * is fine here: this stands in for the service's own background process, not
 * a request path.
 */
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import { TABLE } from '../contract/resources.js';

export interface TtlSweeperOptions {
  dynamodb: DynamoDBClient;
  tableName: string;
  /** Time between sweeps (default 60 s). */
  intervalMs?: number;
  /** Clock in epoch milliseconds (tests pin it). */
  now?: () => number;
  /** Items per Scan page (default: DynamoDB's 1 MB pages). */
  pageSize?: number;
  /** Where a failed background sweep is reported (default console.error). */
  onError?: (err: unknown) => void;
}

export interface TtlSweeper {
  /** Deletes every item whose ttl is in the past; resolves to how many it deleted. */
  sweepOnce(): Promise<number>;
  /** Stops the background sweeps, waiting for one in progress. */
  stop(): Promise<void>;
}

/** Deletes run this many at a time. */
const DELETE_CONCURRENCY = 8;

/** Starts sweeping every intervalMs (first sweep after one interval). */
export function startTtlSweeper(options: TtlSweeperOptions): TtlSweeper {
  const { dynamodb, tableName } = options;
  const intervalMs = options.intervalMs ?? 60_000;
  const now = options.now ?? Date.now;
  const onError = options.onError ?? ((err: unknown) => console.error('TTL sweep failed:', err));
  const keyNames = [TABLE.partitionKey.name, TABLE.sortKey.name];
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  async function sweepOnce(): Promise<number> {
    const nowSeconds = String(Math.floor(now() / 1000));
    // Non-numeric ttl values never match a numeric comparison, as DynamoDB TTL ignores them.
    const expired = {
      ExpressionAttributeNames: { '#ttl': TABLE.ttlAttribute },
      ExpressionAttributeValues: { ':now': { N: nowSeconds } },
    };
    let deleted = 0;
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await dynamodb.send(
        new ScanCommand({
          TableName: tableName,
          FilterExpression: '#ttl < :now',
          ProjectionExpression: keyNames.map((_, i) => `#k${i}`).join(', '),
          ...expired,
          ExpressionAttributeNames: {
            ...expired.ExpressionAttributeNames,
            ...Object.fromEntries(keyNames.map((name, i) => [`#k${i}`, name])),
          },
          ExclusiveStartKey: startKey,
          Limit: options.pageSize,
        }),
      );
      const keys = page.Items ?? [];
      for (let i = 0; i < keys.length; i += DELETE_CONCURRENCY) {
        const results = await Promise.all(
          keys.slice(i, i + DELETE_CONCURRENCY).map(async (Key) => {
            try {
              // Re-checked at delete time: an item written to since the Scan keeps living.
              await dynamodb.send(
                new DeleteItemCommand({
                  TableName: tableName,
                  Key,
                  ConditionExpression: '#ttl < :now',
                  ...expired,
                }),
              );
              return 1;
            } catch (err) {
              if (err instanceof ConditionalCheckFailedException) return 0;
              throw err;
            }
          }),
        );
        deleted += results.reduce<number>((a, b) => a + b, 0);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return deleted;
  }

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweepOnce()
        .catch((err) => onError(err))
        .finally(schedule);
    }, intervalMs);
    timer.unref();
  };
  schedule();

  return {
    sweepOnce,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
