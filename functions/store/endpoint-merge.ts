/**
 * Merges stored parts into the views the API answers with: one entry per
 * endpoint (service, ip, port) or per client IP (service, ip). Every part is a
 * self-contained delta, so an entry's counters are the sums over the parts,
 * its first seen the minimum and its last seen the maximum; hosts, sources,
 * pre-NAT addresses, owners and client ids are the unions. Pure: no I/O.
 *
 * Times are epoch ms at the start of a second (see stored-part.ts); an entry
 * is active when `lastSeen >= since`, with `since` floored to the second.
 * Order is newest first, ties by the entry's key (plain code-unit order), so
 * every read of the same parts lists entries the same way and a cursor can
 * resume after a (lastSeen, key) position.
 */
import type { BlockOwner } from '../../contract/block.js';
import { formatEndpoint } from '../../contract/ip-address.js';
import { endpointTimes, type StoredPart } from './stored-part.js';

/** How entries are keyed: by endpoint (service, ip, port) or by IP (service, ip). */
export type MergeView = 'endpoint' | 'ip';

/** One merged entry. */
export interface MergedClient {
  /** Sort and cursor key: service, ip and (endpoint view) port. */
  key: string;
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
  sources: string[];
  /** Pre-NAT addresses (`ip:port`, `[ip]:port` for IPv6) the agents reported. */
  natFrom: string[];
  owners: BlockOwner[];
  clientIds: string[];
}

/** Where a listing stands: after the entry with this last seen and key. */
export interface ListPosition {
  lastSeen: number;
  key: string;
}

/**
 * A union of strings that costs no Set while it holds one value (the common
 * case: one host, one source, no or one pre-NAT address or client id).
 */
class Union {
  private one: string | undefined;
  private many: Set<string> | undefined;

  add(v: string): void {
    if (this.one === undefined) this.one = v;
    else if (v !== this.one) {
      this.many ??= new Set([this.one]);
      this.many.add(v);
    }
  }

  sorted(): string[] {
    if (this.many) return [...this.many].sort();
    return this.one === undefined ? [] : [this.one];
  }
}

interface Accumulator {
  entry: MergedClient;
  hosts: Union;
  sources: Union;
  natFrom: Union;
  owners: Map<string, BlockOwner> | undefined;
  clientIds: Union;
}

/** Options of a merge. */
export interface MergeOptions {
  view: MergeView;
  /** Only endpoints of this client IP (canonical text), as seen or as its pre-NAT address. */
  ip?: string;
}

/** Zero-padded port texts, built once (keys of one IP sort by port). */
const PORT_TEXT: string[] = Array.from({ length: 65_536 }, (_, p) => String(p).padStart(5, '0'));

/** A port as five digits, as entry keys hold it. */
export function portText(port: number): string {
  return PORT_TEXT[port] ?? String(port).padStart(5, '0');
}

function entryKey(service: string, ip: string, port: number | undefined): string {
  // \u0000 cannot occur in names.
  return port === undefined
    ? `${service}\u0000${ip}`
    : `${service}\u0000${ip}\u0000${portText(port)}`;
}

/** Merges parts into one accumulator per entry of the view. */
export class EndpointMerger {
  private readonly entries = new Map<string, Accumulator>();

  constructor(private readonly options: MergeOptions) {}

  /** Adds every endpoint of one part. */
  add(part: StoredPart): void {
    const { block } = part;
    const byEndpoint = this.options.view === 'endpoint';
    const onlyIp = this.options.ip;
    const eps = block.endpoints;
    for (let i = 0; i < eps.length; i++) {
      const e = eps[i]!;
      if (onlyIp !== undefined && e.ip !== onlyIp && e.natFromIp !== onlyIp) continue;
      const [first, last] = endpointTimes(part, i);
      const key = entryKey(block.service, e.ip, byEndpoint ? e.port : undefined);
      let acc = this.entries.get(key);
      if (!acc) {
        const entry: MergedClient = {
          key,
          service: block.service,
          ip: e.ip,
          firstSeen: first,
          lastSeen: last,
          pktsIn: 0,
          bytesIn: 0,
          pktsOut: 0,
          bytesOut: 0,
          hosts: [],
          sources: [],
          natFrom: [],
          owners: [],
          clientIds: [],
        };
        if (byEndpoint) entry.port = e.port;
        acc = {
          entry,
          hosts: new Union(),
          sources: new Union(),
          natFrom: new Union(),
          owners: undefined,
          clientIds: new Union(),
        };
        this.entries.set(key, acc);
      }
      const m = acc.entry;
      m.pktsIn += e.pktsIn;
      m.bytesIn += e.bytesIn;
      m.pktsOut += e.pktsOut;
      m.bytesOut += e.bytesOut;
      if (first < m.firstSeen) m.firstSeen = first;
      if (last > m.lastSeen) m.lastSeen = last;
      acc.hosts.add(block.host);
      acc.sources.add(e.source);
      if (e.natFromIp !== undefined) {
        acc.natFrom.add(
          e.natFromPort !== undefined ? formatEndpoint(e.natFromIp, e.natFromPort) : e.natFromIp,
        );
      }
      const o = e.owner;
      if (o && (o.pid !== undefined || o.process !== undefined)) {
        const ownerKey = `${o.pid ?? ''}\u0000${o.process ?? ''}`;
        acc.owners ??= new Map();
        if (!acc.owners.has(ownerKey)) {
          const owner: BlockOwner = {};
          if (o.pid !== undefined) owner.pid = o.pid;
          if (o.process !== undefined) owner.process = o.process;
          acc.owners.set(ownerKey, owner);
        }
      }
      if (e.clientId !== undefined) acc.clientIds.add(e.clientId);
    }
  }

  /** The merged entries (unsorted, unfiltered), with their sets as sorted lists; call once, after the last add. */
  result(): MergedClient[] {
    const out: MergedClient[] = [];
    for (const acc of this.entries.values()) {
      const m = acc.entry;
      m.hosts = acc.hosts.sorted();
      m.sources = acc.sources.sorted();
      m.natFrom = acc.natFrom.sorted();
      m.owners = acc.owners
        ? [...acc.owners.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map((o) => o[1])
        : [];
      m.clientIds = acc.clientIds.sorted();
      out.push(m);
    }
    return out;
  }
}

/** Merges parts into the entries of a view (unsorted, unfiltered). */
export function mergeParts(parts: Iterable<StoredPart>, options: MergeOptions): MergedClient[] {
  const merger = new EndpointMerger(options);
  for (const p of parts) merger.add(p);
  return merger.result();
}

/** Newest first, then by key: a total order on entries of one listing. */
export function compareNewestFirst(a: ListPosition, b: ListPosition): number {
  return b.lastSeen - a.lastSeen || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

/** The entries last seen at or after `since`, newest first. */
export function activeNewestFirst(entries: MergedClient[], since: number): MergedClient[] {
  return entries.filter((e) => e.lastSeen >= since).sort(compareNewestFirst);
}

/** The epoch-ms start of the window `windowSeconds` before `now`, floored to the second. */
export function windowSince(now: number, windowSeconds: number): number {
  return Math.floor((now - windowSeconds * 1000) / 1000) * 1000;
}

/** One page of a sorted listing: up to `limit` entries after `after`, and where the next page starts. */
export function pageAfter(
  sortedEntries: readonly MergedClient[],
  after: ListPosition | null,
  limit: number,
): { page: MergedClient[]; next: ListPosition | null } {
  let start = 0;
  if (after) {
    // Binary search for the first entry strictly after the position.
    let lo = 0;
    let hi = sortedEntries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareNewestFirst(sortedEntries[mid]!, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const page = sortedEntries.slice(start, start + limit);
  const last = page[page.length - 1];
  const more = start + limit < sortedEntries.length;
  return { page, next: more && last ? { lastSeen: last.lastSeen, key: last.key } : null };
}

/** Counts the active endpoints and distinct IPs among endpoint-view entries. */
export function countActive(
  endpoints: readonly MergedClient[],
  since: number,
): { endpoints: number; ips: number } {
  const ips = new Set<string>();
  let n = 0;
  for (const e of endpoints) {
    if (e.lastSeen < since) continue;
    n++;
    ips.add(e.key.slice(0, e.key.lastIndexOf('\u0000')));
  }
  return { endpoints: n, ips: ips.size };
}
