/**
 * Parser for connection-tracking tables: /proc/net/nf_conntrack lines and the
 * output of `conntrack -L -o extended` (same layout, IPv6 compressed), or plain
 * `conntrack -L` (no leading `ipv4 2`).
 *
 *   ipv4     2 udp      17 29 src=192.0.2.2 dst=203.0.113.2 sport=40001 dport=5000
 *     packets=1 bytes=60 [UNREPLIED] src=203.0.113.2 dst=192.0.2.2 sport=5000
 *     dport=40001 packets=0 bytes=0 mark=0 zone=0 use=2
 *
 * The first src/dst/sport/dport (+ packets/bytes when nf_conntrack_acct is on)
 * are the original direction (as the initiator sent it), the second set the
 * reply direction (as the responder sends back, i.e. after NAT).
 */
import { normalizeIp } from '../contract/ip-address.js';
import type { LineError } from './proc-net-udp.js';

/** One direction of a tracked flow. Counters are cumulative and present only with accounting on. */
export interface ConntrackTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  packets?: number;
  bytes?: number;
}

/** One conntrack entry. */
export interface ConntrackEntry {
  family: 4 | 6;
  protocol: string;
  /** Seconds until the entry expires unless more packets arrive. */
  timeout: number;
  orig: ConntrackTuple;
  reply: ConntrackTuple;
  /** No packet has been seen in the reply direction yet. */
  unreplied: boolean;
  /** Traffic seen both ways long enough that the kernel will not evict it early. */
  assured: boolean;
  zone?: number;
  mark?: number;
}

/** Parse result; `skipped` counts well-formed lines of other protocols. */
export interface ConntrackParse {
  entries: ConntrackEntry[];
  errors: LineError[];
  skipped: number;
}

/**
 * Walks the space-separated tokens of one line in place. Tables run to
 * hundreds of thousands of lines, so tokens are compared and numbers read
 * where they lie; only addresses become substrings.
 */
class Cursor {
  line = '';
  pos = 0;
  start = 0;
  end = 0;

  reset(line: string): void {
    this.line = line;
    this.pos = 0;
  }

  /** Moves to the next token; false at the end of the line. */
  next(): boolean {
    const { line } = this;
    const n = line.length;
    let i = this.pos;
    while (i < n && (line.charCodeAt(i) === 32 || line.charCodeAt(i) === 9)) i++;
    if (i >= n) return false;
    this.start = i;
    while (i < n && line.charCodeAt(i) !== 32 && line.charCodeAt(i) !== 9) i++;
    this.end = i;
    this.pos = i;
    return true;
  }

  text(from = this.start): string {
    return this.line.slice(from, this.end);
  }

  is(word: string, from = this.start): boolean {
    return this.end - from === word.length && this.line.startsWith(word, from);
  }

  /** The unsigned decimal at [from, end) if it is one and no larger than max, else null. */
  number(from: number, max: number): number | null {
    const n = this.end - from;
    if (n === 0 || n > 16) return null;
    let v = 0;
    for (let i = from; i < this.end; i++) {
      const d = this.line.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return null;
      v = v * 10 + d;
    }
    return v <= max ? v : null;
  }
}

type Draft = {
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  packets?: number;
  bytes?: number;
};

function finishTuple(d: Draft, which: string): ConntrackTuple | string {
  if (
    d.src === undefined ||
    d.dst === undefined ||
    d.sport === undefined ||
    d.dport === undefined
  ) {
    return `incomplete ${which} tuple`;
  }
  const t: ConntrackTuple = { src: d.src, dst: d.dst, sport: d.sport, dport: d.dport };
  if (d.packets !== undefined) t.packets = d.packets;
  if (d.bytes !== undefined) t.bytes = d.bytes;
  return t;
}

function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
}

/** Which tuple counter or port a key of the given length at `start` names, if any. */
function numberKey(
  line: string,
  start: number,
  len: number,
): 'sport' | 'dport' | 'packets' | 'bytes' | null {
  if (len === 5) {
    if (line.startsWith('sport', start)) return 'sport';
    if (line.startsWith('dport', start)) return 'dport';
    if (line.startsWith('bytes', start)) return 'bytes';
  } else if (len === 7 && line.startsWith('packets', start)) return 'packets';
  return null;
}

/** Parses the line under the cursor: an entry, null for another protocol, or why it is malformed. */
function parseLine(
  c: Cursor,
  protocol: string | null,
  ipCache: Map<string, string | null>,
): ConntrackEntry | null | string {
  let family: 4 | 6 | 0 = 0;
  c.next();
  if (c.is('ipv4') || c.is('ipv6')) {
    family = c.is('ipv4') ? 4 : 6;
    if (!c.next() || c.number(c.start, 255) === null)
      return `bad layer 3 number ${quote(c.text())}`;
    if (!c.next()) return 'missing protocol';
  }
  const eqAt = c.line.indexOf('=', c.start);
  if (eqAt >= 0 && eqAt < c.end) return 'missing protocol';
  const proto = protocol !== null && c.is(protocol) ? protocol : c.text();
  if (protocol !== null && proto !== protocol) return null;
  if (!c.next() || c.number(c.start, 255) === null) return `bad protocol number ${quote(c.text())}`;
  const timeout = c.next() ? c.number(c.start, 0xffffffff) : null;
  if (timeout === null) return `bad timeout ${quote(c.text())}`;
  const orig: Draft = {};
  const reply: Draft = {};
  let current: Draft | null = null;
  let unreplied = false;
  let assured = false;
  let zone: number | undefined;
  let mark: number | undefined;
  while (c.next()) {
    const { line, start, end } = c;
    if (line.charCodeAt(start) === 91 /* [ */) {
      if (c.is('[UNREPLIED]')) unreplied = true;
      else if (c.is('[ASSURED]')) assured = true;
      continue; // [OFFLOAD] and friends carry nothing we use
    }
    let eq = start;
    while (eq < end && line.charCodeAt(eq) !== 61 /* = */) eq++;
    if (eq === end) continue; // TCP state words and future bare flags
    const keyLen = eq - start;
    const at = eq + 1;
    if (keyLen === 3) {
      const key = line.startsWith('src', start)
        ? 'src'
        : line.startsWith('dst', start)
          ? 'dst'
          : null;
      if (key === null) continue;
      if (key === 'src') {
        if (current === null) current = orig;
        else if (current === orig) current = reply;
        else return 'more than two tuples';
      }
      const value = c.text(at);
      let ip = ipCache.get(value);
      if (ip === undefined) {
        ip = normalizeIp(value);
        ipCache.set(value, ip);
      }
      if (ip === null || current === null || current[key] !== undefined) {
        return `bad ${key} ${quote(value)}`;
      }
      current[key] = ip;
      continue;
    }
    const key = numberKey(line, start, keyLen);
    if (key !== null) {
      const isPort = key === 'sport' || key === 'dport';
      const n = c.number(at, isPort ? 65535 : Number.MAX_SAFE_INTEGER);
      if (n === null || current === null || current[key] !== undefined) {
        return `bad ${key} ${quote(c.text(at))}`;
      }
      current[key] = n;
    } else if (keyLen === 4 && line.startsWith('zone', start)) {
      const n = c.number(at, 65535);
      if (n === null) return `bad zone ${quote(c.text(at))}`;
      zone = n;
    } else if (keyLen === 4 && line.startsWith('mark', start)) {
      const n = c.number(at, 0xffffffff);
      if (n === null) return `bad mark ${quote(c.text(at))}`;
      mark = n;
    }
    // use=, secctx=, id=, timestamps: not needed
  }
  const o = finishTuple(orig, 'original');
  if (typeof o === 'string') return o;
  const r = finishTuple(reply, 'reply');
  if (typeof r === 'string') return r;
  const addrFamily = o.src.includes(':') ? 6 : 4;
  if (family === 0) family = addrFamily;
  if (
    addrFamily !== family ||
    (o.dst.includes(':') ? 6 : 4) !== family ||
    (r.src.includes(':') ? 6 : 4) !== family ||
    (r.dst.includes(':') ? 6 : 4) !== family
  ) {
    return `addresses do not match ipv${family}`;
  }
  const entry: ConntrackEntry = {
    family,
    protocol: proto,
    timeout,
    orig: o,
    reply: r,
    unreplied,
    assured,
  };
  if (zone !== undefined) entry.zone = zone;
  if (mark !== undefined) entry.mark = mark;
  return entry;
}

/**
 * Parses conntrack table text. By default keeps UDP entries only (others are
 * counted in `skipped`; pass `protocol: null` for all). Malformed lines are
 * skipped and reported with their line number; never throws.
 */
export function parseConntrack(
  text: string,
  opts: { path?: string; protocol?: string | null } = {},
): ConntrackParse {
  const path = opts.path ?? '/proc/net/nf_conntrack';
  const protocol = opts.protocol === undefined ? 'udp' : opts.protocol;
  const entries: ConntrackEntry[] = [];
  const errors: LineError[] = [];
  const ipCache = new Map<string, string | null>();
  let skipped = 0;
  const lines = text.split('\n');
  const cursor = new Cursor();
  for (let n = 0; n < lines.length; n++) {
    cursor.reset(lines[n]!);
    if (!cursor.next()) continue; // blank
    cursor.reset(lines[n]!);
    const parsed = parseLine(cursor, protocol, ipCache);
    if (parsed === null) skipped++;
    else if (typeof parsed === 'string') errors.push({ path, line: n + 1, reason: parsed });
    else entries.push(parsed);
  }
  return { entries, errors, skipped };
}
