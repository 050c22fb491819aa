/**
 * Turns the flow lines of one v1 (NDJSON) record into sealed block parts, so
 * a record put by hand with the AWS CLI lands as the same immutable items an
 * agent's v2 blocks do.
 *
 * The lines are grouped by (service, minute of lastSeen), groups in sorted
 * order; each group is one block named by the record's (agentId, seq), with
 * parts 0..parts-1. Service and minute are both in a block's partition key,
 * so the groups of one record never share a key, and the mapping depends on
 * nothing but the record's lines: the same record put twice gives the same
 * parts, byte for byte.
 */

import {
  type Block,
  type BlockEndpoint,
  MAX_BLOCK_COUNTER,
  MINUTE_MS,
  minuteOf,
} from '../../contract/block.js';
import { sealParts } from '../../contract/block-codec.js';
import type { LineError } from '../../contract/codec.js';
import type { FlowLine } from '../../contract/wire.js';

/** A flow line and where it was in its record (1-based). */
export interface NumberedFlowLine {
  line: number;
  flow: FlowLine;
}

/** The parts made from a record's flow lines and the lines that could not become one. */
export interface V1Blocks {
  blocks: Block[];
  errors: LineError[];
}

const CONTROL_RE =
  /[\u0000-\u001f\u007f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** v1 allows control characters in free text; blocks do not: they become U+FFFD. */
const printable = (s: string): string => s.replace(CONTROL_RE, '\uFFFD');

const COUNTERS = ['pktsIn', 'bytesIn', 'pktsOut', 'bytesOut'] as const;

/** The endpoint of one flow line within the minute of its lastSeen (seconds clamped into it). */
export function endpointOfLine(flow: FlowLine, minute: number): BlockEndpoint {
  const start = minute * MINUTE_MS;
  const second = (ms: number) => Math.min(59, Math.max(0, Math.floor((ms - start) / 1000)));
  const e: BlockEndpoint = {
    ip: flow.remoteIp,
    port: flow.remotePort,
    localIp: flow.localIp,
    localPort: flow.localPort,
    pktsIn: flow.pktsIn,
    bytesIn: flow.bytesIn,
    pktsOut: flow.pktsOut,
    bytesOut: flow.bytesOut,
    firstSecond: second(flow.firstSeen),
    lastSecond: second(flow.lastSeen),
    source: flow.source,
    sampleRate: flow.sampleRate,
  };
  if (flow.natFromIp !== undefined) e.natFromIp = flow.natFromIp;
  if (flow.natFromPort !== undefined) e.natFromPort = flow.natFromPort;
  if (flow.pid !== undefined || flow.process !== undefined) {
    e.owner = {};
    if (flow.pid !== undefined) e.owner.pid = flow.pid;
    if (flow.process !== undefined) e.owner.process = printable(flow.process);
  }
  if (flow.clientId !== undefined) e.clientId = printable(flow.clientId);
  return e;
}

/**
 * Seals a record's flow lines (all of one agentId and seq, as decodeRecord
 * guarantees). A group's host is the smallest host name among its lines
 * (they are all one host unless the writer is confused). A line with a
 * counter above MAX_BLOCK_COUNTER is reported and left out; a group the
 * codec refuses is reported line by line.
 */
export function blocksOfFlowLines(lines: readonly NumberedFlowLine[]): V1Blocks {
  const errors: LineError[] = [];
  const groups = new Map<string, { service: string; minute: number; lines: NumberedFlowLine[] }>();
  for (const l of lines) {
    const big = COUNTERS.find((c) => l.flow[c] > MAX_BLOCK_COUNTER);
    if (big) {
      errors.push({
        line: l.line,
        field: big,
        reason: `${big}: ${l.flow[big]} is more than a block holds (${MAX_BLOCK_COUNTER})`,
      });
      continue;
    }
    const minute = minuteOf(l.flow.lastSeen);
    const key = JSON.stringify([l.flow.service, minute]);
    const group = groups.get(key) ?? { service: l.flow.service, minute, lines: [] };
    group.lines.push(l);
    groups.set(key, group);
  }
  const ordered = [...groups.values()].sort((a, b) =>
    a.service < b.service ? -1 : a.service > b.service ? 1 : a.minute - b.minute,
  );
  const blocks: Block[] = [];
  for (const g of ordered) {
    const first = g.lines[0]!.flow;
    const host = g.lines.map((l) => l.flow.host).sort()[0]!;
    const head = {
      agentId: first.agentId,
      host,
      service: g.service,
      minute: g.minute,
      seq: first.seq,
    };
    try {
      blocks.push(
        ...sealParts(
          head,
          g.lines.map((l) => endpointOfLine(l.flow, g.minute)),
        ),
      );
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      for (const l of g.lines)
        errors.push({ line: l.line, reason: `cannot become a block: ${why}` });
    }
  }
  return { blocks, errors };
}
