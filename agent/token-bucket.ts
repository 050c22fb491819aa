/**
 * A token bucket on an explicit clock: `burst` tokens at most, one more every
 * `refillMs`. The sealer spends one per early block part, so new clients are
 * visible in seconds without a flood of small parts.
 */

/** Tokens that refill over time up to a burst. */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly burst: number,
    private readonly refillMs: number,
    now: number,
  ) {
    this.tokens = burst;
    this.updatedAt = now;
  }

  private refill(now: number): void {
    if (now <= this.updatedAt) return;
    this.tokens = Math.min(this.burst, this.tokens + (now - this.updatedAt) / this.refillMs);
    this.updatedAt = now;
  }

  /** Takes a token if one is there; false (and nothing taken) otherwise. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whole tokens available at `now`. */
  available(now: number): number {
    this.refill(now);
    return Math.floor(this.tokens);
  }
}
