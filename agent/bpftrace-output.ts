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
import { DrainedTuples, MAX_KEY_WORDS } from './drained-tuples.js';

/** What one line meant. */
export type BpftraceEvent =
  | { kind: 'attached'; probes: number }
  | { kind: 'ready'; netns: number; monoNs: number }
  /** A drain is complete: its `tuples` rows are in the parser's DrainedTuples. */
  | { kind: 'drain'; tuples: number; refused: number; monoNs: number | null }
  | { kind: 'lost'; events: number }
  | { kind: 'skipped'; reason: string };

const MAX_LINE = 64 * 1024 * 1024;
/** How bpftrace 0.17 starts the line of one printed map of tuples: sums (s) or times (t). */
const TUPLE_MAP = /^\{"type": "map", "data": \{"@([st])[46]_[01]": \{/;
/** Where the next entry starts: what follows an entry that is not one. */
const NEXT_ENTRY = ', "';
const TWO_32 = 2 ** 32;
/** A sum's packets are its bits 40..63: the high word's top 24 bits. */
const PACKET_SHIFT = 2 ** 8;
/** A seen value's time unit in ns, and its span bits (last minus first, the low 20). */
const TIME_UNIT_NS = 2 ** 20;
const SPAN = 2 ** 20;
/** A seen value's first time is its bits 20..63: the high word times 2^12, plus the low word's top 12 bits. */
const HIGH_WORD_UNITS = 2 ** 12;

/** The last number readU64() read, as its high and low 32-bit halves. */
const u64 = { hi: 0, lo: 0 };

/**
 * Reads the decimal u64 at `at` in `text` into `u64`; returns where its
 * digits end, or -1 unless 1 to 20 digits of a value up to 2^64 - 1 are
 * there. Plain number arithmetic, no BigInt or string: past 15 digits, a
 * digit's carry out of the low half is at most 9, so every step is exact.
 */
function readU64(text: string, at: number): number {
  // Up to 15 digits (below 10^15 < 2^53) a plain number holds exactly.
  let v = 0;
  let i = at;
  const short = Math.min(text.length, at + 15);
  for (; i < short; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
  }
  if (i === at) return -1;
  let hi = Math.floor(v / TWO_32);
  let lo = v - hi * TWO_32;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) break;
    if (i - at === 20) return -1;
    lo = lo * 10 + (c - 48);
    const carry = Math.floor(lo / TWO_32);
    lo -= carry * TWO_32;
    hi = hi * 10 + carry;
    if (hi >= TWO_32) return -1; // past 2^64 - 1
  }
  u64.hi = hi;
  u64.lo = lo;
  return i;
}

/** How many words readKey() read last (4 or 10). */
export const keyRead = { width: 0 };

/**
 * Reads the key at `at` in `text`, two or five comma-joined decimal u64s,
 * into `words` as their 32-bit halves `[hi, lo, hi, lo, …]` (width in
 * `keyRead`); returns where it ends, or -1 unless two or five are there.
 */
export function readKey(text: string, at: number, words: Float64Array): number {
  let width = 0;
  let end = at;
  for (;;) {
    // A sixth number makes no key.
    if (width === MAX_KEY_WORDS) return -1;
    end = readU64(text, end);
    if (end < 0) return -1;
    words[width++] = u64.hi;
    words[width++] = u64.lo;
    if (text.charCodeAt(end) !== 44 /* , */) break;
    end++;
  }
  if (width !== 4 && width !== MAX_KEY_WORDS) return -1;
  keyRead.width = width;
  return end;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function nonNegative(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}

/** Stateful line parser: feed every stdout line, in order; complete drains go into `drained`. */
export class BpftraceOutputParser {
  /** Rows of the drain being printed. */
  private pending = new DrainedTuples();
  private pendingNs: number | null = null;
  private refused = 0;
  private skippedEntries = 0;
  private readonly key = new Float64Array(MAX_KEY_WORDS);

  constructor(private readonly drained: DrainedTuples) {}

  /** Printed entries that were no tuple of the program (a program/agent mismatch), cumulative. */
  get badEntries(): number {
    return this.skippedEntries;
  }

  private takeBatch(): BpftraceEvent {
    const tuples = this.pending.size;
    this.drained.absorb(this.pending);
    const batch: BpftraceEvent = {
      kind: 'drain',
      tuples,
      refused: this.refused,
      monoNs: this.pendingNs,
    };
    this.pendingNs = null;
    return batch;
  }

  /**
   * Adds the entries of one printed tuple map (`kind` s or t) from `at` to
   * the pending drain. Each entry is `"w,w…": value`, two or five u64s and
   * one u64, read in place: no string or object per entry.
   */
  private tupleMap(kind: string, text: string, at: number): void {
    const key = this.key;
    let i = at;
    while (i < text.length && text.charCodeAt(i) === 34 /* " */) {
      let end = readKey(text, i + 1, key);
      const keyed = end >= 0 && text.startsWith('": ', end);
      if (keyed) end = readU64(text, end + 3);
      // The value ends with ", " before the next entry or "}" after the last.
      const good =
        keyed && end >= 0 && (text.charCodeAt(end) === 44 || text.charCodeAt(end) === 125);
      if (!good) {
        this.skippedEntries++;
        const next = text.indexOf(NEXT_ENTRY, i + 1);
        if (next < 0) return;
        i = next + 2;
        continue;
      }
      const r = this.pending.row(key, keyRead.width);
      if (kind === 's') {
        // packets << 40 | payload bytes
        const packets = Math.floor(u64.hi / PACKET_SHIFT);
        this.pending.addSum(r, packets, (u64.hi - packets * PACKET_SHIFT) * TWO_32 + u64.lo);
      } else {
        // first << 20 | last minus first, in units of 2^20 ns
        const low = Math.floor(u64.lo / SPAN);
        const first = u64.hi * HIGH_WORD_UNITS + low;
        const span = u64.lo - low * SPAN;
        this.pending.addSeen(r, first * TIME_UNIT_NS, (first + span) * TIME_UNIT_NS);
      }
      i = text.charCodeAt(end) === 44 ? end + 2 : text.length;
    }
  }

  /** Parses one line; returns what it completed, or null. */
  line(text: string): BpftraceEvent | null {
    if (text.length > MAX_LINE) return { kind: 'skipped', reason: 'line over 64 MiB' };
    const tuples = TUPLE_MAP.exec(text);
    if (tuples) {
      this.tupleMap(tuples[1]!, text, tuples[0].length);
      return null;
    }
    const trimmed = text.trim();
    if (trimmed === '') return null;
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
