/**
 * Minute states kept across warm runs of the summarize function (one
 * instance: reserved concurrency 1), so a run reads each complete minute
 * once instead of the whole window every minute.
 *
 * Exact because a stored minute only changes by gaining late blocks, and
 * every block stored after its minute's end + SUMMARY_LAG_SECONDS puts a late
 * mark after itself: a state is kept only when its read started after that
 * point (plus READ_SETTLE_MS for eventual consistency), and a run drops the state of every minute a late mark names before
 * it reads anything. Bounded: minutes older than the window (+ a margin) are
 * evicted, and past `maxEndpoints` held a state is not kept (the minute is
 * read again when needed).
 */
import { MINUTE_MS, SUMMARY_LAG_SECONDS } from '../../contract/block.js';
import type { MinuteState } from './minute-state.js';

/** Default cap on endpoint entries held (~100 bytes each in a 2 GB function). */
export const DEFAULT_MAX_CACHED_ENDPOINTS = 4_000_000;

/** Time allowed for an eventually consistent read to see a put that completed before it. */
export const READ_SETTLE_MS = 30_000;

/**
 * Whether a minute read starting at `readAt` (epoch ms) saw every block not
 * marked late: those were stored by the minute's end + SUMMARY_LAG_SECONDS.
 */
export function isSettled(minute: number, readAt: number): boolean {
  return readAt >= (minute + 1) * MINUTE_MS + SUMMARY_LAG_SECONDS * 1000 + READ_SETTLE_MS;
}

/** What the cache did, since it was made. */
export interface MinuteCacheStats {
  hits: number;
  /** States kept. */
  stored: number;
  /** States not kept because the cap was reached. */
  overCap: number;
  /** States dropped by late marks. */
  invalidated: number;
  evicted: number;
}

/** Minute states by (service, minute), bounded; see the module comment. */
export class MinuteCache {
  private readonly states = new Map<string, Map<number, MinuteState>>();
  private held = 0;
  readonly stats: MinuteCacheStats = {
    hits: 0,
    stored: 0,
    overCap: 0,
    invalidated: 0,
    evicted: 0,
  };
  /** Called once, the first time a state is not kept because of the cap. */
  onFirstOverCap?: (held: number, wanted: number) => void;

  constructor(readonly maxEndpoints: number = DEFAULT_MAX_CACHED_ENDPOINTS) {}

  /** Endpoint entries held. */
  get endpointsHeld(): number {
    return this.held;
  }

  /** The kept state of a service-minute, if any. */
  get(service: string, minute: number): MinuteState | undefined {
    const s = this.states.get(service)?.get(minute);
    if (s) this.stats.hits++;
    return s;
  }

  /** Keeps a state read at `readAt` if its minute was settled then and the cap allows; true when kept. */
  offer(state: MinuteState, readAt: number): boolean {
    if (!isSettled(state.minute, readAt)) return false;
    const byMinute = this.states.get(state.service) ?? new Map<number, MinuteState>();
    const old = byMinute.get(state.minute);
    const held = this.held - (old?.keys.length ?? 0);
    if (held + state.keys.length > this.maxEndpoints) {
      if (this.stats.overCap++ === 0) this.onFirstOverCap?.(held, state.keys.length);
      return false;
    }
    byMinute.set(state.minute, state);
    this.states.set(state.service, byMinute);
    this.held = held + state.keys.length;
    this.stats.stored++;
    return true;
  }

  /** Drops a service-minute's state (a late block landed in it). */
  drop(service: string, minute: number): void {
    const byMinute = this.states.get(service);
    const old = byMinute?.get(minute);
    if (!byMinute || !old) return;
    byMinute.delete(minute);
    this.held -= old.keys.length;
    this.stats.invalidated++;
  }

  /** Drops every state of a minute before `minute`. */
  evictBefore(minute: number): void {
    for (const [service, byMinute] of this.states) {
      for (const [m, s] of byMinute) {
        if (m >= minute) continue;
        byMinute.delete(m);
        this.held -= s.keys.length;
        this.stats.evicted++;
      }
      if (byMinute.size === 0) this.states.delete(service);
    }
  }
}
