/**
 * The eBPF source's drained counters: one row per (direction, source,
 * destination) tuple, its key's words and its counters in typed arrays.
 * Held as objects (a key string, a tuple object and a regular expression's
 * match for each printed entry) a drain of 10,000 tuples allocated about
 * 650 bytes a tuple; rows here allocate nothing once the arrays have grown,
 * and the collector has nothing in them to trace.
 *
 * A key is what bpftrace prints for it, as 32-bit words `[hi, lo, hi, lo,
 * …]` of its u64s: 4 words for IPv4, 10 for IPv6 (see agent/ebpf/udp-flows.bt).
 * Rows of one key merge: sums add, first seen keeps the earliest, last seen
 * the latest (the two buffers printed at exit may name one tuple twice).
 */

/** The most words a key has (IPv6: five u64s). */
export const MAX_KEY_WORDS = 10;

/** Counters a row holds, in this order. */
const PACKETS = 0;
const BYTES = 1;
const FIRST_NS = 2;
const LAST_NS = 3;
const VALUES = 4;
/** No row in an index slot. */
const EMPTY = -1;
/** Rows to start with, and the fewest a shrink leaves. */
const MIN_ROWS = 64;

/** The index slot a key hashes to (words mixed with multiply-xorshift). */
function hashOf(words: ArrayLike<number>, width: number, mask: number): number {
  let h = width;
  for (let i = 0; i < width; i++) {
    h = Math.imul(h ^ words[i]!, 0x9e3779b1);
    h ^= h >>> 15;
  }
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h & mask;
}

/** Drained tuples, one row per key. */
export class DrainedTuples {
  private rows = 0;
  private capacity = MIN_ROWS;
  /** Row r's key: widths[r] words from keyStart[r] in keyWords. */
  private keyWords = new Uint32Array(MIN_ROWS * 4);
  private keyStart = new Int32Array(MIN_ROWS);
  private widths = new Uint8Array(MIN_ROWS);
  private wordsUsed = 0;
  private values = new Float64Array(MIN_ROWS * VALUES);
  /** Open-addressed index of rows by key, at most half full. */
  private index = new Int32Array(MIN_ROWS * 2).fill(EMPTY);

  /** Rows held. */
  get size(): number {
    return this.rows;
  }

  /** The row of the key `words[0..width)`, added with zero counters when new. */
  row(words: ArrayLike<number>, width: number): number {
    const mask = this.index.length - 1;
    for (let at = hashOf(words, width, mask); ; at = (at + 1) & mask) {
      const r = this.index[at]!;
      if (r === EMPTY) {
        const added = this.append(words, width);
        this.index[at] = added;
        if (this.rows * 2 > this.index.length) this.reindex(this.index.length * 2);
        return added;
      }
      if (this.sameKey(r, words, width)) return r;
    }
  }

  /** Adds packets and payload bytes to row `r`. */
  addSum(r: number, packets: number, bytes: number): void {
    const v = this.values;
    v[r * VALUES + PACKETS] = v[r * VALUES + PACKETS]! + packets;
    v[r * VALUES + BYTES] = v[r * VALUES + BYTES]! + bytes;
  }

  /** Widens row `r`'s first and last seen (kernel ns; 0: not seen) to include these. */
  addSeen(r: number, firstNs: number, lastNs: number): void {
    const v = this.values;
    const first = v[r * VALUES + FIRST_NS]!;
    if (firstNs > 0 && (first === 0 || firstNs < first)) v[r * VALUES + FIRST_NS] = firstNs;
    if (lastNs > v[r * VALUES + LAST_NS]!) v[r * VALUES + LAST_NS] = lastNs;
  }

  /** Row `r`'s key words into `out` (from 0); returns how many. */
  keyInto(r: number, out: Float64Array): number {
    const start = this.keyStart[r]!;
    const width = this.widths[r]!;
    for (let i = 0; i < width; i++) out[i] = this.keyWords[start + i]!;
    return width;
  }

  packets(r: number): number {
    return this.values[r * VALUES + PACKETS]!;
  }

  bytes(r: number): number {
    return this.values[r * VALUES + BYTES]!;
  }

  /** Kernel ns of row `r`'s first packet (0 when its seen value was not printed). */
  firstNs(r: number): number {
    return this.values[r * VALUES + FIRST_NS]!;
  }

  /** Kernel ns of row `r`'s last packet (0 when its seen value was not printed). */
  lastNs(r: number): number {
    return this.values[r * VALUES + LAST_NS]!;
  }

  /** Moves every row of `other` into this one (merging keys both hold) and empties `other`. */
  absorb(other: DrainedTuples): void {
    if (this.rows === 0) {
      // Nothing to merge with: trade storage, no row copied.
      const mine = this.storage();
      this.adopt(other.storage());
      other.adopt(mine);
      return;
    }
    const key = new Float64Array(MAX_KEY_WORDS);
    for (let r = 0; r < other.rows; r++) {
      const to = this.row(key, other.keyInto(r, key));
      this.addSum(to, other.packets(r), other.bytes(r));
      this.addSeen(to, other.firstNs(r), other.lastNs(r));
    }
    other.clear();
  }

  /**
   * Forgets every row. Storage stays for the next drain, which is usually
   * the same size; storage four times what this drain used is halved.
   */
  clear(): void {
    const used = this.rows;
    this.rows = 0;
    this.wordsUsed = 0;
    if (this.capacity > MIN_ROWS && used * 4 < this.capacity) {
      this.resize(this.capacity / 2);
      this.index = new Int32Array(this.capacity * 2).fill(EMPTY);
    } else {
      this.index.fill(EMPTY);
    }
  }

  private append(words: ArrayLike<number>, width: number): number {
    if (this.rows === this.capacity) this.resize(this.capacity * 2);
    if (this.wordsUsed + width > this.keyWords.length) {
      const grown = new Uint32Array(Math.max(this.keyWords.length * 2, this.wordsUsed + width));
      grown.set(this.keyWords.subarray(0, this.wordsUsed));
      this.keyWords = grown;
    }
    const r = this.rows++;
    this.keyStart[r] = this.wordsUsed;
    this.widths[r] = width;
    for (let i = 0; i < width; i++) this.keyWords[this.wordsUsed + i] = words[i]!;
    this.wordsUsed += width;
    this.values.fill(0, r * VALUES, (r + 1) * VALUES);
    return r;
  }

  private sameKey(r: number, words: ArrayLike<number>, width: number): boolean {
    if (this.widths[r] !== width) return false;
    const start = this.keyStart[r]!;
    for (let i = 0; i < width; i++) if (this.keyWords[start + i] !== words[i]) return false;
    return true;
  }

  /** Row storage for `capacity` rows (rows held are kept; key words keep their own size). */
  private resize(capacity: number): void {
    const keep = Math.min(this.rows, capacity);
    const keyStart = new Int32Array(capacity);
    keyStart.set(this.keyStart.subarray(0, keep));
    const widths = new Uint8Array(capacity);
    widths.set(this.widths.subarray(0, keep));
    const values = new Float64Array(capacity * VALUES);
    values.set(this.values.subarray(0, keep * VALUES));
    this.keyStart = keyStart;
    this.widths = widths;
    this.values = values;
    this.capacity = capacity;
    if (this.rows === 0 && this.keyWords.length > capacity * 4) {
      this.keyWords = new Uint32Array(capacity * 4);
    }
  }

  /** Rebuilds the index with `slots` slots from the rows held. */
  private reindex(slots: number): void {
    const index = new Int32Array(slots).fill(EMPTY);
    const mask = slots - 1;
    const key = new Float64Array(MAX_KEY_WORDS);
    for (let r = 0; r < this.rows; r++) {
      const width = this.keyInto(r, key);
      let at = hashOf(key, width, mask);
      while (index[at] !== EMPTY) at = (at + 1) & mask;
      index[at] = r;
    }
    this.index = index;
  }

  private storage(): Storage {
    return {
      rows: this.rows,
      capacity: this.capacity,
      keyWords: this.keyWords,
      keyStart: this.keyStart,
      widths: this.widths,
      wordsUsed: this.wordsUsed,
      values: this.values,
      index: this.index,
    };
  }

  private adopt(s: Storage): void {
    this.rows = s.rows;
    this.capacity = s.capacity;
    this.keyWords = s.keyWords;
    this.keyStart = s.keyStart;
    this.widths = s.widths;
    this.wordsUsed = s.wordsUsed;
    this.values = s.values;
    this.index = s.index;
  }
}

/** Everything a DrainedTuples holds, for trading it whole. */
interface Storage {
  rows: number;
  capacity: number;
  keyWords: Uint32Array<ArrayBuffer>;
  keyStart: Int32Array<ArrayBuffer>;
  widths: Uint8Array<ArrayBuffer>;
  wordsUsed: number;
  values: Float64Array<ArrayBuffer>;
  index: Int32Array<ArrayBuffer>;
}
