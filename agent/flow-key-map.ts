/**
 * A map from flow keys to slot numbers, for the flow table's indexes. A
 * `Map` of 100,000 number keys costs about 37 bytes an entry in its table
 * plus a 16-byte heap number per key past 2^31 (every IPv4 flow key), all
 * of it traced by the collector. Here number keys live in an open-addressed
 * table of two typed arrays (12 bytes a slot, linear probing, at most 70 %
 * full), nothing in it to trace; string keys (IPv6 peers, hosts with many
 * local sides) in a `Map` beside it. Like the flow slots, the table grows by
 * doubling and never shrinks.
 */

import type { FlowKey } from './flow-keys.js';

/** Key of a slot never used, and of one whose entry was deleted (probing goes on past it). */
const EMPTY = -1;
const DELETED = -2;
/** Fill (entries and deleted slots) past which the table is rebuilt. */
const MAX_FILL = 0.7;
const TWO_32 = 2 ** 32;

/** The slot of `key` in a table of `mask + 1` slots: a mix of its high and low 32 bits. */
function home(key: number, mask: number): number {
  let h = Math.imul((key >>> 0) ^ Math.imul((key / TWO_32) >>> 0, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 13;
  return h & mask;
}

/** Flow keys to non-negative integer values (slot numbers). */
export class FlowKeyMap {
  private keys: Float64Array;
  private values: Int32Array;
  private mask: number;
  /** Number entries, and those plus deleted slots. */
  private count = 0;
  private filled = 0;
  private readonly texts = new Map<string, number>();

  /** A map with room for `entries` keys before it grows. */
  static forEntries(entries: number): FlowKeyMap {
    return new FlowKeyMap(Math.ceil((entries + 1) / MAX_FILL));
  }

  /** @param capacity slots to start with (rounded up to a power of two, at least 8) */
  constructor(capacity = 8) {
    let size = 8;
    while (size < capacity) size *= 2;
    this.keys = new Float64Array(size).fill(EMPTY);
    this.values = new Int32Array(size);
    this.mask = size - 1;
  }

  /** Slots of the number keys' table (its memory: 12 bytes each). */
  get slots(): number {
    return this.mask + 1;
  }

  /** Entries held. */
  get size(): number {
    return this.count + this.texts.size;
  }

  /** The value of `key`, or -1 when it has none. */
  get(key: FlowKey): number {
    if (typeof key === 'string') return this.texts.get(key) ?? -1;
    const at = this.find(key);
    return at < 0 ? -1 : this.values[at]!;
  }

  /** Sets the value of `key`: an integer 0..2^31-1; number keys are integers 0..2^53. */
  set(key: FlowKey, value: number): void {
    if (!(value >= 0 && value <= 0x7fff_ffff && Number.isInteger(value)))
      throw new RangeError(`flow key map value ${value} must be an integer 0..2^31-1`);
    if (typeof key === 'string') {
      this.texts.set(key, value);
      return;
    }
    if (!(key >= 0 && Number.isSafeInteger(key)))
      throw new RangeError(`flow key ${key} must be an integer 0..2^53-1`);
    const found = this.find(key);
    if (found >= 0) {
      this.values[found] = value;
      return;
    }
    if (this.filled + 1 > MAX_FILL * (this.mask + 1)) this.rebuild();
    const { keys, mask } = this;
    let at = home(key, mask);
    // The first free slot on the probe path: a deleted one is reused.
    while (keys[at]! >= 0) at = (at + 1) & mask;
    if (keys[at] === EMPTY) this.filled++;
    keys[at] = key;
    this.values[at] = value;
    this.count++;
  }

  /** Removes `key`; true when it was there. */
  delete(key: FlowKey): boolean {
    if (typeof key === 'string') return this.texts.delete(key);
    const at = this.find(key);
    if (at < 0) return false;
    this.keys[at] = DELETED;
    this.count--;
    return true;
  }

  /** Removes every entry and keeps the table's size, for a map refilled to about as many. */
  clear(): void {
    if (this.filled > 0) this.keys.fill(EMPTY);
    this.count = 0;
    this.filled = 0;
    this.texts.clear();
  }

  /** Replaces every value `v` by `to(v)` (another integer 0..2^31-1), keys unchanged. */
  remap(to: (value: number) => number): void {
    const { keys, values } = this;
    for (let i = 0; i < keys.length; i++) if (keys[i]! >= 0) values[i] = to(values[i]!);
    for (const [k, v] of this.texts) this.texts.set(k, to(v));
  }

  /** The slot holding number `key`, or -1. */
  private find(key: number): number {
    const { keys, mask } = this;
    let at = home(key, mask);
    for (;;) {
      const k = keys[at]!;
      if (k === key) return at;
      if (k === EMPTY) return -1;
      at = (at + 1) & mask;
    }
  }

  /** Re-inserts every entry into a table with room: twice as large when it is more than half entries. */
  private rebuild(): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    let size = oldKeys.length;
    if (this.count + 1 > (MAX_FILL / 2) * size) size *= 2;
    this.keys = new Float64Array(size).fill(EMPTY);
    this.values = new Int32Array(size);
    this.mask = size - 1;
    this.filled = this.count;
    const { keys, values, mask } = this;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i]!;
      if (k < 0) continue;
      let at = home(k, mask);
      while (keys[at] !== EMPTY) at = (at + 1) & mask;
      keys[at] = k;
      values[at] = oldValues[i]!;
    }
  }
}
