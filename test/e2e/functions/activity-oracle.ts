/**
 * The ground truth the read side is checked against: what a test put, merged
 * in memory the obvious way (a map per endpoint or IP, no shared code with
 * the functions).
 */
import type { BlockEndpoint } from '../../../contract/block.js';

/** One endpoint of one stored part, as a test put it. */
export interface Sighting {
  service: string;
  agentId: string;
  host: string;
  minute: number;
  e: BlockEndpoint;
}

/** An oracle entry. */
export interface OracleEntry {
  service: string;
  ip: string;
  port?: number;
  firstSeen: number;
  lastSeen: number;
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
  hosts: string[];
}

/** Entries of sightings in minutes [a, b] keyed by endpoint or IP, active at `since`, newest first then by ip and port. */
export function oracle(
  sightings: readonly Sighting[],
  opts: { by: 'endpoint' | 'ip'; since: number; a: number; b: number; host?: string; ip?: string },
): OracleEntry[] {
  const map = new Map<string, OracleEntry & { hostSet: Set<string> }>();
  for (const s of sightings) {
    if (s.minute < opts.a || s.minute > opts.b) continue;
    if (opts.host !== undefined && s.host !== opts.host) continue;
    if (opts.ip !== undefined && s.e.ip !== opts.ip) continue;
    const key =
      opts.by === 'endpoint' ? `${s.service}|${s.e.ip}|${s.e.port}` : `${s.service}|${s.e.ip}`;
    const first = s.minute * 60_000 + s.e.firstSecond * 1000;
    const last = s.minute * 60_000 + s.e.lastSecond * 1000;
    const cur = map.get(key);
    if (!cur) {
      map.set(key, {
        service: s.service,
        ip: s.e.ip,
        ...(opts.by === 'endpoint' ? { port: s.e.port } : {}),
        firstSeen: first,
        lastSeen: last,
        pktsIn: s.e.pktsIn,
        bytesIn: s.e.bytesIn,
        pktsOut: s.e.pktsOut,
        bytesOut: s.e.bytesOut,
        hosts: [],
        hostSet: new Set([s.host]),
      });
      continue;
    }
    cur.firstSeen = Math.min(cur.firstSeen, first);
    cur.lastSeen = Math.max(cur.lastSeen, last);
    cur.pktsIn += s.e.pktsIn;
    cur.bytesIn += s.e.bytesIn;
    cur.pktsOut += s.e.pktsOut;
    cur.bytesOut += s.e.bytesOut;
    cur.hostSet.add(s.host);
  }
  return [...map.values()]
    .filter((e) => e.lastSeen >= opts.since)
    .map(({ hostSet, ...e }) => ({ ...e, hosts: [...hostSet].sort() }))
    .sort(
      (x, y) =>
        y.lastSeen - x.lastSeen ||
        (x.service < y.service ? -1 : x.service > y.service ? 1 : 0) ||
        (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : 0) ||
        (x.port ?? 0) - (y.port ?? 0),
    );
}

/** The fields of an API entry the oracle knows. */
export function comparable(c: Record<string, unknown>): OracleEntry {
  return {
    service: c.service as string,
    ip: c.ip as string,
    ...(c.port !== undefined ? { port: c.port as number } : {}),
    firstSeen: c.firstSeen as number,
    lastSeen: c.lastSeen as number,
    pktsIn: c.pktsIn as number,
    bytesIn: c.bytesIn as number,
    pktsOut: c.pktsOut as number,
    bytesOut: c.bytesOut as number,
    hosts: c.hosts as string[],
  };
}
