/**
 * Parser for what `bpftrace -f json agent/ebpf/udp-flows.bt` prints: one JSON
 * object a line. It turns the program's markers and map prints into
 * readiness, drained batches of per-tuple counters, and loss signals.
 *
 * A drain is `udpwatch drain <ns>`, `@refused`, the drained buffer's
 * `@s4_N` and `@s6_N` (per-CPU sums: packets << 40 | payload bytes) and
 * `@t4_N` and `@t6_N` (first seen << 20 | last minus first, in units of
 * 2^20 ns), then `udpwatch drained`; 4 and 6 are the address family, whose
 * keys have two and five words. An empty map prints nothing. When bpftrace
 * exits it prints every map left, with no markers: finish() returns those as
 * a last batch, so stopping loses nothing counted.
 *
 * The tuple maps are read by a scanner over the line, not JSON.parse: a
 * value can exceed 2^53 (JSON numbers would round it), and a map of many
 * tuples would otherwise become one large object per drain.
 */

/** One (direction, source, destination) tuple's counters in one batch, key still encoded. */
export interface RawTuple {
  /** `meta,addresses` (IPv4) or `meta,srcHi,srcLo,dstHi,dstLo` (IPv6), as bpftrace prints a tuple key. */
  key: string;
  packets: number;
  bytes: number;
  /** Kernel monotonic ns of the first and last packet (0 when not printed). */
  firstNs: number;
  lastNs: number;
}

/** What one line meant. */
export type BpftraceEvent =
  | { kind: 'attached'; probes: number }
  | { kind: 'ready'; netns: number; monoNs: number }
  | { kind: 'drain'; tuples: RawTuple[]; refused: number; monoNs: number | null }
  | { kind: 'lost'; events: number }
  | { kind: 'skipped'; reason: string };

const MAX_LINE = 64 * 1024 * 1024;
/** How bpftrace 0.17 starts the line of one printed map of tuples: sums (s) or times (t). */
const TUPLE_MAP = /^\{"type": "map", "data": \{"@([st])[46]_[01]": \{/;
/** One `"key": value` entry of such a map: two or five unsigned words, one unsigned value. */
const ENTRY = /"(\d{1,20}(?:,\d{1,20}){1,4})": (\d{1,20})[,}]/g;
/** The low bits of a sum that hold payload bytes (see agent/ebpf/udp-flows.bt). */
const BYTE_BITS = 40;
const BYTE_SPAN = 2 ** BYTE_BITS;
/** A seen value's time unit in ns, and the low bits that hold last minus first. */
const TIME_UNIT_NS = 2 ** 20;
const SPAN_BITS = 20;
const SPAN = 2 ** SPAN_BITS;
const U64_MAX = (1n << 64n) - 1n;

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function nonNegative(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}

/** A packed sum's packets and bytes, exactly (the decimal text of a u64). */
export function unpackSum(text: string): { packets: number; bytes: number } {
  if (text.length <= 15) {
    // Below 10^15 < 2^53: a Number holds it exactly.
    const v = Number(text);
    const packets = Math.floor(v / BYTE_SPAN);
    return { packets, bytes: v - packets * BYTE_SPAN };
  }
  let v = BigInt(text);
  if (v > U64_MAX) v = U64_MAX;
  return { packets: Number(v >> BigInt(BYTE_BITS)), bytes: Number(v & BigInt(BYTE_SPAN - 1)) };
}

/** A packed seen value's first and last packet times in kernel ns (units of 2^20 ns). */
export function unpackSeen(text: string): { firstNs: number; lastNs: number } {
  let first: number;
  let span: number;
  if (text.length <= 15) {
    const v = Number(text);
    first = Math.floor(v / SPAN);
    span = v - first * SPAN;
  } else {
    // Past 2^53 (about 104 days of uptime): split exactly.
    let v = BigInt(text);
    if (v > U64_MAX) v = U64_MAX;
    first = Number(v >> BigInt(SPAN_BITS));
    span = Number(v & BigInt(SPAN - 1));
  }
  return { firstNs: first * TIME_UNIT_NS, lastNs: (first + span) * TIME_UNIT_NS };
}

/** Stateful line parser: feed every stdout line, in order. */
export class BpftraceOutputParser {
  private pending = new Map<string, RawTuple>();
  private pendingNs: number | null = null;
  private refused = 0;

  private tuple(key: string): RawTuple {
    let t = this.pending.get(key);
    if (!t) {
      t = { key, packets: 0, bytes: 0, firstNs: 0, lastNs: 0 };
      this.pending.set(key, t);
    }
    return t;
  }

  private takeBatch(): BpftraceEvent {
    const batch: BpftraceEvent = {
      kind: 'drain',
      tuples: [...this.pending.values()],
      refused: this.refused,
      monoNs: this.pendingNs,
    };
    this.pending = new Map();
    this.pendingNs = null;
    return batch;
  }

  /** Adds one printed tuple map (`kind` s or t) to the pending batch. */
  private tupleMap(kind: string, text: string): void {
    ENTRY.lastIndex = 0;
    for (let m = ENTRY.exec(text); m !== null; m = ENTRY.exec(text)) {
      const t = this.tuple(m[1]!);
      const value = m[2]!;
      if (kind === 's') {
        // Batches of both buffers at exit may name one tuple twice: they add up.
        const { packets, bytes } = unpackSum(value);
        t.packets += packets;
        t.bytes += bytes;
      } else {
        const { firstNs, lastNs } = unpackSeen(value);
        if (firstNs > 0 && (t.firstNs === 0 || firstNs < t.firstNs)) t.firstNs = firstNs;
        if (lastNs > t.lastNs) t.lastNs = lastNs;
      }
    }
  }

  /** Parses one line; returns what it completed, or null. */
  line(text: string): BpftraceEvent | null {
    const trimmed = text.trim();
    if (trimmed === '') return null;
    if (trimmed.length > MAX_LINE) return { kind: 'skipped', reason: 'line over 64 MiB' };
    const tuples = TUPLE_MAP.exec(trimmed);
    if (tuples) {
      this.tupleMap(tuples[1]!, trimmed);
      return null;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(trimmed);
    } catch {
      return { kind: 'skipped', reason: `not JSON: ${JSON.stringify(trimmed.slice(0, 80))}` };
    }
    if (!isRecord(msg) || typeof msg.type !== 'string') {
      return { kind: 'skipped', reason: 'no "type" field' };
    }
    const { type, data } = msg;
    if (type === 'attached_probes' && isRecord(data)) {
      return { kind: 'attached', probes: nonNegative(data.probes) };
    }
    if (type === 'lost_events' && isRecord(data)) {
      return { kind: 'lost', events: nonNegative(data.events) };
    }
    if (type === 'printf' && typeof data === 'string') {
      const words = data.trim().split(' ');
      if (words[0] !== 'udpwatch') return null;
      if (words[1] === 'ready') {
        return { kind: 'ready', netns: Number(words[2]), monoNs: Number(words[3]) };
      }
      if (words[1] === 'drain') {
        this.pendingNs = Number(words[2]);
        return null;
      }
      if (words[1] === 'drained') return this.takeBatch();
      return null;
    }
    if (type === 'map' && isRecord(data) && '@refused' in data) {
      this.refused = nonNegative(data['@refused']);
      return null;
    }
    return null;
  }

  /** What bpftrace printed at exit after the last complete drain, as one batch (null when nothing). */
  finish(): BpftraceEvent | null {
    if (this.pending.size === 0) return null;
    return this.takeBatch();
  }
}

/**
 * Kernel monotonic ns to epoch ms. Each drain marker is stamped in the kernel
 * and read here a little later, so every pairing overstates the offset by
 * that delay: the smallest offset of recent pairings is the closest.
 */
export class KernelClock {
  private offsets: number[] = [];
  /** The smallest of `offsets`, kept so a drain of many tuples does not scan them per tuple. */
  private best = Number.POSITIVE_INFINITY;

  /** Pairs a kernel timestamp with the wall clock at which it was read. */
  observe(monoNs: number, atMs: number): void {
    if (!Number.isFinite(monoNs) || monoNs <= 0) return;
    this.offsets.push(atMs - monoNs / 1e6);
    // A short window follows wall-clock steps (NTP) within a few drains.
    if (this.offsets.length > 8) this.offsets.shift();
    this.best = Math.min(...this.offsets);
  }

  /** Epoch ms of a kernel timestamp, or `fallback` before any pairing. */
  toEpochMs(monoNs: number, fallback: number): number {
    if (this.offsets.length === 0 || monoNs <= 0) return fallback;
    return Math.round(monoNs / 1e6 + this.best);
  }
}
