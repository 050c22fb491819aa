/**
 * Values by flow key in the order they were added, as a `Map` keeps them,
 * with the keys in a FlowKeyMap: a list of the values and a typed index
 * into it, no `Map` entry and no heap number per key. A delete leaves a
 * hole, skipped by forEach(), until the holes are half the list; then the
 * list is compacted. clear() keeps the list's and the index's room, so a
 * list refilled every minute (the sealer's pending endpoints of a service)
 * allocates nothing once it has grown.
 */

import { FlowKeyMap } from './flow-key-map.js';
import type { FlowKey } from './flow-keys.js';

/** A value per flow key, in insertion order. */
export class KeyedList<V> {
  private readonly index = new FlowKeyMap();
  /** Values in [0, used), holes undefined; the room past `used` is kept for refills. */
  private list: (V | undefined)[] = [];
  private used = 0;
  private holes = 0;

  /** Values held. */
  get size(): number {
    return this.used - this.holes;
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
    const end = this.used++;
    this.index.set(key, end);
    if (end < this.list.length) this.list[end] = value;
    else this.list.push(value);
  }

  /** Removes `key`; true when it was there. */
  delete(key: FlowKey): boolean {
    const at = this.index.get(key);
    if (at < 0) return false;
    this.index.delete(key);
    this.list[at] = undefined;
    this.holes++;
    if (this.holes > 32 && this.holes * 2 > this.used) this.compact();
    return true;
  }

  /** Removes every value; the room stays, for a list refilled to about as many. */
  clear(): void {
    this.index.clear();
    // The values go, the array's backing store stays.
    this.list.fill(undefined, 0, this.used);
    this.used = 0;
    this.holes = 0;
  }

  /** Calls `visit` with each value, oldest first (a plain loop: a generator costs several times a Map's iteration). */
  forEach(visit: (value: V) => void): void {
    const { list, used } = this;
    for (let i = 0; i < used; i++) {
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

  /** Closes the holes, in place; the index learns each value's new place. */
  private compact(): void {
    const { list, used } = this;
    const moved = new Int32Array(used);
    let to = 0;
    for (let i = 0; i < used; i++) {
      const v = list[i];
      if (v === undefined) continue;
      moved[i] = to;
      list[to++] = v;
    }
    list.fill(undefined, to, used);
    this.index.remap((at) => moved[at]!);
    this.used = to;
    this.holes = 0;
  }
}
