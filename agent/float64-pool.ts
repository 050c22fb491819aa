/**
 * Float64Arrays handed back for reuse. A hook message's rows wait in a
 * Float64Array until the next drain, long enough to outlive a young-generation
 * collection; a new array per message then keeps its memory (allocated outside
 * the JS heap) until a full collection, which at 100,000 busy flows is tens of
 * MB of dead arrays. Reusing the arrays a drain is done with bounds that to
 * what the pool holds.
 */
export class Float64Pool {
  private readonly free: Float64Array[] = [];
  private held = 0;

  /**
   * @param maxNumbers most numbers (8 bytes each) the pool keeps; arrays given back past it are dropped
   * @param maxArrays most arrays it keeps, which bounds a take()'s search
   */
  constructor(
    private readonly maxNumbers: number,
    private readonly maxArrays = 64,
  ) {}

  /**
   * An array of at least `length` numbers (its contents are stale): a kept one
   * no more than twice as long, else a new one of exactly `length`.
   */
  take(length: number): Float64Array {
    for (let i = this.free.length - 1; i >= 0; i--) {
      const a = this.free[i]!;
      if (a.length >= length && a.length <= 2 * length) {
        this.free[i] = this.free[this.free.length - 1]!;
        this.free.pop();
        this.held -= a.length;
        return a;
      }
    }
    return new Float64Array(length);
  }

  /** Hands `array` back; the caller no longer reads or writes it. */
  give(array: Float64Array): void {
    if (array.length === 0) return;
    if (this.free.length >= this.maxArrays || this.held + array.length > this.maxNumbers) return;
    this.free.push(array);
    this.held += array.length;
  }

  /** Numbers the pool holds now. */
  get size(): number {
    return this.held;
  }
}
