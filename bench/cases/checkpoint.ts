/**
 * Checkpoint cost with 1,000, 10,000 and 100,000 pending endpoints (quick:
 * 1,000 and 10,000): how long one write holds the event loop (the longest
 * stretch in which nothing else could run, from the sealer's export to the
 * file durable under its name, seen by a setImmediate ticker running beside
 * it), against the sealer's fold of the same number of busy flows' deltas,
 * the work a cycle does anyway when all of them moved; how long the write
 * takes until durable (encode, hash, write, fsync, rename, fsync of the
 * directory: what the cycle awaits before it spools); its bytes; and the
 * read and check of that checkpoint at start. The agent writes a checkpoint
 * every cycle unless encoding holds the loop for more than 1/20 of the time
 * since the previous one, so the held figure gives the gap it keeps.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockSealer } from '../../agent/block-sealer.js';
import { checkpointLimits } from '../../agent/checkpoint-codec.js';
import { CheckpointFile } from '../../agent/checkpoint-file.js';
import type { FlowDelta } from '../../agent/flow-table.js';
import { type BenchCase, compared, type Figure, plain } from '../harness.js';
import { syntheticFlowLines } from '../synthetic-flows.js';

const AGENT = 'bench-agent';
/** 20 s into a minute, so nothing is due for sealing while we measure. */
const NOW = 1_767_225_620_000;

function deltas(count: number, seed: number): FlowDelta[] {
  return syntheticFlowLines({ count, seed, now: NOW }).map((l) => ({
    service: l.service,
    source: l.source,
    localIp: l.localIp,
    localPort: l.localPort,
    remoteIp: l.remoteIp,
    remotePort: l.remotePort,
    firstSeen: Math.max(l.firstSeen, NOW - 20_000),
    lastSeen: l.lastSeen,
    sampleRate: 1,
    pid: l.pid,
    process: l.process,
    pktsIn: l.pktsIn,
    bytesIn: l.bytesIn,
    pktsOut: l.pktsOut,
    bytesOut: l.bytesOut,
    fresh: false,
  }));
}

function sealer(): BlockSealer {
  return new BlockSealer({
    agentId: AGENT,
    host: 'bench-host',
    nextSeq: () => 1,
    sealIntervalMs: 60_000,
    graceMs: 3_000,
    sendOffsetMs: 0,
    earlyBurst: 0,
    earlyRefillMs: 30_000,
    now: NOW,
  });
}

/**
 * Runs `fn` beside a setImmediate ticker: the longest gap between two ticks
 * (or before the first, or after the last) is the longest the loop was held.
 */
async function held(fn: () => Promise<void>): Promise<{ heldMs: number; totalMs: number }> {
  let running = true;
  let last = 0;
  let max = 0;
  const tick = () => {
    const t = performance.now();
    if (last > 0) max = Math.max(max, t - last);
    last = t;
    if (running) setImmediate(tick);
  };
  await new Promise<void>((resolve) => setImmediate(resolve));
  const started = performance.now();
  last = started;
  setImmediate(tick);
  await fn();
  const done = performance.now();
  running = false;
  return { heldMs: Math.max(max, done - last), totalMs: done - started };
}

async function measure(endpoints: number, roundsCount: number, dir: string) {
  const flows = deltas(endpoints, endpoints);
  const s = sealer();
  s.addDeltas(flows, NOW);
  const file = new CheckpointFile(dir, AGENT, checkpointLimits(Math.max(endpoints, 1_000)));
  const fold: number[] = [];
  const hold: number[] = [];
  const write: number[] = [];
  const read: number[] = [];
  const bytes: number[] = [];
  for (let i = 0; i <= roundsCount; i++) {
    // The cycle's own work for the same flows: every one of them moved.
    let t = performance.now();
    s.addDeltas(flows, NOW);
    const foldMs = performance.now() - t;
    const w = await held(() => {
      const { groups } = s.exportPending(file.limits.maxEndpoints);
      return file.write({
        agentId: AGENT,
        writtenAt: NOW,
        clean: false,
        dropped: 0,
        pending: groups,
        outbox: [],
      });
    });
    t = performance.now();
    const back = file.read();
    const readMs = performance.now() - t;
    if (back.found !== 'ok') throw new Error(`checkpoint did not read back: ${back.found}`);
    const n = back.state.pending.reduce((k, g) => k + g.endpoints.length, 0);
    if (n !== s.stats().pendingEndpoints)
      throw new Error(`checkpoint holds ${n} endpoints, not ${s.stats().pendingEndpoints}`);
    // Round 0 warms up.
    if (i === 0) continue;
    fold.push(foldMs);
    hold.push(w.heldMs);
    write.push(w.totalMs);
    read.push(readMs);
    bytes.push(file.stats().lastBytes);
  }
  return { fold, hold, write, read, bytes, pending: s.stats().pendingEndpoints };
}

export const checkpoint: BenchCase = {
  id: 'checkpoint',
  title: 'agent checkpoint of unsealed state: write and read cost by pending endpoints',
  async run({ quick, log }) {
    const sizes = quick ? [1_000, 10_000] : [1_000, 10_000, 100_000];
    const dir = await mkdtemp(join(tmpdir(), 'udpwatch-bench-checkpoint-'));
    const figures: Figure[] = [];
    try {
      for (const n of sizes) {
        const m = await measure(n, quick ? 3 : 5, dir);
        const perEndpoint = m.bytes.map((b) => b / m.pending);
        log(
          `checkpoint: ${m.pending} pending endpoints, ${m.bytes[0]} B, loop held ${m.hold.map((x) => x.toFixed(1)).join('/')} ms, durable after ${m.write.map((x) => x.toFixed(1)).join('/')} ms`,
        );
        const median = [...m.hold].sort((a, b) => a - b)[m.hold.length >> 1]!;
        const gap = Math.max(1, Math.min(5, (median * 20) / 1000));
        figures.push(
          compared(
            `checkpoint write: event loop held, ${n.toLocaleString('en')} pending endpoints`,
            'ms',
            m.hold,
            `sealer fold of ${n.toLocaleString('en')} busy flows' deltas (one cycle)`,
            m.fold,
            'lower',
            {
              note: `longest stretch nothing else could run (export + encode; hashing and file I/O run off the loop); the agent then checkpoints every ${gap === 1 ? 'cycle' : `${gap.toFixed(1)} s`} at the 1 s interval`,
            },
          ),
          plain(
            `checkpoint write: until durable, ${n.toLocaleString('en')} pending endpoints`,
            'ms',
            m.write,
            {
              note: 'export, encode, SHA-256, write, fsync, rename, fsync of the directory: what the cycle awaits before it spools',
            },
          ),
          plain(`checkpoint size, ${n.toLocaleString('en')} pending endpoints`, 'bytes', m.bytes, {
            note: `${Math.round(perEndpoint[0]!)} B per endpoint`,
          }),
          plain(
            `checkpoint read and check at start, ${n.toLocaleString('en')} endpoints`,
            'ms',
            m.read,
          ),
        );
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return figures;
  },
};
