/**
 * The aggregate function's work for one Kinesis batch: plan each record's
 * writes, put them, and report the records whose writes failed for Lambda to
 * retry.
 *
 * Exactness does not depend on order or on how often a record is handled:
 * every block part is put by content under a key its content names, so a
 * second put of the same part is a no-op and a different part under the same
 * key is kept aside, never merged. Retrying a record whose writes partly
 * landed, or records after it that already landed, changes nothing.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { METRICS } from '../../contract/resources.js';
import {
  putAgentHeartbeat,
  putBlock,
  putLateMark,
  refreshService,
  type WriterOptions,
} from '../store/item-writer.js';
import { runBounded } from './bounded-pool.js';
import { isLate, planRecord, type RecordPlan, type RecordWhere } from './record-plan.js';
import type { ServiceRefresh } from './service-refresh.js';

/** Per-batch metrics of the aggregate function besides the contract's BadLines/BadRecords. */
export const AGGREGATE_METRICS = {
  blocksStored: 'BlocksStored',
  blockConflicts: 'BlockConflicts',
  lateBlocks: 'LateBlocks',
  heartbeats: 'Heartbeats',
  failedRecords: 'FailedRecords',
} as const;

/** At most this many bad lines, records and conflicts are logged one by one per batch; all are counted. */
const MAX_LOGGED = 20;

/**
 * Write failures of one function instance: while DynamoDB is down every
 * retry of every batch fails, so only the batch that starts the episode logs
 * its errors; the batch that succeeds again logs how long it lasted and what
 * it retried. Each batch still counts its failures in FailedRecords.
 */
export class WriteFailures {
  private episode: { since: number; batches: number; records: number } | null = null;

  /** Whether an episode is under way (its errors are already logged). */
  get failing(): boolean {
    return this.episode !== null;
  }

  /** Counts a failed batch; true when it starts the episode. */
  begin(now: number, records: number): boolean {
    const first = this.episode === null;
    this.episode ??= { since: now, batches: 0, records: 0 };
    this.episode.batches++;
    this.episode.records += records;
    return first;
  }

  /** Ends the episode after a batch whose writes all landed; what it was, if there was one. */
  end(now: number): { failingForMs: number; failedBatches: number; retriedRecords: number } | null {
    const e = this.episode;
    if (!e) return null;
    this.episode = null;
    return { failingForMs: now - e.since, failedBatches: e.batches, retriedRecords: e.records };
  }
}

/** What the batch processing needs from its surroundings. */
export interface AggregateDeps {
  writer: WriterOptions;
  logger: Logger;
  metrics: Metrics;
  /** Records written at once (default 16). */
  concurrency?: number;
  /** Limits services-list writes; kept for the life of the function instance. */
  serviceRefresh?: ServiceRefresh;
  /** Clock for records without an arrival time (default Date.now). */
  now?: () => number;
  /** Kept for the life of the function instance: logs write failures once per episode. */
  writeFailures?: WriteFailures;
}

interface Counts {
  stored: number;
  conflicts: number;
  late: number;
  heartbeats: number;
}

const whereText = (w: RecordWhere, line?: number) =>
  `record ${w.sequenceNumber} (${w.shardId}, key ${w.partitionKey})${line ? ` line ${line}` : ''}`;

const describe = (err: unknown) =>
  err instanceof Error ? `${err.name}: ${err.message}` : String(err);

/** Logs (a bounded number of) rejected records and lines, each located, and counts them all. */
function reportBadInput(plans: readonly RecordPlan[], logger: Logger, metrics: Metrics): void {
  let logged = 0;
  let badRecords = 0;
  let badLines = 0;
  for (const p of plans) {
    if (p.badRecord !== undefined) {
      badRecords++;
      if (logged++ < MAX_LOGGED) {
        logger.warn('skipping bad record', {
          where: `${whereText(p.where)}: ${p.badRecord}`,
          ...p.where,
          format: p.format,
          reason: p.badRecord,
        });
      }
    }
    for (const e of p.badLines) {
      badLines++;
      if (logged++ < MAX_LOGGED) {
        logger.warn('skipping bad line', {
          where: `${whereText(p.where, e.line)}: ${e.reason}`,
          ...p.where,
          ...e,
        });
      }
    }
  }
  if (logged > MAX_LOGGED) {
    logger.warn('more bad records and lines, counted but not logged', {
      unlogged: logged - MAX_LOGGED,
    });
  }
  metrics.addMetric(METRICS.badRecords, MetricUnit.Count, badRecords);
  metrics.addMetric(METRICS.badLines, MetricUnit.Count, badLines);
}

/** Puts one record's block parts (then their late marks) and heartbeat. */
async function writeRecord(plan: RecordPlan, deps: AggregateDeps, counts: Counts): Promise<void> {
  for (const b of plan.blocks) {
    const outcome = await putBlock(deps.writer, b);
    if (outcome === 'conflict') {
      counts.conflicts++;
      if (counts.conflicts <= MAX_LOGGED) {
        deps.logger.warn('block differs from the one stored under its key; kept aside', {
          where: whereText(plan.where),
          ...plan.where,
          pk: b.key.pk,
          sk: b.key.sk,
          hash: b.hash,
        });
      }
    } else counts.stored++;
    // After the block, so a summarizer that sees the mark also sees the block.
    // Late by arrival, or by when it was stored: a function far behind its
    // stream stores blocks after their minute may already be summarized.
    if (b.late || isLate(b.minute, (deps.now ?? Date.now)())) {
      await putLateMark(deps.writer, {
        service: b.service,
        minute: b.minute,
        at: b.arrival,
        block: b.key.sk,
      });
      counts.late++;
    }
  }
  if (plan.heartbeat && (await putAgentHeartbeat(deps.writer, plan.heartbeat))) counts.heartbeats++;
}

/** The services seen in the batch, with their span and the records that showed them. */
function servicesOf(plans: readonly RecordPlan[]) {
  const out = new Map<string, { firstSeen: number; lastSeen: number; records: Set<number> }>();
  for (const p of plans) {
    for (const b of p.blocks) {
      const s = out.get(b.service) ?? {
        firstSeen: b.firstMs,
        lastSeen: b.lastMs,
        records: new Set(),
      };
      s.firstSeen = Math.min(s.firstSeen, b.firstMs);
      s.lastSeen = Math.max(s.lastSeen, b.lastMs);
      s.records.add(p.where.index);
      out.set(b.service, s);
    }
  }
  return out;
}

/**
 * Processes one batch. Bad records are counted and skipped (retrying cannot
 * fix them); records whose writes failed are reported as batch item
 * failures, and Lambda (or the local poller) retries from the first of them.
 */
export async function aggregateBatch(
  event: KinesisStreamEvent,
  deps: AggregateDeps,
): Promise<KinesisStreamBatchResponse> {
  const { logger, metrics } = deps;
  const nowMs = (deps.now ?? Date.now)();
  const plans = event.Records.map((r, i) =>
    planRecord(r, i, { retentionHours: deps.writer.retentionHours, nowMs }),
  );
  reportBadInput(plans, logger, metrics);

  const counts: Counts = { stored: 0, conflicts: 0, late: 0, heartbeats: 0 };
  const failed = new Set<number>();
  // Within an episode the errors were logged when it began.
  let logged = deps.writeFailures?.failing ? 5 : 0;
  const fail = (records: Iterable<number>, what: string, err: unknown) => {
    for (const r of records) failed.add(r);
    if (logged++ < 5) logger.error('write failed', { what, reason: describe(err) });
  };

  const work = plans.filter((p) => p.blocks.length > 0 || p.heartbeat);
  const outcomes = await runBounded(
    work.map((p) => () => writeRecord(p, deps, counts)),
    deps.concurrency ?? 16,
  );
  outcomes.forEach((o, i) => {
    if (o.status === 'rejected') fail([work[i]!.where.index], whereText(work[i]!.where), o.reason);
  });

  const refresh = deps.serviceRefresh;
  const services = [...servicesOf(plans)].filter(
    ([s, v]) => !refresh || refresh.due(s, v.lastSeen),
  );
  const serviceOutcomes = await runBounded(
    services.map(([service, s]) => async () => {
      await refreshService(deps.writer, service, s.firstSeen, s.lastSeen);
      refresh?.wrote(service, s.lastSeen);
    }),
    deps.concurrency ?? 16,
  );
  serviceOutcomes.forEach((o, i) => {
    const [service, s] = services[i]!;
    if (o.status === 'rejected') fail(s.records, `service ${service}`, o.reason);
  });

  metrics.addMetric(AGGREGATE_METRICS.blocksStored, MetricUnit.Count, counts.stored);
  metrics.addMetric(AGGREGATE_METRICS.blockConflicts, MetricUnit.Count, counts.conflicts);
  metrics.addMetric(AGGREGATE_METRICS.lateBlocks, MetricUnit.Count, counts.late);
  metrics.addMetric(AGGREGATE_METRICS.heartbeats, MetricUnit.Count, counts.heartbeats);
  metrics.addMetric(AGGREGATE_METRICS.failedRecords, MetricUnit.Count, failed.size);
  logger.info('batch aggregated', {
    records: event.Records.length,
    ...counts,
    failed: failed.size,
  });
  const at = (deps.now ?? Date.now)();
  if (failed.size === 0) {
    const ended = work.length > 0 ? deps.writeFailures?.end(at) : null;
    if (ended) logger.warn('writes succeed again', ended);
    return { batchItemFailures: [] };
  }
  const records = [...failed].sort((a, b) => a - b).map((i) => event.Records[i]!);
  if (deps.writeFailures?.begin(at, records.length) ?? true) {
    logger.warn('reporting failed records for retry', {
      firstSequenceNumber: records[0]?.kinesis.sequenceNumber,
      records: records.length,
      ...(deps.writeFailures
        ? {
            note: 'later failures of this instance are counted (FailedRecords), logged again when writes succeed',
          }
        : {}),
    });
  }
  return {
    batchItemFailures: records.map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber })),
  };
}
