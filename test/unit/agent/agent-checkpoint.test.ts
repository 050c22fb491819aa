/**
 * The agent's checkpoint on fakes with a real checkpoint file: what a crashed
 * run held unsealed is sealed once by the next run, sealed records the crash
 * may have caught before the spool are spooled again byte for byte, a clean
 * stop restores only the loss total, hook lines are acknowledged only after
 * the checkpoint, and a failed write never leaves an older checkpoint behind.
 */
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type AgentDeps, createAgent } from '../../../agent/agent.js';
import { type AgentConfigInput, AgentConfigSchema } from '../../../agent/agent-config.js';
import { SeqAllocator } from '../../../agent/agent-state.js';
import { checkpointLimits } from '../../../agent/checkpoint-codec.js';
import { CheckpointFile } from '../../../agent/checkpoint-file.js';
import { createConntrackSource } from '../../../agent/conntrack-source.js';
import type { PeerObservation } from '../../../agent/observation.js';
import type { HeartbeatLine } from '../../../contract/wire.js';
import { decodePayload } from '../../support/stream-records.js';
import { FakeHook, RecordingShipper } from './fake-sources.js';

/** 10 s into a minute: in minute mode nothing but early parts is sealed for 50 s. */
const T0 = 1_700_000_040_000 + 10_000;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'uw-agent-checkpoint-'));
  dirs.push(d);
  return d;
}

const hookObs = (remotePort: number, pktsIn: number, at: number): PeerObservation => ({
  source: 'hook',
  localIp: '10.0.0.1',
  localPort: 5300,
  remoteIp: '192.0.2.7',
  remotePort,
  pktsIn,
  bytesIn: pktsIn * 10,
  pktsOut: pktsIn,
  bytesOut: pktsIn * 10,
  lastSeen: at,
});

/** One run of an agent on `dir`, with a real checkpoint file there. */
function run(dir: string, input: AgentConfigInput = {}, parts: Partial<AgentDeps> = {}) {
  const shipper = new RecordingShipper();
  const hook = new FakeHook();
  const clock = { now: T0 };
  const log: string[] = [];
  const checkpoint = new CheckpointFile(dir, 'agent-1', checkpointLimits(1_000));
  const agent = createAgent(
    AgentConfigSchema.parse({
      host: 'host-1',
      heartbeatSeconds: 3600,
      services: [{ name: 'dns', port: 5300 }],
      earlyParts: { burst: 0 },
      ...input,
    }),
    {
      agentId: 'agent-1',
      shipper,
      hook,
      checkpoint,
      seq: new SeqAllocator(dir),
      clock: () => clock.now,
      log: (m) => log.push(m),
      ...parts,
    },
  );
  return { agent, shipper, hook, clock, log, checkpoint };
}

const decoded = (s: RecordingShipper) => s.records.map((r) => decodePayload(r.data));
const pkts = (s: RecordingShipper, port?: number) =>
  decoded(s)
    .flatMap((d) => d.block?.endpoints ?? [])
    .filter((e) => port === undefined || e.port === port)
    .reduce((n, e) => n + e.pktsIn, 0);
const heartbeats = (s: RecordingShipper) =>
  decoded(s)
    .flatMap((d) => d.lines)
    .filter((l): l is HeartbeatLine => l.type === 'heartbeat');

describe('agent checkpoint', () => {
  it('a crashed run’s unsealed deltas are sealed once by the next run, under seqs above its own', async () => {
    const dir = stateDir();
    const a = run(dir);
    for (let s = 0; s < 5; s++) {
      a.clock.now = T0 + s * 1000;
      a.hook.report([hookObs(1, 10, a.clock.now), hookObs(2, 1, a.clock.now)]);
      await a.agent.tick();
    }
    // Minute mode: nothing sealed yet, everything held unsealed.
    expect(pkts(a.shipper)).toBe(0);
    expect(a.checkpoint.stats().writes).toBe(5);
    // Killed here: no stop().
    const b = run(dir);
    const found = b.checkpoint.read();
    expect(found.found).toBe('ok');
    if (found.found !== 'ok') return;
    expect(await b.agent.restore(found.state, true)).toEqual({
      endpoints: 2,
      records: 1,
      dropped: 0,
    });
    expect([pkts(b.shipper, 1), pkts(b.shipper, 2)]).toEqual([50, 5]);
    // A restart of the restarted one before anything else restores nothing twice.
    const c = run(dir);
    const again = c.checkpoint.read();
    expect(again.found === 'ok' && again.state.pending).toEqual([]);
    if (again.found !== 'ok') return;
    await c.agent.restore(again.state, true);
    // Only the outbox: the same record, byte for byte, which the store keeps once.
    expect(c.shipper.records.map((r) => r.data)).toEqual(b.shipper.records.map((r) => r.data));
  });

  it('after a crash dropped continues from the last heartbeat; what hooks send again adds to it', async () => {
    const dir = stateDir();
    const a = run(dir);
    a.hook.droppedPackets = 4;
    a.hook.report([hookObs(1, 3, T0)]);
    await a.agent.tick();
    expect(heartbeats(a.shipper).map((h) => h.dropped)).toEqual([4]);
    const b = run(dir);
    const found = b.checkpoint.read();
    if (found.found !== 'ok') throw new Error(found.found);
    await b.agent.restore(found.state, true);
    // The hook sent its unacknowledged overflow again: 1 more than the killed agent saw.
    b.hook.droppedPackets = 1;
    await b.agent.tick(T0 + 2_000);
    expect(heartbeats(b.shipper).map((h) => h.dropped)).toEqual([5]);
  });

  it('conntrack counts from the checkpoint’s baselines after a crash: the downtime counts, nothing before it twice', async () => {
    const dir = stateDir();
    const root = stateDir();
    mkdirSync(join(root, 'net'));
    // Cumulative counters of one entry (IP lengths: 28 bytes of headers a packet).
    const table = (pkts: number) =>
      writeFileSync(
        join(root, 'net', 'nf_conntrack'),
        `ipv4     2 udp      17 29 src=192.0.2.7 dst=10.0.0.1 sport=40000 dport=5300 packets=${pkts} bytes=${pkts * 38} src=10.0.0.1 dst=192.0.2.7 sport=5300 dport=40000 packets=${pkts} bytes=${pkts * 38} mark=0 zone=0 use=2\n`,
      );
    const conntrack = (clock: { now: number }) =>
      createConntrackSource({
        procRoot: root,
        listeners: () => [
          { localIp: '10.0.0.1', localPort: 5300, family: 4, inode: 1, drops: 0, rxQueueBytes: 0 },
        ],
        localAddresses: () => ['10.0.0.1'],
        now: () => clock.now,
        conntrackCommand: '/nonexistent/uw-conntrack',
      });
    const clockA = { now: T0 };
    const a = run(dir, {}, { conntrack: conntrack(clockA), clock: () => clockA.now });
    // 10 packets before the agent started (not its to count), then 4 and 6.
    for (const [i, p] of [10, 14, 20].entries()) {
      table(p);
      clockA.now = T0 + i * 1000;
      await a.agent.tick(clockA.now);
    }
    // Killed; 5 more packets while it is down.
    table(25);
    const clockB = { now: T0 + 5000 };
    const b = run(dir, {}, { conntrack: conntrack(clockB), clock: () => clockB.now });
    const found = b.checkpoint.read();
    if (found.found !== 'ok') throw new Error(found.found);
    expect(found.state.conntrack?.map((e) => e[1])).toEqual([20]);
    await b.agent.restore(found.state, true);
    await b.agent.tick(clockB.now);
    await b.agent.stop();
    expect(pkts(a.shipper) + pkts(b.shipper)).toBe(15);
  });

  it('with 100,000 pending endpoints at the defaults it checkpoints every cycle, and acknowledges only once the write is on disk', async () => {
    const dir = stateDir();
    const big = new CheckpointFile(dir, 'agent-1', checkpointLimits(100_000));
    const a = run(dir, {}, { checkpoint: big });
    for (let k = 0; k < 10; k++) {
      a.hook.report(
        Array.from({ length: 10_000 }, (_, j) => ({
          ...hookObs(10_000 + j, 1, T0),
          remoteIp: `198.51.100.${k}`,
        })),
      );
    }
    const acksAtWrite: number[] = [];
    const write = big.write.bind(big);
    big.write = async (state) => {
      await write(state);
      acksAtWrite.push(a.hook.acknowledged);
    };
    for (let s = 0; s < 4; s++) {
      a.clock.now = T0 + s * 1000;
      if (s > 0) a.hook.report([hookObs(1, 1, a.clock.now)]);
      await a.agent.tick();
    }
    expect(a.agent.sealer.stats().pendingEndpoints).toBe(100_001);
    // Every 1 s cycle wrote one: nothing was skipped for its cost.
    expect(big.stats().writes).toBe(4);
    // Each write was durable before the lines it holds were acknowledged.
    expect(acksAtWrite).toEqual([0, 1, 2, 3]);
    expect(a.hook.acknowledged).toBe(4);
    const back = big.read();
    expect(
      back.found === 'ok' && back.state.pending.reduce((n, g) => n + g.endpoints.length, 0),
    ).toBe(100_001);
  });

  it('runs its cycle as soon as an eBPF drain is complete: the drained counts are checkpointed then, not an interval later', async () => {
    const dir = stateDir();
    let queued: PeerObservation[] = [];
    const drainListeners: Array<() => void> = [];
    const ebpf = {
      pollInto: (visit: (o: PeerObservation) => void) => {
        const out = queued;
        queued = [];
        for (const o of out) visit(o);
      },
      onDrain: (l: () => void) => drainListeners.push(l),
      status: () => ({
        live: true,
        state: 'live' as const,
        refusedPackets: 0,
        unownedPackets: 0,
        lostEvents: 0,
        badEntries: 0,
        sampleRate: 1,
      }),
      stop: async () => {},
    };
    // A long interval: only the drain can cue the cycle within this test.
    const a = run(dir, { intervalSeconds: 30 }, { ebpf });
    a.agent.start();
    await a.agent.idle();
    const writes = a.checkpoint.stats().writes;
    a.clock.now = T0 + 1000;
    queued = [{ ...hookObs(7, 11, a.clock.now), source: 'ebpf' }];
    for (const l of drainListeners) l();
    await a.agent.idle();
    expect(a.checkpoint.stats().writes).toBe(writes + 1);
    const found = a.checkpoint.read();
    expect(found.found === 'ok' && found.state.pending[0]?.endpoints[0]).toMatchObject({
      port: 7,
      pktsIn: 11,
      source: 'ebpf',
    });
    await a.agent.stop();
  });

  it('keeps a checkpoint within its bound, counting and logging the endpoints left out', async () => {
    const dir = stateDir();
    const small = new CheckpointFile(dir, 'agent-1', checkpointLimits(1));
    const a = run(dir, { maxFlows: 1 }, { checkpoint: small });
    a.hook.report([1, 2, 3, 4, 5].map((port) => hookObs(port, 1, T0)));
    await a.agent.tick();
    const found = small.read();
    expect(found.found === 'ok' && found.state.pending[0]?.endpoints.length).toBe(3);
    expect(a.agent.checkpointStats()).toMatchObject({ writes: 1, omitted: 2 });
    expect(a.log.filter((l) => l.includes('over its bound'))).toHaveLength(1);
  });

  it('records sealed after a checkpoint are in the next checkpoint’s outbox before they reach the spool', async () => {
    const dir = stateDir();
    const a = run(dir, { sealIntervalSeconds: 1 });
    a.hook.report([hookObs(1, 7, T0)]);
    await a.agent.tick(T0);
    a.clock.now = T0 + 1500;
    await a.agent.tick(T0 + 1500);
    const sealed = a.shipper.records.filter((r) => decodePayload(r.data).block);
    expect(sealed.length).toBe(1);
    // Killed right after the spool took them: the checkpoint names them, pending is empty.
    const b = run(dir, { sealIntervalSeconds: 1 });
    const found = b.checkpoint.read();
    if (found.found !== 'ok') throw new Error(found.found);
    expect(found.state.pending).toEqual([]);
    expect(found.state.outbox.map((r) => r.data)).toEqual(sealed.map((r) => r.data));
    await b.agent.restore(found.state, true);
    expect(b.shipper.records.map((r) => r.data)).toEqual(sealed.map((r) => r.data));
  });

  it('a clean stop leaves only the loss total: the next run adds nothing and continues dropped', async () => {
    const dir = stateDir();
    const a = run(dir);
    a.hook.droppedPackets = 6;
    a.hook.report([hookObs(1, 3, T0)]);
    await a.agent.tick();
    await a.agent.stop();
    expect(pkts(a.shipper)).toBe(3);
    expect(a.hook.takingStopped && a.hook.acknowledged).toBe(1);
    const b = run(dir);
    const found = b.checkpoint.read();
    if (found.found !== 'ok') throw new Error(found.found);
    expect(found.state.clean).toBe(true);
    // Even if the running mark said it crashed: a clean checkpoint has nothing to seal.
    expect(await b.agent.restore(found.state, true)).toEqual({
      endpoints: 0,
      records: 0,
      dropped: 6,
    });
    b.hook.droppedPackets = 2;
    b.clock.now = T0 + 5000;
    await b.agent.tick();
    expect(heartbeats(b.shipper).map((h) => h.dropped)).toEqual([8]);
    expect(pkts(b.shipper)).toBe(0);
  });

  it('acknowledges hook lines only after a checkpoint holds them; a failed write removes the old one and acknowledges anyway', async () => {
    const dir = stateDir();
    const a = run(dir);
    a.hook.report([hookObs(1, 3, T0)]);
    await a.agent.tick();
    expect(a.hook.acknowledged).toBe(1);
    // The early flush folds a report in but writes no checkpoint for pending deltas: no ack yet.
    a.hook.report([hookObs(1, 2, T0 + 100)]);
    a.clock.now = T0 + 100;
    await a.agent.flushNewFlows();
    expect([a.hook.drained, a.hook.acknowledged]).toEqual([2, 1]);
    a.clock.now = T0 + 1000;
    await a.agent.tick();
    expect(a.hook.acknowledged).toBe(2);

    const good = a.checkpoint.read();
    if (good.found !== 'ok') throw new Error(good.found);

    // The disk refuses the next write (its slot is a symbolic link, which is
    // never followed): the older checkpoint may hold deltas sealed since, so it goes.
    const next = a.checkpoint.slotPaths.find((p) => p !== good.path)!;
    rmSync(next, { force: true });
    symlinkSync(join(dir, 'elsewhere'), next);
    a.hook.report([hookObs(1, 4, T0 + 1500)]);
    a.clock.now = T0 + 2000;
    await a.agent.tick();
    expect(a.hook.acknowledged).toBe(3);
    expect(a.checkpoint.stats().failedWrites).toBe(1);
    expect(a.log.filter((l) => l.includes('cannot write checkpoint'))).toEqual([
      expect.stringMatching(/removed the previous one: until a write succeeds a crash loses/),
    ]);
    for (const p of a.checkpoint.slotPaths) expect(() => lstatSync(p)).toThrow(/ENOENT/);
    a.clock.now = T0 + 3000;
    await a.agent.tick();
    expect(a.log.at(-1)).toMatch(/written again$/);
    const back = a.checkpoint.read();
    expect(back.found === 'ok' && back.state.pending[0]?.endpoints[0]?.pktsIn).toBe(9);
  });
});
