/**
 * Numeric columns of the agent's per-flow state in one Float64Array (and
 * small integers in an Int32Array beside it), a slot (row) per flow. On Node's 64-bit heap a timestamp or a counter past 2^31 in
 * an object field costs the field plus a 16-byte heap number, and every one
 * is a pointer the collector traces; a slot holds each value in 8 bytes,
 * exactly up to 2^53, with nothing to trace. A freed slot is reused by the
 * next flow; the slab grows by doubling and never shrinks (a table that once
 * held N flows may again).
 */

/**
 * Rows of `fields` doubles, and of `intFields` 32-bit integers beside them
 * (slot numbers need no more: half the bytes), handed out and taken back by
 * slot number.
 */
export class FlowSlots {
  private data: Float64Array;
  private ints: Int32Array;
  private capacity: number;
  /** Slots freed and not yet reused, most recent last. */
  private readonly freed: number[] = [];
  /** Slots ever handed out: every slot below this is in use or in `freed`. */
  private highWater = 0;

  constructor(
    private readonly fields: number,
    initialCapacity = 1024,
    private readonly intFields = 0,
  ) {
    if (!Number.isInteger(fields) || fields < 1)
      throw new RangeError(`fields ${fields} must be a positive integer`);
    if (!Number.isInteger(intFields) || intFields < 0)
      throw new RangeError(`intFields ${intFields} must be a non-negative integer`);
    this.capacity = Math.max(1, Math.floor(initialCapacity));
    this.data = new Float64Array(this.capacity * fields);
    this.ints = new Int32Array(this.capacity * intFields);
  }

  /** A slot with every field 0: a freed one when there is one, else the next new one. */
  alloc(): number {
    const reused = this.freed.pop();
    if (reused !== undefined) {
      this.data.fill(0, reused * this.fields, (reused + 1) * this.fields);
      this.ints.fill(0, reused * this.intFields, (reused + 1) * this.intFields);
      return reused;
    }
    if (this.highWater === this.capacity) this.grow();
    return this.highWater++;
  }

  /** Gives `slot` back for reuse; its values are not read again until alloc() hands it out. */
  free(slot: number): void {
    this.freed.push(slot);
  }

  /** Field `field` of `slot`. */
  get(slot: number, field: number): number {
    return this.data[slot * this.fields + field]!;
  }

  /** Sets field `field` of `slot`. */
  set(slot: number, field: number, value: number): void {
    this.data[slot * this.fields + field] = value;
  }

  /** Integer field `field` of `slot`. */
  getInt(slot: number, field: number): number {
    return this.ints[slot * this.intFields + field]!;
  }

  /** Sets integer field `field` of `slot` (a 32-bit signed integer). */
  setInt(slot: number, field: number, value: number): void {
    this.ints[slot * this.intFields + field] = value;
  }

  /** Adds `value` to field `field` of `slot`. */
  add(slot: number, field: number, value: number): void {
    const at = slot * this.fields + field;
    this.data[at] = this.data[at]! + value;
  }

  /** Slots in use. */
  get size(): number {
    return this.highWater - this.freed.length;
  }

  /** Slots the slab has room for before it grows. */
  get room(): number {
    return this.capacity;
  }

  private grow(): void {
    const bigger = new Float64Array(this.capacity * 2 * this.fields);
    bigger.set(this.data);
    this.data = bigger;
    const biggerInts = new Int32Array(this.capacity * 2 * this.intFields);
    biggerInts.set(this.ints);
    this.ints = biggerInts;
    this.capacity *= 2;
  }
}
