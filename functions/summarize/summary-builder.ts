/**
 * Builds a service's summary of one minute from the parts of the active
 * window ending at that minute's end. Pure: the caller reads the parts.
 */
import { MINUTE_MS } from '../../contract/block.js';
import { type SummaryItem, TOP_TALKERS, type TopTalker } from '../../contract/summary.js';
import { compareNewestFirst, type MergedClient, mergeParts } from '../store/endpoint-merge.js';
import type { StoredPart } from '../store/stored-part.js';

/** What a summary is built from. */
export interface SummaryInput {
  service: string;
  minute: number;
  windowSeconds: number;
  computedAt: number;
  /** Every part of the window's minutes (roll-ups allowed for minutes before `minute`). */
  parts: readonly StoredPart[];
  badParts: number;
}

/** The window of a minute's summary: [since, until) in epoch ms, and its first minute. */
export function summaryWindow(
  minute: number,
  windowSeconds: number,
): { since: number; until: number; firstMinute: number } {
  const until = (minute + 1) * MINUTE_MS;
  const since = Math.floor((until - windowSeconds * 1000) / 1000) * 1000;
  return { since, until, firstMinute: Math.floor(since / MINUTE_MS) };
}

/** The minutes whose summaries include minute `m`'s blocks: [m, m + ceil(window / 60) - 1]. */
export function summariesIncluding(m: number, windowSeconds: number): [number, number] {
  return [m, m + Math.ceil(windowSeconds / 60) - 1];
}

function talker(e: MergedClient): TopTalker {
  return {
    ip: e.ip,
    port: e.port ?? 0,
    pktsIn: e.pktsIn,
    bytesIn: e.bytesIn,
    pktsOut: e.pktsOut,
    bytesOut: e.bytesOut,
    lastSeen: e.lastSeen,
  };
}

/** The `TOP_TALKERS` largest by `size`, ties newest first then by key. */
function top(entries: readonly MergedClient[], size: (e: MergedClient) => number): TopTalker[] {
  return [...entries]
    .sort((a, b) => size(b) - size(a) || compareNewestFirst(a, b))
    .slice(0, TOP_TALKERS)
    .map(talker);
}

/** Builds the summary of `input.minute`. */
export function buildSummary(input: SummaryInput): SummaryItem {
  const { since, until } = summaryWindow(input.minute, input.windowSeconds);
  const inWindow = input.parts.filter((p) => p.block.minute <= input.minute);
  const active = mergeParts(inWindow, { view: 'endpoint' }).filter(
    (e) => e.lastSeen >= since && e.lastSeen < until,
  );
  const ips = new Set(active.map((e) => e.ip));
  const totals = { pktsIn: 0, bytesIn: 0, pktsOut: 0, bytesOut: 0 };
  let socket: { rxQueueBytes: number; drops: number } | null = null;
  const agents = new Set<string>();
  const hosts = new Set<string>();
  for (const p of inWindow) {
    // Roll-up parts start at an hour's first minute with seconds set: never the summarized minute's.
    if (p.block.minute !== input.minute || p.seconds) continue;
    agents.add(p.block.agentId);
    hosts.add(p.block.host);
    for (const e of p.block.endpoints) {
      totals.pktsIn += e.pktsIn;
      totals.bytesIn += e.bytesIn;
      totals.pktsOut += e.pktsOut;
      totals.bytesOut += e.bytesOut;
    }
    if (p.block.socket) {
      socket ??= { rxQueueBytes: 0, drops: 0 };
      socket.rxQueueBytes = Math.max(socket.rxQueueBytes, p.block.socket.rxQueueBytes);
      socket.drops += p.block.socket.drops;
    }
  }
  return {
    service: input.service,
    minute: input.minute,
    windowSeconds: input.windowSeconds,
    since,
    until,
    computedAt: input.computedAt,
    activeClients: active.length,
    activeClientIps: ips.size,
    oneWay: active.filter((e) => e.pktsIn > 0 && e.pktsOut === 0).length,
    ...totals,
    socket,
    agents: agents.size,
    hosts: hosts.size,
    topByPackets: top(active, (e) => e.pktsIn + e.pktsOut),
    topByBytes: top(active, (e) => e.bytesIn + e.bytesOut),
    partsRead: inWindow.length,
    badParts: input.badParts,
  };
}
