/**
 * Checkpoint cost with 1,000, 10,000 and 100,000 pending endpoints (quick:
 * 1,000 and 10,000): how long one write holds the event loop (the longest
 * stretch in which nothing else could run, from the sealer's export to the
 * file durable, seen by a setImmediate ticker running beside it), against
 * the sealer's fold of the same number of busy flows' deltas, the work a
 * cycle does anyway when all of them moved; how long the write takes until
 * durable (encode, hash, write into the older slot, fdatasync, retire the
 * other: what the cycle awaits before it spools); the CPU a write costs
 * (the whole process's, libuv's thread pool included) against writing the
 * same checkpoint as a temp file, fsync, rename and fsync of the directory
 * (how the agent wrote it before its two slots), measured in the same
 * round; its bytes; and the read and check of that checkpoint at start.
 * The agent writes a checkpoint every cycle unless encoding held the loop
 * for more than half the time since the previous one.
 */
import { subtle } from 'node:crypto';
import { mkdtemp, open, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockSealer } from '../../agent/block-sealer.js';
import {
  CheckpointScratch,
  type CheckpointState,
  checkpointLimits,
  checkpointPreamble,
  encodeCheckpointBody,
} from '../../agent/checkpoint-codec.js';
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

/** The baseline: the same encoding and hash, then temp file, fsync, rename and fsync of the directory. */
async function writeByRename(dir: string, state: CheckpointState, scratch: CheckpointScratch) {
  const body = encodeCheckpointBody(state, scratch);
  const digest = Buffer.from(await subtle.digest('SHA-256', body)).toString('hex');
  const tmp = join(dir, '.rename-way.tmp');
  const fh = await open(tmp, 'w', 0o640);
  try {
    await fh.writev([checkpointPreamble(digest), body]);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, 'rename-way'));
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** CPU of the whole process (ms) per call of `fn`, over `times` calls. */
async function cpuPerCall(times: number, fn: () => Promise<void>): Promise<number> {
  const before = process.cpuUsage();
  for (let i = 0; i < times; i++) await fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / times;
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
  const cpu: number[] = [];
  const cpuByRename: number[] = [];
  const scratch = new CheckpointScratch();
  // Enough writes per sample for the CPU clock's ticks to average out.
  const writesPerSample = Math.max(10, Math.round(200_000 / endpoints));
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
    const state = (): CheckpointState => ({
      agentId: AGENT,
      writtenAt: NOW,
      clean: false,
      dropped: 0,
      pending: s.exportPending(file.limits.maxEndpoints).groups,
      outbox: [],
    });
    // Alternating which goes first, so neither always meets a warmer cache.
    const slots = () => cpuPerCall(writesPerSample, () => file.write(state()));
    const renames = () => cpuPerCall(writesPerSample, () => writeByRename(dir, state(), scratch));
    let cpuMs: number;
    let renameMs: number;
    if (i % 2 === 0) {
      cpuMs = await slots();
      renameMs = await renames();
    } else {
      renameMs = await renames();
      cpuMs = await slots();
    }
    // Round 0 warms up.
    if (i === 0) continue;
    fold.push(foldMs);
    hold.push(w.heldMs);
    write.push(w.totalMs);
    read.push(readMs);
    bytes.push(file.stats().lastBytes);
    cpu.push(cpuMs);
    cpuByRename.push(renameMs);
  }
  await file.close();
  return {
    fold,
    hold,
    write,
    read,
    bytes,
    cpu,
    cpuByRename,
    writesPerSample,
    pending: s.stats().pendingEndpoints,
  };
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
              note: 'export, encode, SHA-256, one positioned write into the older slot, fdatasync, one byte retiring the other slot: what the cycle awaits before it spools',
            },
          ),
          compared(
            `checkpoint write: CPU per write, ${n.toLocaleString('en')} pending endpoints`,
            'ms',
            m.cpu,
            'the same checkpoint as a temp file, fsync, rename and fsync of the directory',
            m.cpuByRename,
            'lower',
            {
              note: `the whole process's CPU, libuv's thread pool included, over ${m.writesPerSample} writes a sample; the agent writes one every cycle (1 s) when anything is pending`,
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
