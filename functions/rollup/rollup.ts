/**
 * One run of the roll-up function: builds the hourly roll-ups that the
 * summarize function marked as due (an hour whose last minute it summarized,
 * or an hour a late block landed in), oldest hour first, one (service, hour,
 * shard) at a time, until the run's deadline. A shard done is recorded on its
 * mark, so a later run resumes where this one stopped; a mark re-put meanwhile
 * (a late block) starts that hour over. The minute summaries never wait for
 * this work: it runs in its own function, and readers use the minutes of an
 * hour until its roll-up is complete.
 */
import { DeleteCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { MINUTE_MS } from '../../contract/block.js';
import { BLOCK_ATTRIBUTES, ROLLUP_ATTRIBUTES } from '../../contract/resources.js';
import {
  allShards,
  parseRollupDueSortKey,
  ROLLUP_MINUTES,
  rollupKey,
  rollupPartition,
  ttlFor,
} from '../../contract/table-keys.js';
import {
  addCost,
  newCost,
  queryAll,
  type RawItem,
  type ReadCost,
  type ReaderOptions,
  readBlockParts,
  readRollupMarks,
} from '../store/block-reader.js';
import { deleteUnlessChanged, isConditionFailure } from '../store/unchanged-delete.js';
import { buildRollup } from './rollup-builder.js';

/** Settings of a run. */
export interface RollupSettings {
  retentionHours: number;
}

/** What one run did. */
export interface RollupResult {
  /** Service-hours whose every shard is now rolled up (their marks deleted). */
  completed: { service: string; hour: number }[];
  shardsBuilt: number;
  partsWritten: number;
  /** Marks left for a later run (the deadline came, or a mark was re-put). */
  pending: number;
  /** Marks whose key could not be parsed (deleted, counted). */
  badMarks: number;
  cost: ReadCost;
}

/**
 * Queries a roll-up shard keeps in flight. Fewer than the readers' default:
 * the build is background work, and on a provisioned table it should take
 * the capacity the summaries and the API leave rather than all of it.
 */
const ROLLUP_READS_IN_FLIGHT = 4;

/** Attribute of a roll-up mark listing its shards already built. */
const DONE_SHARDS = 'doneShards';

/** Builds due roll-ups until `deadline()` says stop; see the module comment. */
export async function rollUpDue(
  reader: ReaderOptions,
  settings: RollupSettings,
  deadline: () => boolean | Promise<boolean>,
): Promise<RollupResult> {
  const cost = newCost();
  const result: RollupResult = {
    completed: [],
    shardsBuilt: 0,
    partsWritten: 0,
    pending: 0,
    badMarks: 0,
    cost,
  };
  const marks = await readRollupMarks(reader, cost);
  for (const mark of marks) {
    const parsed = parseRollupDueSortKey(String(mark.sk));
    if (!parsed) {
      result.badMarks++;
      await deleteUnlessChanged(reader, mark);
      continue;
    }
    const done = new Set(Array.isArray(mark[DONE_SHARDS]) ? (mark[DONE_SHARDS] as number[]) : []);
    let finished = true;
    for (const shard of allShards()) {
      if (done.has(shard)) continue;
      if (await deadline()) {
        finished = false;
        break;
      }
      result.partsWritten += await rollUpShard(
        reader,
        settings,
        cost,
        parsed.service,
        parsed.hour,
        shard,
      );
      result.shardsBuilt++;
      if (!(await recordShardDone(reader, mark, shard))) {
        finished = false; // Re-put by a late block: the next run starts the hour over.
        break;
      }
    }
    // Deleted only if still the mark this run read (its `at` unchanged; the done list is not compared).
    if (finished && (await deleteUnlessChanged(reader, mark))) result.completed.push(parsed);
    else result.pending++;
  }
  return result;
}

/** Adds `shard` to the mark's done list, unless the mark was re-put since it was read. */
async function recordShardDone(
  reader: ReaderOptions,
  mark: RawItem,
  shard: number,
): Promise<boolean> {
  try {
    await reader.doc.send(
      new UpdateCommand({
        TableName: reader.table,
        Key: { pk: mark.pk, sk: mark.sk },
        UpdateExpression: 'SET #d = list_append(if_not_exists(#d, :empty), :shard)',
        ConditionExpression: '#at = :at',
        ExpressionAttributeNames: { '#d': DONE_SHARDS, '#at': 'at' },
        ExpressionAttributeValues: { ':empty': [], ':shard': [shard], ':at': mark.at },
      }),
    );
    return true;
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    return false;
  }
}

/** Builds and writes the roll-up of every shard of one service-hour; returns the parts written. */
export async function rollUpHour(
  reader: ReaderOptions,
  settings: RollupSettings,
  cost: ReadCost,
  service: string,
  hour: number,
): Promise<number> {
  let written = 0;
  for (const shard of allShards()) {
    written += await rollUpShard(reader, settings, cost, service, hour, shard);
  }
  return written;
}

/**
 * Writes the roll-up of one shard of one service-hour; returns the parts
 * written. A part already stored with the same content is left alone (a
 * rerun is a no-op); parts of an older, longer set are deleted after the new
 * set is complete (until then readers see mixed sets and read minutes).
 */
export async function rollUpShard(
  reader: ReaderOptions,
  settings: RollupSettings,
  cost: ReadCost,
  service: string,
  hour: number,
  shard: number,
): Promise<number> {
  let written = 0;
  const first = hour * ROLLUP_MINUTES;
  const local = newCost();
  const paced = { ...reader, inFlight: ROLLUP_READS_IN_FLIGHT };
  const parts = await readBlockParts(paced, service, first, first + ROLLUP_MINUTES - 1, local, {
    rollups: false,
    shards: [shard],
  });
  addCost(cost, local);
  const set = buildRollup(service, hour, parts);
  for (const p of set) {
    const key = rollupKey(service, hour, shard, p.part);
    try {
      await reader.doc.send(
        new PutCommand({
          TableName: reader.table,
          Item: {
            ...key,
            service,
            hour,
            shard,
            ...(p.data ? { [BLOCK_ATTRIBUTES.data]: p.data } : {}),
            ...(p.seconds ? { [ROLLUP_ATTRIBUTES.seconds]: p.seconds } : {}),
            [BLOCK_ATTRIBUTES.hash]: p.hash,
            [ROLLUP_ATTRIBUTES.set]: p.set,
            [ROLLUP_ATTRIBUTES.parts]: p.parts,
            ...(p.agentId !== undefined ? { agentId: p.agentId, host: p.host } : {}),
            n: p.endpoints,
            lastMs: p.lastMs,
            ttl: ttlFor(
              Math.max(p.lastMs, (first + ROLLUP_MINUTES) * MINUTE_MS),
              settings.retentionHours,
            ),
          },
          ConditionExpression: 'attribute_not_exists(pk) OR #h <> :h OR #g <> :g',
          ExpressionAttributeNames: { '#h': BLOCK_ATTRIBUTES.hash, '#g': ROLLUP_ATTRIBUTES.set },
          ExpressionAttributeValues: { ':h': p.hash, ':g': p.set },
        }),
      );
      written++;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }
  // Drop parts of an older set beyond the new set's length.
  const stored = await queryAll(
    reader,
    {
      KeyConditionExpression: 'pk = :pk AND sk >= :from',
      ExpressionAttributeValues: {
        ':pk': rollupPartition(service, hour, shard),
        ':from': String(set.length).padStart(4, '0'),
      },
      ProjectionExpression: 'pk, sk',
    },
    cost,
  );
  for (const old of stored) {
    await reader.doc.send(
      new DeleteCommand({ TableName: reader.table, Key: { pk: old.pk, sk: old.sk } }),
    );
  }
  return written;
}
