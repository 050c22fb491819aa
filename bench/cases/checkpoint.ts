/**
 * Checkpoint cost: bytes and milliseconds of one checkpoint write (encode,
 * write, fsync, rename, fsync of the directory) with 1,000, 10,000 and
 * 100,000 pending endpoints (quick: 1,000 and 10,000), against the sealer's
 * fold of the same number of busy flows' deltas, the work a cycle does
 * anyway when all of them moved, measured in the same run. Also the read and
 * check of that checkpoint at start. The agent writes a checkpoint every
 * cycle unless one costs more than 1/20 of the time since the previous one,
 * so the write figure gives the gap it keeps (at most 5 s).
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

async function measure(endpoints: number, roundsCount: number, dir: string) {
  const flows = deltas(endpoints, endpoints);
  const s = sealer();
  s.addDeltas(flows, NOW);
  const file = new CheckpointFile(dir, AGENT, checkpointLimits(Math.max(endpoints, 1_000)));
  const fold: number[] = [];
  const write: number[] = [];
  const read: number[] = [];
  const bytes: number[] = [];
  for (let i = 0; i <= roundsCount; i++) {
    // The cycle's own work for the same flows: every one of them moved.
    let t = performance.now();
    s.addDeltas(flows, NOW);
    const foldMs = performance.now() - t;
    t = performance.now();
    const { groups } = s.exportPending(file.limits.maxEndpoints);
    file.write({
      agentId: AGENT,
      writtenAt: NOW,
      clean: false,
      dropped: 0,
      pending: groups,
      outbox: [],
    });
    const writeMs = performance.now() - t;
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
    write.push(writeMs);
    read.push(readMs);
    bytes.push(file.stats().lastBytes);
  }
  return { fold, write, read, bytes, pending: s.stats().pendingEndpoints };
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
          `checkpoint: ${m.pending} pending endpoints, ${m.bytes[0]} B, write ${m.write.map((x) => x.toFixed(1)).join('/')} ms`,
        );
        const median = [...m.write].sort((a, b) => a - b)[m.write.length >> 1]!;
        figures.push(
          compared(
            `checkpoint write, ${n.toLocaleString('en')} pending endpoints`,
            'ms',
            m.write,
            `sealer fold of ${n.toLocaleString('en')} busy flows' deltas (one cycle)`,
            m.fold,
            'lower',
            {
              note: `encode + write + fsync + rename; the agent then checkpoints every ${Math.max(1, Math.min(5, (median * 20) / 1000)).toFixed(1)} s at the 1 s interval`,
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
