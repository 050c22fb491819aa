/**
 * Reads for the API and the summarize function. Every read is a Query on an
 * exact partition key (never a Scan, no index), eventually consistent, and
 * paginated; each returns the read units DynamoDB charged
 * (ReturnConsumedCapacity TOTAL), so answers' costs can be measured.
 *
 * Blocks of a service in minutes [a, b] are (b - a + 1) x BLOCK_SHARDS Queries
 * (one shard with an agent filter). For a long window, each whole hour inside
 * it is read from its roll-up instead (BLOCK_SHARDS Queries an hour), falling
 * back to that hour's minutes for a shard whose roll-up is not (completely)
 * there. A stored part that does not decode is skipped, counted and logged:
 * it never fails an answer.
 */
import {
  type DynamoDBDocumentClient,
  QueryCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { MINUTE_MS } from '../../contract/block.js';
import { decodeBlock } from '../../contract/block-codec.js';
import { BLOCK_ATTRIBUTES, ROLLUP_ATTRIBUTES, TABLE } from '../../contract/resources.js';
import {
  AGENTS_PK,
  agentShard,
  allShards,
  blockPartition,
  LATE_PK,
  ROLLUP_DUE_PK,
  ROLLUP_MINUTES,
  rollupPartition,
  SERVICES_PK,
  summaryPartition,
} from '../../contract/table-keys.js';
import { mapBounded } from './bounded-map.js';
import { checkRollupSeconds, type StoredPart } from './stored-part.js';

/**
 * How far a service's listed lastSeen may lag its latest block: the aggregate
 * function refreshes it at most once a minute per instance. Reads that skip
 * services idle before a window's start allow this much.
 */
export const SERVICE_LAST_SEEN_SLACK_MS = 3 * 60_000;

/** A raw item as the document client returns it. */
export type RawItem = Record<string, unknown>;

/** Where a bad stored part is reported. */
export interface ReadLogger {
  warn(message: string, extra: Record<string, unknown>): void;
}

/** Where the reader reads. */
export interface ReaderOptions {
  doc: DynamoDBDocumentClient;
  table: string;
  logger?: ReadLogger;
  /** Queries in flight at once for one read (default 16). */
  inFlight?: number;
}

/** What reads cost and found, summed over the reads that share it. */
export interface ReadCost {
  /** Query calls (pages included). */
  queries: number;
  /** Read units DynamoDB charged (eventually consistent: half a unit per 4 KB). */
  readUnits: number;
  /** Parts decoded and used. */
  parts: number;
  /** Stored parts skipped because they did not decode or did not match their key. */
  badParts: number;
  /** (hour, shard) roll-ups used in place of 60 minutes. */
  rollups: number;
}

/** A zeroed cost. */
export function newCost(): ReadCost {
  return { queries: 0, readUnits: 0, parts: 0, badParts: 0, rollups: 0 };
}

/** Adds the counts of `from` to `into` (a sub-read's cost to its run's). */
export function addCost(into: ReadCost, from: ReadCost): void {
  into.queries += from.queries;
  into.readUnits += from.readUnits;
  into.parts += from.parts;
  into.badParts += from.badParts;
  into.rollups += from.rollups;
}

/** Upper bound on pages one Query follows (a safety net, not a limit in practice). */
const MAX_PAGES = 10_000;

/** Runs a Query to its last page, adding its units to `cost`. */
export async function queryAll(
  options: ReaderOptions,
  input: Omit<QueryCommandInput, 'TableName'>,
  cost: ReadCost,
): Promise<RawItem[]> {
  const items: RawItem[] = [];
  let start: Record<string, unknown> | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const out = await options.doc.send(
      new QueryCommand({
        TableName: options.table,
        ...input,
        ReturnConsumedCapacity: 'TOTAL',
        ExclusiveStartKey: start,
      }),
    );
    cost.queries++;
    cost.readUnits += out.ConsumedCapacity?.CapacityUnits ?? 0;
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
    if (!start || (input.Limit !== undefined && items.length >= input.Limit)) break;
  }
  return items;
}

/** The key condition of a whole partition, or of its sort keys beginning with `prefix`. */
function partitionQuery(pk: string, prefix?: string): Omit<QueryCommandInput, 'TableName'> {
  return {
    KeyConditionExpression:
      prefix === undefined ? '#pk = :pk' : '#pk = :pk AND begins_with(#sk, :prefix)',
    ExpressionAttributeNames: {
      '#pk': TABLE.partitionKey.name,
      ...(prefix === undefined ? {} : { '#sk': TABLE.sortKey.name }),
    },
    ExpressionAttributeValues: {
      ':pk': pk,
      ...(prefix === undefined ? {} : { ':prefix': prefix }),
    },
  };
}

const bytesOf = (v: unknown): Uint8Array | undefined => (v instanceof Uint8Array ? v : undefined);

function reportBad(options: ReaderOptions, cost: ReadCost, item: RawItem, reason: string): void {
  cost.badParts++;
  options.logger?.warn('stored part skipped', { pk: item.pk, sk: item.sk, reason });
}

/** Decodes a minute part item; a part that fails or does not match its key is reported and dropped. */
function minutePart(
  options: ReaderOptions,
  cost: ReadCost,
  item: RawItem,
  want: { service: string; minute: number; shard: number; agentId?: string },
): StoredPart | null {
  const data = bytesOf(item[BLOCK_ATTRIBUTES.data]);
  if (!data) {
    reportBad(options, cost, item, `no binary ${BLOCK_ATTRIBUTES.data} attribute`);
    return null;
  }
  const decoded = decodeBlock(data, { stored: true });
  if (!decoded.ok) {
    reportBad(options, cost, item, decoded.reason);
    return null;
  }
  const b = decoded.block;
  if (
    b.service !== want.service ||
    b.minute !== want.minute ||
    agentShard(b.agentId) !== want.shard
  ) {
    reportBad(
      options,
      cost,
      item,
      `block of ${b.service} minute ${b.minute} agent ${b.agentId} stored under another key`,
    );
    return null;
  }
  if (want.agentId !== undefined && b.agentId !== want.agentId) return null;
  cost.parts++;
  return { block: b };
}

/** Reads one shard of one service-minute's parts (optionally one agent's). */
async function readMinuteShard(
  options: ReaderOptions,
  cost: ReadCost,
  service: string,
  minute: number,
  shard: number,
  agentId: string | undefined,
): Promise<StoredPart[]> {
  const items = await queryAll(
    options,
    partitionQuery(
      blockPartition(service, minute, shard),
      agentId === undefined ? undefined : `${agentId}#`,
    ),
    cost,
  );
  const parts: StoredPart[] = [];
  for (const item of items) {
    const p = minutePart(options, cost, item, { service, minute, shard, agentId });
    if (p) parts.push(p);
  }
  return parts;
}

/**
 * Reads one shard of a service-hour's roll-up; null when it is absent or
 * incomplete (a part missing, from another set, or undecodable), so the
 * caller reads that hour's minutes instead.
 */
export async function readRollupShard(
  options: ReaderOptions,
  cost: ReadCost,
  service: string,
  hour: number,
  shard: number,
  agentId?: string,
): Promise<StoredPart[] | null> {
  const items = await queryAll(
    options,
    partitionQuery(rollupPartition(service, hour, shard)),
    cost,
  );
  if (items.length === 0) return null;
  const set = items[0]![ROLLUP_ATTRIBUTES.set];
  const parts = items[0]![ROLLUP_ATTRIBUTES.parts];
  if (
    typeof parts !== 'number' ||
    items.length !== parts ||
    items.some((it, i) => it[ROLLUP_ATTRIBUTES.set] !== set || it.sk !== String(i).padStart(4, '0'))
  ) {
    // A set being replaced (late blocks) or partly expired: the minutes are exact.
    return null;
  }
  const out: StoredPart[] = [];
  for (const item of items) {
    const data = bytesOf(item[BLOCK_ATTRIBUTES.data]);
    if (!data) continue; // The marker of a shard with no data in the hour.
    if (agentId !== undefined && item.agentId !== agentId) continue;
    const decoded = decodeBlock(data, { stored: true });
    const seconds = bytesOf(item[ROLLUP_ATTRIBUTES.seconds]);
    const bad = decoded.ok
      ? decoded.block.service !== service || decoded.block.minute !== hour * ROLLUP_MINUTES
        ? `roll-up of ${decoded.block.service} minute ${decoded.block.minute} stored under another key`
        : checkRollupSeconds(decoded.block, seconds)
      : decoded.reason;
    if (bad !== null || !decoded.ok) {
      reportBad(options, cost, item, bad ?? 'undecodable');
      return null;
    }
    out.push({ block: decoded.block, seconds });
  }
  cost.parts += out.length;
  cost.rollups++;
  return out;
}

/** Options of a block read. */
export interface BlockReadOptions {
  /** Only this agent's parts (one shard, `begins_with(sk, agentId#)`). */
  agentId?: string;
  /** Read whole hours from roll-ups (default true). */
  rollups?: boolean;
  /** Only these shards (default all, or the agent's). */
  shards?: number[];
}

/** The whole hours inside minutes [a, b]. */
export function wholeHours(a: number, b: number): number[] {
  const first = Math.ceil(a / ROLLUP_MINUTES);
  const end = Math.floor((b + 1) / ROLLUP_MINUTES);
  return Array.from({ length: Math.max(0, end - first) }, (_, i) => first + i);
}

/**
 * Reads every part of `service` in minutes [a, b]: whole hours from roll-ups
 * where they are complete, everything else minute by minute, over every
 * shard (or the agent's only).
 */
export async function readBlockParts(
  options: ReaderOptions,
  service: string,
  a: number,
  b: number,
  cost: ReadCost,
  read: BlockReadOptions = {},
): Promise<StoredPart[]> {
  if (b < a) return [];
  const shards =
    read.shards ?? (read.agentId === undefined ? allShards() : [agentShard(read.agentId)]);
  const hours = read.rollups === false ? [] : wholeHours(a, b);
  const inHours = new Set(hours);
  const tasks: (() => Promise<StoredPart[]>)[] = [];
  const minuteTask = (minute: number, shard: number) => () =>
    readMinuteShard(options, cost, service, minute, shard, read.agentId);
  for (let m = a; m <= b; m++) {
    if (inHours.has(Math.floor(m / ROLLUP_MINUTES))) continue;
    for (const s of shards) tasks.push(minuteTask(m, s));
  }
  for (const h of hours) {
    for (const s of shards) {
      tasks.push(async () => {
        const rolled = await readRollupShard(options, cost, service, h, s, read.agentId);
        if (rolled) return rolled;
        const minutes = Array.from({ length: ROLLUP_MINUTES }, (_, i) => h * ROLLUP_MINUTES + i);
        const parts = await mapBounded(minutes, 4, (m) => minuteTask(m, s)());
        return parts.flat();
      });
    }
  }
  const results = await mapBounded(tasks, options.inFlight ?? 16, (t) => t());
  return results.flat();
}

/** The minutes [a, b] of a window of epoch ms [since, now]. */
export function windowMinutes(since: number, now: number): [number, number] {
  return [Math.floor(since / MINUTE_MS), Math.floor(now / MINUTE_MS)];
}

/** All services still listed (TTL bounds the list to the retention), in name order. */
export function readServices(options: ReaderOptions, cost: ReadCost): Promise<RawItem[]> {
  return queryAll(options, partitionQuery(SERVICES_PK), cost);
}

/** All agents still listed, in id order. */
export function readAgents(options: ReaderOptions, cost: ReadCost): Promise<RawItem[]> {
  return queryAll(options, partitionQuery(AGENTS_PK), cost);
}

/** A service's newest summary item, if any. */
export async function readLatestSummary(
  options: ReaderOptions,
  service: string,
  cost: ReadCost,
): Promise<RawItem | undefined> {
  const items = await queryAll(
    options,
    { ...partitionQuery(summaryPartition(service)), ScanIndexForward: false, Limit: 1 },
    cost,
  );
  return items[0];
}

/** Every roll-up mark (service-hours whose roll-up is to be built), oldest hour first. */
export function readRollupMarks(options: ReaderOptions, cost: ReadCost): Promise<RawItem[]> {
  return queryAll(options, partitionQuery(ROLLUP_DUE_PK), cost);
}

/** Every late mark (minutes that got blocks after they were summarized). */
export function readLateMarks(options: ReaderOptions, cost: ReadCost): Promise<RawItem[]> {
  return queryAll(options, partitionQuery(LATE_PK), cost);
}
