/**
 * The part of a service-minute a summary needs, decoded once and merged per
 * endpoint (ip, port): summed counters and the latest second, plus the
 * minute's own totals, socket health, agents, hosts and part counts. A
 * summary of minute m is a pure function of the states of its window's
 * minutes (window-summary.ts), so a state read once can serve every summary
 * whose window holds its minute. Compact on purpose (typed columns, one key
 * string per endpoint): a run keeps a window of them in memory.
 */
import { MINUTE_MS } from '../../contract/block.js';
import { portText } from '../store/endpoint-merge.js';
import type { StoredPart } from '../store/stored-part.js';

/** One service-minute, merged per endpoint. Endpoint i is `keys[i]` with its columns at index i. */
export interface MinuteState {
  service: string;
  minute: number;
  /** `ip \u0000 port (5 digits)`: sorts like the merged entries' keys within one service. */
  keys: string[];
  ports: Uint16Array;
  pktsIn: Float64Array;
  bytesIn: Float64Array;
  pktsOut: Float64Array;
  bytesOut: Float64Array;
  /** Second within the minute (0..59) of the endpoint's latest packet. */
  lastSecond: Uint8Array;
  totals: { pktsIn: number; bytesIn: number; pktsOut: number; bytesOut: number };
  socket: { rxQueueBytes: number; drops: number } | null;
  agents: string[];
  hosts: string[];
  /** Parts merged, and stored parts skipped as bad while reading the minute. */
  parts: number;
  badParts: number;
}

/** The key of endpoint (ip, port) in a state. */
export function endpointKey(ip: string, port: number): string {
  return `${ip}\u0000${portText(port)}`;
}

/** The IP of a state's endpoint key. */
export function keyIp(key: string): string {
  return key.slice(0, key.length - 6);
}

/**
 * Merges the minute parts of one service-minute (never roll-up parts) into
 * its state. `badParts` is what the read of the minute skipped.
 */
export function buildMinuteState(
  service: string,
  minute: number,
  parts: readonly StoredPart[],
  badParts: number,
): MinuteState {
  const index = new Map<string, number>();
  const keys: string[] = [];
  const ports: number[] = [];
  const pIn: number[] = [];
  const bIn: number[] = [];
  const pOut: number[] = [];
  const bOut: number[] = [];
  const last: number[] = [];
  const totals = { pktsIn: 0, bytesIn: 0, pktsOut: 0, bytesOut: 0 };
  let socket: MinuteState['socket'] = null;
  const agents = new Set<string>();
  const hosts = new Set<string>();
  for (const { block, seconds } of parts) {
    if (block.minute !== minute || block.service !== service || seconds) {
      throw new Error(
        `minute state of ${service} minute ${minute}: part ${block.part} of agent ${block.agentId} is of ${block.service} minute ${block.minute}${seconds ? ' (a roll-up)' : ''}`,
      );
    }
    agents.add(block.agentId);
    hosts.add(block.host);
    if (block.socket) {
      socket ??= { rxQueueBytes: 0, drops: 0 };
      if (block.socket.rxQueueBytes > socket.rxQueueBytes) {
        socket.rxQueueBytes = block.socket.rxQueueBytes;
      }
      socket.drops += block.socket.drops;
    }
    const eps = block.endpoints;
    for (let i = 0; i < eps.length; i++) {
      const e = eps[i]!;
      totals.pktsIn += e.pktsIn;
      totals.bytesIn += e.bytesIn;
      totals.pktsOut += e.pktsOut;
      totals.bytesOut += e.bytesOut;
      const key = endpointKey(e.ip, e.port);
      const j = index.get(key);
      if (j === undefined) {
        index.set(key, keys.length);
        keys.push(key);
        ports.push(e.port);
        pIn.push(e.pktsIn);
        bIn.push(e.bytesIn);
        pOut.push(e.pktsOut);
        bOut.push(e.bytesOut);
        last.push(e.lastSecond);
      } else {
        pIn[j]! += e.pktsIn;
        bIn[j]! += e.bytesIn;
        pOut[j]! += e.pktsOut;
        bOut[j]! += e.bytesOut;
        if (e.lastSecond > last[j]!) last[j] = e.lastSecond;
      }
    }
  }
  return {
    service,
    minute,
    keys,
    ports: Uint16Array.from(ports),
    pktsIn: Float64Array.from(pIn),
    bytesIn: Float64Array.from(bIn),
    pktsOut: Float64Array.from(pOut),
    bytesOut: Float64Array.from(bOut),
    lastSecond: Uint8Array.from(last),
    totals,
    socket,
    agents: [...agents],
    hosts: [...hosts],
    parts: parts.length,
    badParts,
  };
}

/** Epoch ms of the start of second `s` of `minute`. */
export function secondMs(minute: number, s: number): number {
  return minute * MINUTE_MS + s * 1000;
}
