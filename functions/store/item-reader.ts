/**
 * Reads for the API and the metrics function. Every read is a Query on a key
 * (never a Scan). The indexes sort by activity bucket and hold keys only, so
 * "active since T" is the key condition `activeKey >= activityKeyFloor(activityBucket(T))`;
 * the items themselves come from BatchGetItem and are filtered on the exact
 * lastSeen (the oldest bucket also holds clients that went quiet shortly
 * before T). Sharded partitions are read in parallel and merged.
 */
import { BatchGetCommand, type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { ACTIVE_KEY_ATTRIBUTE, TABLE } from '../../contract/resources.js';
import {
  ACTIVITY_BUCKET_MS,
  AGENTS_PK,
  activityBucket,
  activityKey,
  activityKeyFloor,
  activityKeyPrefix,
  bucketOfActivityKey,
  type ItemKey,
  SERVICES_PK,
} from '../../contract/table-keys.js';

/** Where one shard's read stands: not started, finished, or after this index entry. */
export type ShardPosition = 'start' | 'done' | { bucket: number; pk: string; sk: string };

/** A raw item as the document client returns it. */
export type RawItem = Record<string, unknown>;

/** Where the reader reads. */
export interface ReaderOptions {
  doc: DynamoDBDocumentClient;
  table: string;
  /** Pause before the first retry of unprocessed BatchGetItem keys (ms, default 50; doubles). */
  retryDelayMs?: number;
}

const [BY_ACTIVITY, BY_CLIENT_IP] = TABLE.indexes;

/** Upper bound on pages one paginated read follows (a safety net, not a limit in practice). */
const MAX_PAGES = 1000;
/** BatchGetItem takes at most 100 keys a call. */
const BATCH_GET_KEYS = 100;
/** Attempts at keys DynamoDB left unprocessed (throttling) before the read fails. */
const BATCH_GET_ATTEMPTS = 8;
/** BatchGetItem calls in flight at once for one read. */
const BATCH_GET_IN_FLIGHT = 4;

/** An index entry of a KEYS_ONLY index: the table key and the bucket. */
interface IndexEntry extends ItemKey {
  bucket: number;
}

function entryOf(raw: RawItem): IndexEntry {
  return {
    pk: String(raw.pk),
    sk: String(raw.sk),
    bucket: bucketOfActivityKey(String(raw[ACTIVE_KEY_ATTRIBUTE])),
  };
}

const keyText = (k: ItemKey): string => `${k.pk}\u0000${k.sk}`;

/**
 * The index and key condition of "entries of `partition` in `bucket` and later
 * buckets" (`>=`) or "in `bucket` only" (`=`), for a Query.
 */
function bucketCondition(
  index: (typeof TABLE.indexes)[number],
  partition: string,
  bucket: number,
  match: '>=' | '=',
) {
  return {
    IndexName: index.name,
    KeyConditionExpression:
      match === '>=' ? '#p = :p AND #b >= :b' : '#p = :p AND begins_with(#b, :b)',
    ExpressionAttributeNames: { '#p': index.partitionKey.name, '#b': ACTIVE_KEY_ATTRIBUTE },
    ExpressionAttributeValues: {
      ':p': partition,
      ':b': match === '>=' ? activityKeyFloor(bucket) : activityKeyPrefix(bucket),
    },
  };
}

/**
 * Fetches items by key with BatchGetItem (100 keys a call), retrying the keys
 * DynamoDB leaves unprocessed with exponential backoff. Items that no longer
 * exist (TTL) are simply absent from the answer.
 */
export async function getItems(
  options: ReaderOptions,
  keys: readonly ItemKey[],
  projection?: readonly string[],
): Promise<Map<string, RawItem>> {
  const found = new Map<string, RawItem>();
  const chunks: ItemKey[][] = [];
  for (let i = 0; i < keys.length; i += BATCH_GET_KEYS) {
    chunks.push(keys.slice(i, i + BATCH_GET_KEYS));
  }
  const names = projection
    ? Object.fromEntries(['pk', 'sk', ...projection].map((n, i) => [`#a${i}`, n]))
    : undefined;
  const fetchChunk = async (chunk: ItemKey[]) => {
    let pending: Record<string, unknown>[] = chunk.map((k) => ({ pk: k.pk, sk: k.sk }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt >= BATCH_GET_ATTEMPTS) {
        throw new Error(
          `BatchGetItem on ${options.table}: ${pending.length} keys still unprocessed after ${BATCH_GET_ATTEMPTS} attempts`,
        );
      }
      if (attempt > 0) {
        const delay = (options.retryDelayMs ?? 50) * 2 ** (attempt - 1);
        await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random() / 2)));
      }
      const out = await options.doc.send(
        new BatchGetCommand({
          RequestItems: {
            [options.table]: {
              Keys: pending,
              ...(names
                ? {
                    ProjectionExpression: Object.keys(names).join(', '),
                    ExpressionAttributeNames: names,
                  }
                : {}),
            },
          },
        }),
      );
      for (const item of out.Responses?.[options.table] ?? []) {
        found.set(keyText({ pk: String(item.pk), sk: String(item.sk) }), item);
      }
      pending = (out.UnprocessedKeys?.[options.table]?.Keys ?? []) as Record<string, unknown>[];
    }
  };
  let next = 0;
  const worker = async () => {
    while (next < chunks.length) await fetchChunk(chunks[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(BATCH_GET_IN_FLIGHT, chunks.length) }, worker));
  return found;
}

/** Newest first; ties by key, so an order is the same on every read. */
function newestFirst(a: RawItem, b: RawItem): number {
  return (
    Number(b.lastSeen) - Number(a.lastSeen) ||
    String(a.pk).localeCompare(String(b.pk)) ||
    String(a.sk).localeCompare(String(b.sk))
  );
}

/** The items of `entries` still last seen at or after `since`, newest first. */
async function activeItems(
  options: ReaderOptions,
  entries: readonly ItemKey[],
  since: number,
): Promise<RawItem[]> {
  const found = await getItems(options, entries);
  const items: RawItem[] = [];
  for (const e of entries) {
    const item = found.get(keyText(e));
    if (item && typeof item.lastSeen === 'number' && item.lastSeen >= since) items.push(item);
  }
  return items.sort(newestFirst);
}

/** One page of a fan-out read and where each shard now stands. */
export interface ActivityPage {
  items: RawItem[];
  positions: ShardPosition[];
  /** Every shard is finished. */
  done: boolean;
}

/**
 * Reads the next (at most) `limit` items last seen at or after `since` across
 * the byActivity partitions given (one per shard), starting at `positions`.
 * Index entries are taken newest bucket first over all shards; a page holds
 * its items exactly newest first, and every item of a page is in the same or
 * a newer bucket than every item of the pages after it (so two pages may be
 * out of order by less than ACTIVITY_BUCKET_MS, never more). Entries of
 * clients that went quiet before `since` are skipped, and the index is read
 * on until the page is full or every shard is finished.
 */
export async function readActivityPage(
  options: ReaderOptions,
  partitions: readonly string[],
  since: number,
  limit: number,
  positions: readonly ShardPosition[],
): Promise<ActivityPage> {
  const sinceBucket = activityBucket(since);
  let current = partitions.map((_, shard) => positions[shard] ?? ('start' as ShardPosition));
  const items: RawItem[] = [];
  for (let round = 0; round < MAX_PAGES && items.length < limit; round++) {
    if (current.every((p) => p === 'done')) break;
    const want = limit - items.length;
    const fetched = await Promise.all(
      partitions.map(async (partition, shard) => {
        const pos = current[shard]!;
        if (pos === 'done') return { entries: [] as IndexEntry[], exhausted: true };
        const out = await options.doc.send(
          new QueryCommand({
            TableName: options.table,
            ...bucketCondition(BY_ACTIVITY, partition, sinceBucket, '>='),
            ScanIndexForward: false,
            Limit: want,
            ...(pos === 'start'
              ? {}
              : {
                  ExclusiveStartKey: {
                    [BY_ACTIVITY.partitionKey.name]: partition,
                    [ACTIVE_KEY_ATTRIBUTE]: activityKey(pos.bucket, pos.pk, pos.sk),
                    pk: pos.pk,
                    sk: pos.sk,
                  },
                }),
          }),
        );
        return {
          entries: (out.Items ?? []).map(entryOf),
          exhausted: out.LastEvaluatedKey === undefined,
        };
      }),
    );
    const candidates = fetched.flatMap((f, shard) =>
      f.entries.map((entry, order) => ({ entry, shard, order })),
    );
    // Newest bucket first; within a bucket the shards take turns, so a page is
    // spread over all shards (each shard still gives up a prefix of its entries,
    // which is what its position in the cursor records).
    candidates.sort(
      (a, b) => b.entry.bucket - a.entry.bucket || a.order - b.order || a.shard - b.shard,
    );
    const taken = candidates.slice(0, want);
    const consumed = new Array<number>(partitions.length).fill(0);
    const lastTaken: (IndexEntry | undefined)[] = new Array(partitions.length).fill(undefined);
    for (const c of taken) {
      consumed[c.shard]!++;
      lastTaken[c.shard] = c.entry;
    }
    current = partitions.map((_, shard) => {
      const f = fetched[shard]!;
      const pos = current[shard]!;
      if (pos === 'done') return 'done';
      if (f.exhausted && consumed[shard] === f.entries.length) return 'done';
      const last = lastTaken[shard];
      if (!last) return pos;
      return { bucket: last.bucket, pk: last.pk, sk: last.sk };
    });
    items.push(
      ...(await activeItems(
        options,
        taken.map((c) => c.entry),
        since,
      )),
    );
  }
  return {
    items: items.sort(newestFirst),
    positions: current,
    done: current.every((p) => p === 'done'),
  };
}

/** Reads every index entry of one partition whose bucket matches `condition`. */
async function readEntries(
  options: ReaderOptions,
  index: (typeof TABLE.indexes)[number],
  partition: string,
  condition: '>=' | '=',
  bucket: number,
): Promise<IndexEntry[]> {
  const entries: IndexEntry[] = [];
  let start: Record<string, unknown> | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const out = await options.doc.send(
      new QueryCommand({
        TableName: options.table,
        ...bucketCondition(index, partition, bucket, condition),
        ScanIndexForward: false,
        ExclusiveStartKey: start,
      }),
    );
    entries.push(...(out.Items ?? []).map(entryOf));
    start = out.LastEvaluatedKey;
    if (!start) break;
  }
  return entries;
}

/** Counts the index entries of one byActivity partition in buckets at or after `bucket`. */
async function countFrom(
  options: ReaderOptions,
  partition: string,
  bucket: number,
): Promise<number> {
  let total = 0;
  let start: Record<string, unknown> | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const out = await options.doc.send(
      new QueryCommand({
        TableName: options.table,
        ...bucketCondition(BY_ACTIVITY, partition, bucket, '>='),
        Select: 'COUNT',
        ExclusiveStartKey: start,
      }),
    );
    total += out.Count ?? 0;
    start = out.LastEvaluatedKey;
    if (!start) break;
  }
  return total;
}

/**
 * Counts exactly the items of the byActivity partitions last seen at or after
 * `since`: buckets that start at or after `since` hold only such items and are
 * counted on the index (COUNT); the bucket `since` falls inside is read entry
 * by entry and its items' lastSeen checked (BatchGetItem, lastSeen only).
 */
export async function countActive(
  options: ReaderOptions,
  partitions: readonly string[],
  since: number,
): Promise<number> {
  const boundary = activityBucket(since);
  const aligned = boundary === since;
  const counts = await Promise.all(
    partitions.map(async (partition) => {
      const inside = await countFrom(
        options,
        partition,
        aligned ? boundary : boundary + ACTIVITY_BUCKET_MS,
      );
      if (aligned) return inside;
      const entries = await readEntries(options, BY_ACTIVITY, partition, '=', boundary);
      const found = await getItems(options, entries, ['lastSeen']);
      let edge = 0;
      for (const item of found.values()) {
        if (typeof item.lastSeen === 'number' && item.lastSeen >= since) edge++;
      }
      return inside + edge;
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

/**
 * What one client IP talked to since `since`, newest first, at most `limit`
 * entries. Reads the IP's index entries from the bucket holding `since` on
 * (one per service it talked to within the window, plus those it went quiet
 * with less than a bucket earlier) and fetches their items.
 */
export async function readClientIp(
  options: ReaderOptions,
  partition: string,
  since: number,
  limit: number,
): Promise<{ items: RawItem[]; truncated: boolean }> {
  const entries = await readEntries(options, BY_CLIENT_IP, partition, '>=', activityBucket(since));
  const items = await activeItems(options, entries, since);
  return { items: items.slice(0, limit), truncated: items.length > limit };
}
