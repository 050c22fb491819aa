/**
 * A summary built from per-minute states (merged once per minute, then
 * across the window) equals the summary built from the window's parts, for
 * random parts: several agents and parts per minute, endpoints seen by more
 * than one agent, ties in size and time, windows that are not whole minutes,
 * minutes without parts. Also: the minute cache's bounds.
 */
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { type Block, type BlockEndpoint, MINUTE_MS } from '../../../contract/block.js';
import type { StoredPart } from '../../../functions/store/stored-part.js';
import { isSettled, MinuteCache } from '../../../functions/summarize/minute-cache.js';
import { buildMinuteState } from '../../../functions/summarize/minute-state.js';
import { buildSummary, summaryWindow } from '../../../functions/summarize/summary-builder.js';
import { summarizeStates } from '../../../functions/summarize/window-summary.js';

const M = 30_000_000;
const IPS = ['198.51.100.1', '198.51.100.2', '203.0.113.9', '2001:db8::7', '10.0.0.1'];

const endpointArb = fc.record({
  ip: fc.constantFrom(...IPS),
  port: fc.constantFrom(53, 1000, 1001, 65_535, 0),
  pktsIn: fc.constantFrom(0, 1, 5, 1000),
  bytesIn: fc.constantFrom(0, 100, 2 ** 40),
  pktsOut: fc.constantFrom(0, 0, 1, 5),
  bytesOut: fc.constantFrom(0, 10, 100),
  firstSecond: fc.integer({ min: 0, max: 59 }),
  lastSecond: fc.integer({ min: 0, max: 59 }),
});

const partArb = fc.record({
  agent: fc.integer({ min: 0, max: 3 }),
  offset: fc.integer({ min: 0, max: 7 }),
  socket: fc.option(fc.record({ rxQueueBytes: fc.nat(5000), drops: fc.nat(9) }), {
    nil: undefined,
  }),
  endpoints: fc.uniqueArray(endpointArb, {
    selector: (e) => `${e.ip}|${e.port}`,
    maxLength: 12,
  }),
});

interface PartInput {
  agent: number;
  offset: number;
  socket: { rxQueueBytes: number; drops: number } | undefined;
  endpoints: Pick<
    BlockEndpoint,
    'ip' | 'port' | 'pktsIn' | 'bytesIn' | 'pktsOut' | 'bytesOut' | 'firstSecond' | 'lastSecond'
  >[];
}

function toPart(p: PartInput, i: number, service = 'web'): StoredPart {
  const endpoints: BlockEndpoint[] = p.endpoints.map((e) => ({
    ...e,
    firstSecond: Math.min(e.firstSecond, e.lastSecond),
    localIp: '192.0.2.1',
    localPort: 5000,
    source: 'hook',
    sampleRate: 1,
  }));
  const block: Block = {
    agentId: `a${p.agent}`,
    host: `h${p.agent % 2}`,
    service,
    minute: M + p.offset,
    seq: i,
    part: 0,
    parts: 1,
    endpoints,
    ...(p.socket ? { socket: p.socket } : {}),
  };
  return { block };
}

describe('summarizeStates', () => {
  test.prop(
    [
      fc.array(partArb, { maxLength: 25 }),
      fc.integer({ min: 4, max: 7 }),
      fc.constantFrom(60, 90, 300, 301, 359),
      fc.array(fc.nat(9), { maxLength: 8 }),
    ],
    { numRuns: 300 },
  )('equals buildSummary over the same parts', (raw, offset, windowSeconds, bad) => {
    const parts = raw.map((p, i) => toPart(p, i));
    const minute = M + offset;
    const { firstMinute } = summaryWindow(minute, windowSeconds);
    const inWindow = parts.filter((p) => p.block.minute >= firstMinute && p.block.minute <= minute);
    const badOf = (m: number) => bad[m - M] ?? 0;
    let badParts = 0;
    const states = [];
    for (let m = firstMinute; m <= minute; m++) {
      badParts += badOf(m);
      states.push(
        buildMinuteState(
          'web',
          m,
          inWindow.filter((p) => p.block.minute === m),
          badOf(m),
        ),
      );
    }
    const common = { service: 'web', minute, windowSeconds, computedAt: 7 };
    const want = buildSummary({ ...common, parts: inWindow, badParts });
    // States of minutes outside the window are ignored.
    const extra = buildMinuteState(
      'web',
      minute + 1,
      parts.filter((p) => p.block.minute === minute + 1),
      0,
    );
    expect(summarizeStates({ ...common, states: [extra, ...states.reverse()] })).toEqual(want);
  });

  it('refuses a part of another minute or a roll-up part', () => {
    const p = toPart({ agent: 0, offset: 1, socket: undefined, endpoints: [] }, 1);
    expect(() => buildMinuteState('web', M, [p], 0)).toThrow(/part 0 of agent a0 is of web/);
    const rolled = { ...toPart({ agent: 0, offset: 0, socket: undefined, endpoints: [] }, 1) };
    expect(() => buildMinuteState('web', M, [{ ...rolled, seconds: new Uint8Array() }], 0)).toThrow(
      /roll-up/,
    );
  });
});

describe('MinuteCache', () => {
  const state = (minute: number, n: number, service = 'web') =>
    buildMinuteState(
      service,
      minute,
      [
        toPart(
          {
            agent: 0,
            offset: minute - M,
            socket: undefined,
            endpoints: Array.from({ length: n }, (_, i) => ({
              ip: '198.51.100.1',
              port: 1000 + i,
              pktsIn: 1,
              bytesIn: 1,
              pktsOut: 1,
              bytesOut: 1,
              firstSecond: 0,
              lastSecond: 0,
            })),
          },
          1,
          service,
        ),
      ],
      0,
    );
  const settled = (minute: number) => (minute + 10) * MINUTE_MS;

  it('keeps only minutes read after they settled', () => {
    const cache = new MinuteCache();
    const end = (M + 1) * MINUTE_MS;
    expect(isSettled(M, end + 70_000)).toBe(false);
    expect(cache.offer(state(M, 2), end)).toBe(false);
    expect(cache.get('web', M)).toBeUndefined();
    expect(cache.offer(state(M, 2), settled(M))).toBe(true);
    expect(cache.get('web', M)?.keys).toHaveLength(2);
    expect(cache.get('dns', M)).toBeUndefined();
  });

  it('caps the endpoints held, reports the first refusal once, and frees on drop and eviction', () => {
    const cache = new MinuteCache(5);
    const refused: number[][] = [];
    cache.onFirstOverCap = (held, wanted) => refused.push([held, wanted]);
    expect(cache.offer(state(M, 3), settled(M))).toBe(true);
    expect(cache.offer(state(M + 1, 3), settled(M + 1))).toBe(false);
    expect(cache.offer(state(M + 2, 4), settled(M + 2))).toBe(false);
    expect(refused).toEqual([[3, 3]]);
    expect(cache.stats.overCap).toBe(2);
    // Replacing a minute counts its old size out first.
    expect(cache.offer(state(M, 5), settled(M))).toBe(true);
    expect(cache.endpointsHeld).toBe(5);
    cache.drop('web', M);
    expect(cache.endpointsHeld).toBe(0);
    expect(cache.get('web', M)).toBeUndefined();
    expect(cache.offer(state(M + 1, 2), settled(M + 1))).toBe(true);
    expect(cache.offer(state(M + 2, 2, 'dns'), settled(M + 2))).toBe(true);
    cache.evictBefore(M + 2);
    expect(cache.get('web', M + 1)).toBeUndefined();
    expect(cache.get('dns', M + 2)?.keys).toHaveLength(2);
    expect(cache.endpointsHeld).toBe(2);
  });
});
