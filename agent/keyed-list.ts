/**
 * Values by flow key in the order they were added, as a `Map` keeps them,
 * with the keys in a FlowKeyMap: a list of the values and a typed index
 * into it, no `Map` entry and no heap number per key. A delete leaves a
 * hole, skipped by forEach(), until the holes are half the list; then the
 * list is compacted. For the sealer's pending endpoints, a value per flow.
 */

import { FlowKeyMap } from './flow-key-map.js';
import type { FlowKey } from './flow-keys.js';

/** A value per flow key, in insertion order. */
export class KeyedList<V> {
  private readonly index = new FlowKeyMap();
  private list: (V | undefined)[] = [];
  private holes = 0;

  /** Values held. */
  get size(): number {
    return this.list.length - this.holes;
  }

  /** The value of `key`, if any. */
  get(key: FlowKey): V | undefined {
    const at = this.index.get(key);
    return at < 0 ? undefined : this.list[at];
  }

  /** Sets the value of `key`: in place when it has one, else at the end. */
  set(key: FlowKey, value: V): void {
    const at = this.index.get(key);
    if (at >= 0) {
      this.list[at] = value;
      return;
    }
    this.index.set(key, this.list.length);
    this.list.push(value);
  }

  /** Removes `key`; true when it was there. */
  delete(key: FlowKey): boolean {
    const at = this.index.get(key);
    if (at < 0) return false;
    this.index.delete(key);
    this.list[at] = undefined;
    this.holes++;
    if (this.holes > 32 && this.holes * 2 > this.list.length) this.compact();
    return true;
  }

  /** Calls `visit` with each value, oldest first (a plain loop: a generator costs several times a Map's iteration). */
  forEach(visit: (value: V) => void): void {
    const list = this.list;
    for (let i = 0; i < list.length; i++) {
      const v = list[i];
      if (v !== undefined) visit(v);
    }
  }

  /** The values, oldest first, in a new array. */
  toArray(): V[] {
    const out: V[] = [];
    this.forEach((v) => {
      out.push(v);
    });
    return out;
  }

  /** Closes the holes; the index learns each value's new place. */
  private compact(): void {
    const list: V[] = [];
    const moved = new Int32Array(this.list.length);
    for (let i = 0; i < this.list.length; i++) {
      const v = this.list[i];
      if (v === undefined) continue;
      moved[i] = list.length;
      list.push(v);
    }
    this.index.remap((at) => moved[at]!);
    this.list = list;
    this.holes = 0;
  }
}
