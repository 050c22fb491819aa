/**
 * What one Kinesis record asks of the store, decided without touching it: the
 * block parts to put (a v2 record is one part, stored as the bytes received;
 * a v1 record's flow lines become parts, see v1-blocks.ts), the heartbeat
 * for the agents list, and what was rejected and why. A record is planned
 * from its own bytes and arrival time only, so a retried or replayed record
 * plans the same writes.
 */
import type { KinesisStreamRecord } from 'aws-lambda';
import { MINUTE_MS, SUMMARY_LAG_SECONDS } from '../../contract/block.js';
import { decodeBlock, encodeBlock, isBlockRecord } from '../../contract/block-codec.js';
import { decodeRecord, type LineError } from '../../contract/codec.js';
import type { FlowLine, HeartbeatLine } from '../../contract/wire.js';
import { type BlockPut, blockPut } from '../store/item-writer.js';
import { blocksOfFlowLines } from './v1-blocks.js';

/**
 * How far past its record's arrival a time may be (an agent's clock may run
 * ahead by this much): a heartbeat claiming later is clamped to it, a block
 * or flow line of a later minute is rejected, so a clock far off can neither
 * keep an agent "reporting" nor a service "active" for years.
 */
export const CLOCK_AHEAD_MS = 5 * 60_000;

/** Where a record was, for logs. */
export interface RecordWhere {
  shardId: string;
  sequenceNumber: string;
  partitionKey: string;
  /** Position of the record in the batch. */
  index: number;
}

/** A block part to put, and whether its minute was probably summarized before it arrived. */
export interface PlannedBlock extends BlockPut {
  late: boolean;
  /** The record's approximate arrival, epoch ms (a late mark carries it). */
  arrival: number;
}

/** The writes one record asks for and what it held that was bad. */
export interface RecordPlan {
  where: RecordWhere;
  format: 'v1' | 'v2';
  blocks: PlannedBlock[];
  heartbeat?: HeartbeatLine;
  /** Rejected lines of a v1 record whose other lines were used. */
  badLines: LineError[];
  /** Set when nothing in the record was usable. */
  badRecord?: string;
}

/** The record's approximate arrival (epoch ms); `nowMs` when the event lacks it. */
export function arrivalMs(record: KinesisStreamRecord, nowMs: number): number {
  const s = record.kinesis.approximateArrivalTimestamp;
  return typeof s === 'number' && Number.isFinite(s) && s > 0 ? Math.round(s * 1000) : nowMs;
}

/** Whether a block of `minute` arriving at `arrival` came after the summarizer's lag. */
export function isLate(minute: number, arrival: number): boolean {
  return arrival > (minute + 1) * MINUTE_MS + SUMMARY_LAG_SECONDS * 1000;
}

/** The newest heartbeat of a record, its claimed time clamped to arrival + CLOCK_AHEAD_MS. */
function newestHeartbeat(
  lines: readonly HeartbeatLine[],
  arrival: number,
): HeartbeatLine | undefined {
  let best: HeartbeatLine | undefined;
  for (const l of lines) if (!best || l.at > best.at) best = l;
  if (!best) return undefined;
  return { ...best, at: Math.min(best.at, arrival + CLOCK_AHEAD_MS) };
}

/** Why a time of `what` is refused: it lies more than CLOCK_AHEAD_MS past the record's arrival. */
function aheadReason(what: string, ms: number, arrival: number): string | null {
  if (ms <= arrival + CLOCK_AHEAD_MS) return null;
  return (
    `${what} ${new Date(ms).toISOString()} is ${Math.round((ms - arrival) / 1000)} s past the ` +
    `record's arrival (more than ${CLOCK_AHEAD_MS / 1000} s ahead): fix the sending host's clock`
  );
}

/** Plans one record of a batch. Never throws. */
export function planRecord(
  record: KinesisStreamRecord,
  index: number,
  options: { retentionHours: number; nowMs: number },
): RecordPlan {
  const where: RecordWhere = {
    shardId: record.eventID.split(':')[0] ?? '',
    sequenceNumber: record.kinesis.sequenceNumber,
    partitionKey: record.kinesis.partitionKey,
    index,
  };
  const arrival = arrivalMs(record, options.nowMs);
  const data = Buffer.from(record.kinesis.data ?? '', 'base64');
  const planned = (bytes: Uint8Array, block: Parameters<typeof blockPut>[1]): PlannedBlock => ({
    ...blockPut(bytes, block, options.retentionHours),
    late: isLate(block.minute, arrival),
    arrival,
  });

  if (isBlockRecord(data)) {
    const decoded = decodeBlock(data);
    if (!decoded.ok) {
      return { where, format: 'v2', blocks: [], badLines: [], badRecord: decoded.reason };
    }
    const b = decoded.block;
    const ahead = aheadReason(`block minute ${b.minute}`, b.minute * MINUTE_MS, arrival);
    if (ahead) return { where, format: 'v2', blocks: [], badLines: [], badRecord: ahead };
    return {
      where,
      format: 'v2',
      blocks: [planned(data, b)],
      badLines: [],
    };
  }

  const decoded = decodeRecord(data);
  const flows: { line: number; flow: FlowLine }[] = [];
  const heartbeats: HeartbeatLine[] = [];
  const aheadLines: LineError[] = [];
  decoded.lines.forEach((l, i) => {
    const line = decoded.lineNumbers[i]!;
    if (l.type !== 'flow') heartbeats.push(l);
    else {
      const ahead = aheadReason('lastSeen', l.lastSeen, arrival);
      if (ahead) aheadLines.push({ line, reason: ahead });
      else flows.push({ line, flow: l });
    }
  });
  const v1 = blocksOfFlowLines(flows);
  const badLines = [...decoded.errors, ...aheadLines, ...v1.errors].sort((a, b) => a.line - b.line);
  const heartbeat = newestHeartbeat(heartbeats, arrival);
  const blocks = v1.blocks.map((b) => planned(encodeBlock(b), b));
  if (blocks.length === 0 && !heartbeat) {
    const first = badLines[0];
    const reason = first
      ? `${first.line > 0 ? `line ${first.line}: ` : ''}${first.reason}` +
        (badLines.length > 1 ? ` (and ${badLines.length - 1} more)` : '')
      : 'record holds no lines';
    return { where, format: 'v1', blocks: [], badLines: [], badRecord: reason };
  }
  return { where, format: 'v1', blocks, heartbeat, badLines };
}
