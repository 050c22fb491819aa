/**
 * The aggregate function's work for one Kinesis batch: decode, fold per item,
 * write each item once, and report the failed tail for Lambda to retry.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { METRICS } from '../../contract/resources.js';
import {
  type WriterOptions,
  type WriteStats,
  writeAgentFold,
  writeClientFold,
  writeServiceFold,
} from '../store/item-writer.js';
import { runBounded } from './bounded-pool.js';
import { type BadInput, type DecodedBatch, decodeBatch } from './decode-batch.js';
import { type BatchFold, foldBatch } from './fold.js';
import type { ServiceRefresh } from './service-refresh.js';

/** Per-batch metrics of the aggregate function besides the contract's BadLines/BadRecords. */
export const AGGREGATE_METRICS = {
  flowLines: 'FlowLines',
  itemWrites: 'ItemWrites',
  writeConflicts: 'WriteConflicts',
} as const;

/** At most this many bad lines are logged one by one per batch; all are counted. */
const MAX_LOGGED_BAD_LINES = 20;

/** What the batch processing needs from its surroundings. */
export interface AggregateDeps {
  writer: WriterOptions;
  logger: Logger;
  metrics: Metrics;
  /** Item writes in flight at once (default 16). */
  concurrency?: number;
  /** Limits services-list writes; kept for the life of the function instance. */
  serviceRefresh?: ServiceRefresh;
}

interface WriteUnit {
  label: string;
  records: Set<number>;
  run: () => Promise<void>;
}

/** Logs (a bounded number of) rejected lines and records, each with where it was, and counts them all. */
function reportBadInput(decoded: DecodedBatch, logger: Logger, metrics: Metrics): void {
  const where = (b: BadInput) =>
    `record ${b.sequenceNumber} (${b.eventId.split(':')[0]}, key ${b.partitionKey})` +
    (b.error.line > 0 ? ` line ${b.error.line}` : '') +
    `: ${b.error.reason}`;
  for (const bad of decoded.badRecords.slice(0, MAX_LOGGED_BAD_LINES)) {
    logger.warn('skipping undecodable record', { where: where(bad), ...bad });
  }
  for (const bad of decoded.badLines.slice(0, MAX_LOGGED_BAD_LINES)) {
    logger.warn('skipping bad line', { where: where(bad), ...bad });
  }
  const unlogged =
    Math.max(0, decoded.badLines.length - MAX_LOGGED_BAD_LINES) +
    Math.max(0, decoded.badRecords.length - MAX_LOGGED_BAD_LINES);
  if (unlogged > 0) logger.warn('more bad lines and records, counted but not logged', { unlogged });
  metrics.addMetric(METRICS.badLines, MetricUnit.Count, decoded.badLines.length);
  metrics.addMetric(METRICS.badRecords, MetricUnit.Count, decoded.badRecords.length);
}

/** One write unit per item of the fold, each knowing which records fed it. */
function writeUnits(fold: BatchFold, deps: AggregateDeps, stats: WriteStats): WriteUnit[] {
  const units: WriteUnit[] = [];
  for (const f of fold.clients.values()) {
    const records = new Set<number>();
    for (const bySeq of f.byAgent.values()) {
      for (const c of bySeq.values()) for (const r of c.records) records.add(r);
    }
    units.push({
      label: `${f.key.pk}/${f.key.sk}`,
      records,
      run: () => writeClientFold(deps.writer, f, stats),
    });
  }
  for (const s of fold.services.values()) {
    const refresh = deps.serviceRefresh;
    if (refresh && !refresh.due(s.service, s.lastSeen)) continue;
    units.push({
      label: `service ${s.service}`,
      records: s.records,
      run: async () => {
        await writeServiceFold(deps.writer, s, stats);
        refresh?.wrote(s.service, s.lastSeen);
      },
    });
  }
  for (const a of fold.agents.values()) {
    units.push({
      label: `agent ${a.heartbeat.agentId}`,
      records: a.records,
      run: () => writeAgentFold(deps.writer, a, stats),
    });
  }
  return units;
}

/**
 * Processes one batch. Kinesis is ordered: when some item's write fails, the
 * first record that contributed to a failed write and every later record are
 * reported, so the retry starts exactly there (earlier records all landed).
 */
export async function aggregateBatch(
  event: KinesisStreamEvent,
  deps: AggregateDeps,
): Promise<KinesisStreamBatchResponse> {
  const { logger, metrics } = deps;
  const decoded = decodeBatch(event.Records);
  reportBadInput(decoded, logger, metrics);

  const fold = foldBatch(decoded.records);
  const stats: WriteStats = { writes: 0, conflicts: 0, skipped: 0 };
  const units = writeUnits(fold, deps, stats);
  const outcomes = await runBounded(
    units.map((u) => u.run),
    deps.concurrency ?? 16,
  );

  let firstFailed = Number.POSITIVE_INFINITY;
  let failedWrites = 0;
  outcomes.forEach((o, i) => {
    if (o.status === 'fulfilled') return;
    const unit = units[i]!;
    failedWrites++;
    if (failedWrites <= 5) {
      const reason =
        o.reason instanceof Error ? `${o.reason.name}: ${o.reason.message}` : String(o.reason);
      logger.error('item write failed', { item: unit.label, reason });
    }
    for (const r of unit.records) firstFailed = Math.min(firstFailed, r);
  });
  metrics.addMetric(AGGREGATE_METRICS.flowLines, MetricUnit.Count, fold.flowLines);
  metrics.addMetric(AGGREGATE_METRICS.itemWrites, MetricUnit.Count, stats.writes);
  metrics.addMetric(AGGREGATE_METRICS.writeConflicts, MetricUnit.Count, stats.conflicts);
  logger.info('batch aggregated', {
    records: event.Records.length,
    flowLines: fold.flowLines,
    duplicateRecords: fold.duplicateRecords,
    items: units.length,
    ...stats,
    failedWrites,
  });
  if (!Number.isFinite(firstFailed)) return { batchItemFailures: [] };
  const failed = event.Records.slice(firstFailed);
  logger.warn('reporting failed tail for retry', {
    fromSequenceNumber: failed[0]?.kinesis.sequenceNumber,
    records: failed.length,
  });
  return {
    batchItemFailures: failed.map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber })),
  };
}
