import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type AgentDeps, createAgent } from '../../../agent/agent.js';
import { type AgentConfigInput, AgentConfigSchema } from '../../../agent/agent-config.js';
import { SeqAllocator } from '../../../agent/agent-state.js';
import type { PeerObservation } from '../../../agent/observation.js';
import type { Block, BlockEndpoint } from '../../../contract/block.js';
import type { HeartbeatLine } from '../../../contract/wire.js';
import { decodePayload } from '../../support/stream-records.js';
import { FakeConntrack, FakeHook, FakeProc, RecordingShipper } from './fake-sources.js';

const T0 = 1_700_000_000_000;
const DAEMON_PORT = 5300;
const dirs: string[] = [];

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'uw-agent-unit-'));
  dirs.push(d);
  return d;
}

function config(input: AgentConfigInput = {}) {
  return AgentConfigSchema.parse({
    host: 'host-1',
    services: [{ name: 'dns', port: DAEMON_PORT }],
    ...input,
  });
}

function obs(
  source: PeerObservation['source'],
  partial: Partial<PeerObservation>,
): PeerObservation {
  return {
    source,
    localIp: '10.0.0.1',
    localPort: DAEMON_PORT,
    remoteIp: '192.0.2.7',
    remotePort: 40_000,
    pktsIn: 1,
    bytesIn: 100,
    pktsOut: 1,
    bytesOut: 100,
    lastSeen: T0,
    ...partial,
  };
}

/** An agent on fakes, with a settable clock and a real sequence allocator. */
function build(
  input: AgentConfigInput,
  parts: Partial<AgentDeps> & { dir?: string } = {},
): {
  agent: ReturnType<typeof createAgent>;
  shipper: RecordingShipper;
  clock: { now: number };
  log: string[];
} {
  const shipper = (parts.shipper as RecordingShipper | undefined) ?? new RecordingShipper();
  const clock = { now: T0 };
  const log: string[] = [];
  const agent = createAgent(config(input), {
    agentId: 'agent-1',
    shipper,
    seq: new SeqAllocator(parts.dir ?? stateDir()),
    clock: () => clock.now,
    log: (m) => log.push(m),
    ...parts,
  });
  return { agent, shipper, clock, log };
}

function decoded(shipper: RecordingShipper) {
  return shipper.records.map((r) => {
    const d = decodePayload(r.data);
    expect(d.errors).toEqual([]);
    return d;
  });
}
const blocks = (s: RecordingShipper): Block[] =>
  decoded(s).flatMap((d) => (d.block ? [d.block] : []));
const flows = (s: RecordingShipper): BlockEndpoint[] => blocks(s).flatMap((b) => b.endpoints);
const heartbeats = (s: RecordingShipper) =>
  decoded(s)
    .flatMap((d) => d.lines)
    .filter((l): l is HeartbeatLine => l.type === 'heartbeat');
const pkts = (es: BlockEndpoint[], port: number) =>
  es.filter((e) => e.port === port).reduce((n, e) => n + e.pktsIn, 0);

describe('Agent cycle', () => {
  it('takes the first conntrack read as a baseline: peers learned, no counts; later reads count', async () => {
    const conntrack = new FakeConntrack();
    const { agent, shipper, clock } = build({}, { conntrack });
    conntrack.queue(
      [obs('conntrack', { remotePort: 1, pktsIn: 50, bytesIn: 5000 })],
      [obs('conntrack', { remotePort: 1, pktsIn: 3, bytesIn: 300 })],
    );
    await agent.tick();
    const first = flows(shipper);
    // The peer is known and shipped (a new client: an early part), but with none of its pre-start counts.
    expect(first.map((l) => [l.port, l.pktsIn, l.bytesIn])).toEqual([[1, 0, 0]]);
    clock.now += 1000;
    await agent.tick();
    await agent.stop();
    expect(pkts(flows(shipper), 1)).toBe(3);
    expect(flows(shipper).reduce((n, l) => n + l.bytesIn, 0)).toBe(300);
  });

  it('does not count conntrack twice across a restart with the same state directory', async () => {
    const dir = stateDir();
    const shipper = new RecordingShipper();
    const before = new FakeConntrack();
    const a = build({}, { conntrack: before, shipper, dir });
    // Entry created before the first start: 10 packets already; 4 more while running.
    before.queue([obs('conntrack', { pktsIn: 10 })], [obs('conntrack', { pktsIn: 4 })]);
    await a.agent.tick(T0);
    await a.agent.tick(T0 + 1000);
    await a.agent.stop();
    const seqsBefore = shipper.records.map((r) => r.seq);

    // Restarted: the kernel's entry now holds 10 + 4 + 2 (2 while the agent was down),
    // which a fresh source reports in full on its first read; then 5 more.
    const after = new FakeConntrack();
    const b = build({}, { conntrack: after, shipper, dir });
    after.queue([obs('conntrack', { pktsIn: 16 })], [obs('conntrack', { pktsIn: 5 })]);
    await b.agent.tick(T0 + 5000);
    await b.agent.tick(T0 + 6000);
    await b.agent.stop();

    // 4 counted by the first run, 5 by the second; nothing counted again.
    expect(pkts(flows(shipper), 40_000)).toBe(9);
    const seqsAfter = shipper.records.slice(seqsBefore.length).map((r) => r.seq);
    expect(Math.min(...seqsAfter)).toBeGreaterThan(Math.max(...seqsBefore));
  });

  it('takes the first conntrack read after an outage as a baseline too', async () => {
    const conntrack = new FakeConntrack();
    const { agent, shipper, clock } = build({ sealIntervalSeconds: 1 }, { conntrack });
    conntrack.queue([obs('conntrack', { pktsIn: 7 })], [obs('conntrack', { pktsIn: 2 })]);
    await agent.tick();
    clock.now += 1000;
    await agent.tick();
    expect(pkts(flows(shipper), 40_000)).toBe(2);
    conntrack.available = false;
    clock.now += 1000;
    await agent.tick();
    // The source lost its memory: its next read is every entry's full counters (7 + 2 + 6).
    conntrack.available = true;
    conntrack.queue([obs('conntrack', { pktsIn: 15 })], [obs('conntrack', { pktsIn: 1 })]);
    clock.now += 1000;
    await agent.tick();
    clock.now += 1000;
    await agent.tick();
    // The 6 packets inside the outage are lost (bounded), none counted twice.
    expect(pkts(flows(shipper), 40_000)).toBe(3);
  });

  it('sends a heartbeat every heartbeatSeconds with the table, drop and spool counters', async () => {
    const hook = new FakeHook();
    const proc = new FakeProc();
    const { agent, shipper, clock } = build({ heartbeatSeconds: 10 }, { hook, proc });
    shipper.droppedLines = 4;
    shipper.spooledRecords = 2;
    hook.shed = 3;
    const at: number[] = [];
    for (let s = 0; s <= 25; s++) {
      clock.now = T0 + s * 1000;
      if (s === 12) hook.report([obs('hook', { remotePort: 7, lastSeen: clock.now })]);
      if (s === 13) hook.report([obs('hook', { remotePort: 8, lastSeen: clock.now })]);
      await agent.tick();
    }
    for (const h of heartbeats(shipper)) at.push(h.at);
    expect(at).toEqual([T0, T0 + 10_000, T0 + 20_000]);
    const [first, , third] = heartbeats(shipper);
    expect(first).toMatchObject({
      agentId: 'agent-1',
      host: 'host-1',
      flows: 0,
      dropped: 7,
      spooled: 2,
    });
    expect(third!.flows).toBe(2);
    expect([...(third!.sources ?? [])].sort()).toEqual(['hook', 'proc']);
  });

  it('ships a new hooked client soon after its report; busy known clients wait for the main part', async () => {
    const hook = new FakeHook();
    const { agent, shipper, clock } = build(
      { intervalSeconds: 60, heartbeatSeconds: 3600 },
      { hook },
    );
    agent.start();
    await agent.idle();
    expect(shipper.running).toBe(true);
    const afterStart = shipper.records.length;

    clock.now = T0 + 1000;
    hook.report([obs('hook', { remotePort: 1, pktsIn: 2, lastSeen: clock.now })]);
    await agent.idle();
    expect(shipper.records.length).toBeGreaterThan(afterStart);
    expect(flows(shipper).map((l) => [l.port, l.pktsIn])).toEqual([[1, 2]]);

    // More of the same client: nothing ships early.
    const known = shipper.records.length;
    clock.now = T0 + 2000;
    hook.report([obs('hook', { remotePort: 1, pktsIn: 5, lastSeen: clock.now })]);
    await agent.idle();
    expect(shipper.records.length).toBe(known);

    // A new client with the known one still busy: only the new one goes out now.
    clock.now = T0 + 3000;
    hook.report([
      obs('hook', { remotePort: 1, pktsIn: 1, lastSeen: clock.now }),
      obs('hook', { remotePort: 2, pktsIn: 9, lastSeen: clock.now }),
    ]);
    await agent.idle();
    expect(
      blocks(shipper)
        .at(-1)!
        .endpoints.map((e) => [e.port, e.pktsIn]),
    ).toEqual([[2, 9]]);
    expect(pkts(flows(shipper), 1)).toBe(2);

    // Stop ships the known client's waiting deltas: totals exact.
    await agent.stop();
    expect(pkts(flows(shipper), 1)).toBe(2 + 5 + 1);
    expect(pkts(flows(shipper), 2)).toBe(9);
  });

  it('on stop ships the last deltas before stopping the shipper and closing the hook', async () => {
    const hook = new FakeHook();
    const conntrack = new FakeConntrack();
    const { agent, shipper, clock } = build(
      { heartbeatSeconds: 3600, services: [] },
      { hook, conntrack },
    );
    conntrack.queue([obs('conntrack', { localPort: 9000, pktsIn: 1 })]);
    hook.report([obs('hook', { remotePort: 3, pktsIn: 1 })]);
    await agent.tick();
    // Deltas the regular cycle holds back for the minute's main part, and ones not yet collected.
    clock.now = T0 + 1000;
    hook.report([obs('hook', { remotePort: 3, pktsIn: 4, lastSeen: clock.now })]);
    await agent.tick();
    expect(pkts(flows(shipper), 3)).toBe(1);
    conntrack.queue([obs('conntrack', { localPort: 9000, pktsIn: 6 })]);
    hook.report([obs('hook', { remotePort: 3, pktsIn: 2, lastSeen: clock.now })]);
    clock.now = T0 + 2000;
    await agent.stop();
    expect(pkts(flows(shipper), 3)).toBe(1 + 4 + 2);
    expect(
      flows(shipper)
        .filter((l) => l.localPort === 9000)
        .reduce((n, l) => n + l.pktsIn, 0),
    ).toBe(6);
    expect(shipper.stopped).toBe(true);
    expect(hook.closed).toBe(true);
  });

  it('logs a failing source once and runs on with the others', async () => {
    const proc = new FakeProc();
    proc.poll = async () => {
      throw new Error('EACCES /proc/net/udp');
    };
    const hook = new FakeHook();
    const { agent, shipper, log } = build({}, { proc, hook });
    hook.report([obs('hook', { remotePort: 5 })]);
    await agent.tick();
    await agent.tick(T0 + 1000);
    expect(log.filter((m) => m.includes('/proc scan failed: EACCES'))).toHaveLength(1);
    expect(pkts(flows(shipper), 5)).toBe(1);
  });

  it("ships each main part as a v2 record, keyed over 16 shards, with the sockets' health", async () => {
    const proc = new FakeProc();
    const listener = {
      localIp: '0.0.0.0',
      localPort: DAEMON_PORT,
      family: 4 as const,
      inode: 77,
      drops: 40,
      rxQueueBytes: 0,
    };
    proc.listening = [listener];
    const hook = new FakeHook();
    const { agent, shipper, clock } = build({ earlyParts: { burst: 0 } }, { proc, hook });
    const minute = Math.floor(T0 / 60_000);
    await agent.tick();
    hook.report([obs('hook', { remotePort: 9, pktsIn: 4, lastSeen: T0 + 1000 })]);
    proc.listening = [{ ...listener, drops: 43, rxQueueBytes: 2048 }];
    clock.now = T0 + 1000;
    await agent.tick();
    proc.listening = [{ ...listener, drops: 45, rxQueueBytes: 0 }];
    clock.now = T0 + 2000;
    await agent.tick();
    // Nothing before the minute is over (no early parts here).
    expect(blocks(shipper)).toEqual([]);
    // Past the minute, the grace and any send offset (< 50 s) of this agent.
    clock.now = (minute + 1) * 60_000 + 55_000;
    await agent.tick();
    const [main] = blocks(shipper);
    expect(main).toMatchObject({ service: 'dns', minute, part: 0, parts: 1 });
    // Drops since the agent first saw the socket: 43 - 40 + 45 - 43.
    expect(main!.socket).toEqual({ rxQueueBytes: 2048, drops: 5 });
    expect(main!.endpoints.map((e) => [e.port, e.pktsIn])).toEqual([[9, 4]]);
    const record = shipper.records.find((r) => decodePayload(r.data).block)!;
    expect(record.partitionKey).toBe(`agent-1/${main!.seq % 16}`);
  });

  it('names a busy listener no source sees, but not a client socket on an ephemeral port', async () => {
    const proc = new FakeProc();
    // Both queue datagrams (evidence of traffic); no source reports a peer of either.
    const listener = (localPort: number, inode: number) => ({
      localIp: '0.0.0.0',
      localPort,
      family: 4 as const,
      inode,
      drops: 0,
      rxQueueBytes: 4096,
    });
    proc.listening = [listener(DAEMON_PORT, 81), listener(45_000, 82)];
    const { agent, clock, log } = build(
      {},
      { proc, ephemeralPorts: { low: 32_768, high: 60_999 } },
    );
    for (let s = 0; s <= 5; s++) {
      clock.now = T0 + s * 1000;
      await agent.tick();
    }
    // 45000 is a client's socket (a resolver's upstream one, say): no service to flag.
    expect(agent.unobserved().map((u) => [u.service, u.port])).toEqual([['dns', DAEMON_PORT]]);
    expect(log.filter((m) => m.startsWith('peers unobserved'))).toHaveLength(1);
    await agent.stop();
  });

  it('logs the eBPF map filling once when it starts and once when it ends, and counts every refused packet', async () => {
    let refused = 0;
    const ebpf = {
      pollInto: () => {},
      status: () => ({
        live: true,
        state: 'live' as const,
        refusedPackets: refused,
        unownedPackets: 0,
        lostEvents: 0,
        badEntries: 0,
        sampleRate: 1,
      }),
      stop: async () => {},
    };
    const { agent, log } = build({}, { ebpf });
    const mapLines = () => log.filter((l) => l.includes('flow map'));
    await agent.tick();
    expect(mapLines()).toEqual([]);
    refused = 10;
    await agent.tick();
    refused = 25;
    await agent.tick();
    // One line for the episode so far, however many cycles it lasts.
    expect(mapLines()).toEqual([expect.stringContaining('flow map is full')]);
    expect(agent.counters().dropped).toBe(25);
    await agent.tick();
    expect(mapLines()).toHaveLength(2);
    expect(mapLines()[1]).toMatch(/room again; 25 packets were not counted/);
    // A new episode starts a new pair.
    refused = 26;
    await agent.tick();
    expect(mapLines()).toHaveLength(3);
    expect(agent.counters().dropped).toBe(26);
  });
  it("logs eBPF's lost output and unreadable entries once each, however often they recur", async () => {
    let lostEvents = 0;
    let badEntries = 0;
    const ebpf = {
      pollInto: () => {},
      status: () => ({
        live: true,
        state: 'live' as const,
        refusedPackets: 0,
        unownedPackets: 0,
        lostEvents,
        badEntries,
        sampleRate: 1,
      }),
      stop: async () => {},
    };
    const { agent, log } = build({}, { ebpf });
    const ebpfLines = () => log.filter((l) => l.startsWith('source ebpf:'));
    await agent.tick();
    expect(ebpfLines()).toEqual([]);
    for (const lost of [3, 9, 40]) {
      lostEvents = lost;
      await agent.tick();
    }
    expect(ebpfLines()).toEqual([
      expect.stringMatching(
        /^source ebpf: live \(bpftrace lost output events.*BPFTRACE_PERF_RB_PAGES/,
      ),
    ]);
    for (const bad of [2, 4, 6]) {
      badEntries = bad;
      await agent.tick();
    }
    expect(ebpfLines()).toHaveLength(2);
    expect(ebpfLines()[1]).toMatch(/^source ebpf: live \(.*reinstall udpwatch\)$/);
    await agent.stop();
  });
});
