/**
 * Reads for the API and the metrics function. Every read is a Query on a key
 * (never a Scan); "active since T" is a key condition on lastSeen, so a read
 * touches only active items. Sharded partitions are read in parallel and
 * merged newest first.
 */
import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { TABLE } from '../../contract/resources.js';
import { AGENTS_PK, SERVICES_PK } from '../../contract/table-keys.js';

/** Where one shard's read stands: not started, finished, or after this item. */
export type ShardPosition = 'start' | 'done' | { lastSeen: number; pk: string; sk: string };

/** A raw item as the document client returns it. */
export type RawItem = Record<string, unknown>;

/** Where the reader reads. */
export interface ReaderOptions {
  doc: DynamoDBDocumentClient;
  table: string;
}

const [BY_ACTIVITY, BY_CLIENT_IP] = TABLE.indexes;

/** Upper bound on pages one paginated read follows (a safety net, not a limit in practice). */
const MAX_PAGES = 1000;

/** One page of a fan-out read and where each shard now stands. */
export interface ActivityPage {
  items: RawItem[];
  positions: ShardPosition[];
  /** Every shard is finished. */
  done: boolean;
}

/**
 * Reads the next `limit` items, newest first, last seen at or after `since`,
 * across the byActivity partitions given (one per shard), starting at `positions`.
 */
export async function readActivityPage(
  options: ReaderOptions,
  partitions: readonly string[],
  since: number,
  limit: number,
  positions: readonly ShardPosition[],
): Promise<ActivityPage> {
  const fetched = await Promise.all(
    partitions.map(async (partition, shard) => {
      const pos = positions[shard] ?? 'start';
      if (pos === 'done') return { items: [] as RawItem[], exhausted: true };
      const out = await options.doc.send(
        new QueryCommand({
          TableName: options.table,
          IndexName: BY_ACTIVITY.name,
          KeyConditionExpression: '#p = :p AND #ls >= :since',
          ExpressionAttributeNames: { '#p': BY_ACTIVITY.partitionKey.name, '#ls': 'lastSeen' },
          ExpressionAttributeValues: { ':p': partition, ':since': since },
          ScanIndexForward: false,
          Limit: limit,
          ...(pos === 'start'
            ? {}
            : {
                ExclusiveStartKey: {
                  [BY_ACTIVITY.partitionKey.name]: partition,
                  lastSeen: pos.lastSeen,
                  pk: pos.pk,
                  sk: pos.sk,
                },
              }),
        }),
      );
      return { items: out.Items ?? [], exhausted: out.LastEvaluatedKey === undefined };
    }),
  );
  const candidates = fetched.flatMap((f, shard) =>
    f.items.map((item, order) => ({ item, shard, order })),
  );
  candidates.sort(
    (a, b) =>
      Number(b.item.lastSeen) - Number(a.item.lastSeen) || a.shard - b.shard || a.order - b.order,
  );
  const taken = candidates.slice(0, limit);
  const consumed = new Array<number>(partitions.length).fill(0);
  const lastTaken: (RawItem | undefined)[] = new Array(partitions.length).fill(undefined);
  for (const c of taken) {
    consumed[c.shard]!++;
    lastTaken[c.shard] = c.item;
  }
  const next: ShardPosition[] = partitions.map((_, shard) => {
    const f = fetched[shard]!;
    const pos = positions[shard] ?? 'start';
    if (pos === 'done') return 'done';
    if (f.exhausted && consumed[shard] === f.items.length) return 'done';
    const last = lastTaken[shard];
    if (!last) return pos;
    return { lastSeen: Number(last.lastSeen), pk: String(last.pk), sk: String(last.sk) };
  });
  return {
    items: taken.map((c) => c.item),
    positions: next,
    done: next.every((p) => p === 'done'),
  };
}

/** Counts the items of the byActivity partitions last seen at or after `since`. */
export async function countActive(
  options: ReaderOptions,
  partitions: readonly string[],
  since: number,
): Promise<number> {
  const counts = await Promise.all(
    partitions.map(async (partition) => {
      let total = 0;
      let start: Record<string, unknown> | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const out = await options.doc.send(
          new QueryCommand({
            TableName: options.table,
            IndexName: BY_ACTIVITY.name,
            KeyConditionExpression: '#p = :p AND #ls >= :since',
            ExpressionAttributeNames: { '#p': BY_ACTIVITY.partitionKey.name, '#ls': 'lastSeen' },
            ExpressionAttributeValues: { ':p': partition, ':since': since },
            Select: 'COUNT',
            ExclusiveStartKey: start,
          }),
        );
        total += out.Count ?? 0;
        start = out.LastEvaluatedKey;
        if (!start) break;
      }
      return total;
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/** Reads a whole base-table partition (the services or agents list). */
async function readPartition(options: ReaderOptions, pk: string): Promise<RawItem[]> {
  const items: RawItem[] = [];
  let start: Record<string, unknown> | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const out = await options.doc.send(
      new QueryCommand({
        TableName: options.table,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey.name },
        ExpressionAttributeValues: { ':pk': pk },
        ExclusiveStartKey: start,
      }),
    );
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
    if (!start) break;
  }
  return items;
}

/** All services still retained, in name order. */
export function readServices(options: ReaderOptions): Promise<RawItem[]> {
  return readPartition(options, SERVICES_PK);
}

/** All agents still retained, in id order. */
export function readAgents(options: ReaderOptions): Promise<RawItem[]> {
  return readPartition(options, AGENTS_PK);
}

/** What one client IP talked to since `since`, newest first, at most `limit` entries. */
export async function readClientIp(
  options: ReaderOptions,
  partition: string,
  since: number,
  limit: number,
): Promise<{ items: RawItem[]; truncated: boolean }> {
  const out = await options.doc.send(
    new QueryCommand({
      TableName: options.table,
      IndexName: BY_CLIENT_IP.name,
      KeyConditionExpression: '#p = :p AND #ls >= :since',
      ExpressionAttributeNames: { '#p': BY_CLIENT_IP.partitionKey.name, '#ls': 'lastSeen' },
      ExpressionAttributeValues: { ':p': partition, ':since': since },
      ScanIndexForward: false,
      // One more than asked tells whether there is more without a second read.
      Limit: limit + 1,
    }),
  );
  const items = out.Items ?? [];
  return { items: items.slice(0, limit), truncated: items.length > limit };
}
