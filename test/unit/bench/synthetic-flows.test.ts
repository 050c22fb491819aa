import { describe, expect, it } from 'vitest';
import { seededRandom, syntheticFlowLines } from '../../../bench/synthetic-flows.js';
import { FlowLineSchema } from '../../../contract/wire.js';

describe('synthetic flow lines', () => {
  it('are valid wire lines', () => {
    const lines = syntheticFlowLines({ count: 500, seed: 7, now: 1_780_000_000_000 });
    for (const line of lines) {
      const parsed = FlowLineSchema.safeParse({ ...line, seq: 1 });
      expect(parsed.success, JSON.stringify(line)).toBe(true);
    }
  });

  it('are reproducible from the seed and differ across seeds', () => {
    const a = syntheticFlowLines({ count: 50, seed: 3, now: 1_780_000_000_000 });
    const b = syntheticFlowLines({ count: 50, seed: 3, now: 1_780_000_000_000 });
    const c = syntheticFlowLines({ count: 50, seed: 4, now: 1_780_000_000_000 });
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('spread over many clients, ports and services like real traffic', () => {
    const lines = syntheticFlowLines({ count: 2_000, seed: 1, now: 1_780_000_000_000 });
    expect(new Set(lines.map((l) => l.remoteIp)).size).toBeGreaterThan(1_900);
    expect(new Set(lines.map((l) => l.remotePort)).size).toBeGreaterThan(1_800);
    expect(new Set(lines.map((l) => l.service)).size).toBeGreaterThanOrEqual(4);
    expect(lines.some((l) => l.remoteIp.includes(':'))).toBe(true);
  });

  it('honours a smaller client pool (several flows per client)', () => {
    const lines = syntheticFlowLines({
      count: 1_000,
      clients: 100,
      seed: 2,
      now: 1_780_000_000_000,
    });
    expect(new Set(lines.map((l) => l.remoteIp)).size).toBe(100);
  });

  it('seededRandom stays in [0, 1)', () => {
    const r = seededRandom(42);
    for (let i = 0; i < 10_000; i++) {
      const x = r();
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
  });
});
