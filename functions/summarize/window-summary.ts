/**
 * A service's summary of one minute from the states of its window's minutes
 * (minute-state.ts). It equals `buildSummary` over the same minutes' parts:
 * counters are sums and last seen a maximum, so merging per minute first and
 * then across minutes gives the same entries; the active filter, counts and
 * top talkers (a total order: size, newest, key) do not depend on the order
 * of merging. Pure.
 */
import { type SummaryItem, TOP_TALKERS, type TopTalker } from '../../contract/summary.js';
import { keyIp, type MinuteState, secondMs } from './minute-state.js';
import { summaryWindow } from './summary-builder.js';

/** What a summary is built from: one state per minute of the window (a minute without parts may be absent). */
export interface StateSummaryInput {
  service: string;
  minute: number;
  windowSeconds: number;
  computedAt: number;
  states: readonly MinuteState[];
}

/** The window's entries merged per endpoint, in columns. */
interface Window {
  keys: string[];
  ports: number[];
  pktsIn: number[];
  bytesIn: number[];
  pktsOut: number[];
  bytesOut: number[];
  lastSeen: number[];
}

function mergeWindow(states: readonly MinuteState[]): Window {
  const w: Window = {
    keys: [],
    ports: [],
    pktsIn: [],
    bytesIn: [],
    pktsOut: [],
    bytesOut: [],
    lastSeen: [],
  };
  const index = new Map<string, number>();
  for (const s of states) {
    for (let i = 0; i < s.keys.length; i++) {
      const key = s.keys[i]!;
      const seen = secondMs(s.minute, s.lastSecond[i]!);
      const j = index.get(key);
      if (j === undefined) {
        index.set(key, w.keys.length);
        w.keys.push(key);
        w.ports.push(s.ports[i]!);
        w.pktsIn.push(s.pktsIn[i]!);
        w.bytesIn.push(s.bytesIn[i]!);
        w.pktsOut.push(s.pktsOut[i]!);
        w.bytesOut.push(s.bytesOut[i]!);
        w.lastSeen.push(seen);
      } else {
        w.pktsIn[j]! += s.pktsIn[i]!;
        w.bytesIn[j]! += s.bytesIn[i]!;
        w.pktsOut[j]! += s.pktsOut[i]!;
        w.bytesOut[j]! += s.bytesOut[i]!;
        if (seen > w.lastSeen[j]!) w.lastSeen[j] = seen;
      }
    }
  }
  return w;
}

/**
 * The TOP_TALKERS largest of `candidates` by `size`, ties newest first then
 * by key: the order `buildSummary` sorts by, kept by insertion into a short
 * list instead of sorting every active endpoint.
 */
function top(w: Window, candidates: readonly number[], size: (j: number) => number): TopTalker[] {
  const before = (a: number, b: number): boolean => {
    const d = size(a) - size(b);
    if (d !== 0) return d > 0;
    if (w.lastSeen[a] !== w.lastSeen[b]) return w.lastSeen[a]! > w.lastSeen[b]!;
    return w.keys[a]! < w.keys[b]!;
  };
  const best: number[] = [];
  for (const j of candidates) {
    if (best.length === TOP_TALKERS && !before(j, best[best.length - 1]!)) continue;
    let at = best.length === TOP_TALKERS ? best.length - 1 : best.length;
    best[at] = j;
    while (at > 0 && before(j, best[at - 1]!)) {
      best[at] = best[at - 1]!;
      best[at - 1] = j;
      at--;
    }
  }
  return best.map((j) => ({
    ip: keyIp(w.keys[j]!),
    port: w.ports[j]!,
    pktsIn: w.pktsIn[j]!,
    bytesIn: w.bytesIn[j]!,
    pktsOut: w.pktsOut[j]!,
    bytesOut: w.bytesOut[j]!,
    lastSeen: w.lastSeen[j]!,
  }));
}

/** Builds the summary of `input.minute` from its window's minute states. */
export function summarizeStates(input: StateSummaryInput): SummaryItem {
  const { since, until, firstMinute } = summaryWindow(input.minute, input.windowSeconds);
  const states = input.states.filter((s) => s.minute >= firstMinute && s.minute <= input.minute);
  const w = mergeWindow(states);
  const active: number[] = [];
  const ips = new Set<string>();
  let oneWay = 0;
  for (let j = 0; j < w.keys.length; j++) {
    const seen = w.lastSeen[j]!;
    if (seen < since || seen >= until) continue;
    active.push(j);
    ips.add(keyIp(w.keys[j]!));
    if (w.pktsIn[j]! > 0 && w.pktsOut[j] === 0) oneWay++;
  }
  const own = states.find((s) => s.minute === input.minute);
  return {
    service: input.service,
    minute: input.minute,
    windowSeconds: input.windowSeconds,
    since,
    until,
    computedAt: input.computedAt,
    activeClients: active.length,
    activeClientIps: ips.size,
    oneWay,
    ...(own ? own.totals : { pktsIn: 0, bytesIn: 0, pktsOut: 0, bytesOut: 0 }),
    socket: own?.socket ? { ...own.socket } : null,
    agents: own?.agents.length ?? 0,
    hosts: own?.hosts.length ?? 0,
    topByPackets: top(w, active, (j) => w.pktsIn[j]! + w.pktsOut[j]!),
    topByBytes: top(w, active, (j) => w.bytesIn[j]! + w.bytesOut[j]!),
    partsRead: states.reduce((n, s) => n + s.parts, 0),
    badParts: states.reduce((n, s) => n + s.badParts, 0),
  };
}
