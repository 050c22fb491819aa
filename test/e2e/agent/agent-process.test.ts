import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeSegment } from '../../../agent/disk-spool.js';
import type { BlockEndpoint } from '../../../contract/block.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { type FaultProxy, startFaultProxy } from '../../../local/fault-proxy.js';
import { decodePayload } from '../../support/stream-records.js';
import {
  type AgentProcess,
  type Client,
  type Daemon,
  exited,
  openClient,
  REPO,
  startAgentProcess,
  startHookedDaemon,
  waitFor,
} from './daemon-fixture.js';
import {
  assertResendsIdentical,
  endpointsOf,
  heartbeatsOf,
  readStream,
  recordSeq,
} from './stream-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-agent-'));
const stateDir = join(dir, 'state');
const hookSocket = join(dir, 'hook.sock');
let emulators: Emulators;
let proxy: FaultProxy;
let daemon: Daemon;
const clients: Client[] = [];
const agents: ChildProcess[] = [];

function startAgent(configPath: string, state = stateDir): AgentProcess {
  const agent = startAgentProcess({
    stream: emulators.streamName,
    endpoint: proxy.url,
    stateDir: state,
    hookSocket,
    configPath,
  });
  agents.push(agent.child);
  return agent;
}

/** Block endpoints of the spool files on disk right now. */
function spoolContents(state = stateDir): { seqs: Set<number>; lines: BlockEndpoint[] } {
  const spoolDir = join(state, 'spool');
  const seqs = new Set<number>();
  const lines: BlockEndpoint[] = [];
  let files: string[] = [];
  try {
    files = readdirSync(spoolDir).filter((f) => f.endsWith('.spool'));
  } catch {
    return { seqs, lines };
  }
  for (const f of files) {
    let records: ReturnType<typeof decodeSegment>;
    try {
      records = decodeSegment(readFileSync(join(spoolDir, f)));
    } catch {
      continue; // acked and deleted meanwhile
    }
    for (const r of records) {
      seqs.add(r.seq);
      lines.push(...(decodePayload(r.data).block?.endpoints ?? []));
    }
  }
  return { seqs, lines };
}

const pktsFrom = (endpoints: BlockEndpoint[], port: number) =>
  endpoints.filter((e) => e.port === port).reduce((n, e) => n + e.pktsIn, 0);

async function streamFlows() {
  const unique = assertResendsIdentical(await readStream(emulators.kinesis, emulators.streamName));
  return { unique, flows: endpointsOf(unique) };
}

beforeAll(async () => {
  emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  proxy = await startFaultProxy({ target: emulators.kinesisEndpoint });
  daemon = await startHookedDaemon(hookSocket, 100);
});

afterAll(async () => {
  for (const a of agents) if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
  for (const c of clients) c.close();
  await daemon?.stop();
  await proxy?.stop();
  await emulators?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('udpwatch-agent run (real process, hooked daemon, kinesalite)', () => {
  it('delivers exact counts, survives SIGKILL mid-outage, and delivers its spool after restart', async () => {
    const configPath = join(dir, 'agent.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        retryMaxSeconds: 0.3,
        heartbeatSeconds: 1,
        // Seal every second, so each phase's packets leave at once.
        sealIntervalSeconds: 1,
        // The hook and /proc only: the eBPF source has its own suite.
        sources: { conntrack: false, ebpf: false },
        services: [{ name: 'echo', port: daemon.v4 }],
      }),
    );
    let agent = startAgent(configPath);
    expect(await waitFor(() => /started: agent /.test(agent.stderr()), 15_000)).toBe(true);
    expect(agent.stderr()).toMatch(/sources: hook \(.*hook\.sock\), proc/);
    // Traffic before the hook has connected would be dropped (and counted) by design.
    const hooked = new RegExp(`hook: daemon pid ${daemon.child.pid} \\(node\\) reports`);
    expect(await waitFor(() => hooked.test(agent.stderr()), 10_000)).toBe(true);
    const [a, b, c, d] = await Promise.all([
      openClient(4),
      openClient(4),
      openClient(4),
      openClient(4),
    ]);
    clients.push(a!, b!, c!, d!);

    // Phase A: healthy.
    expect(await a!.echo(daemon.v4, [10, 20, 30, 40, 50])).toBe(5);
    const aArrived = async () => pktsFrom((await streamFlows()).flows, a!.port) >= 5;
    expect(await waitFor(aArrived, 10_000), agent.stderr()).toBe(true);

    // Phase B: Kinesis unreachable; the agent spools, then dies hard.
    await proxy.refuse(true);
    expect(await b!.echo(daemon.v4, [11, 12, 13, 14, 15])).toBe(5);
    expect(await waitFor(() => pktsFrom(spoolContents().lines, b!.port) >= 5, 10_000)).toBe(true);
    agent.child.kill('SIGKILL');
    await exited(agent.child);
    const spooled = spoolContents();
    expect(spooled.seqs.size).toBeGreaterThan(0);
    const maxSeqBefore = Math.max(...spooled.seqs);

    // The daemon keeps serving with no agent; the hook keeps those counts for the next agent.
    expect(await d!.echo(daemon.v4, [7, 7, 7])).toBe(3);
    await new Promise((r) => setTimeout(r, 300));

    // Kinesis back, agent restarted with the same state directory.
    await proxy.refuse(false);
    agent = startAgent(configPath);
    expect(await waitFor(() => hooked.test(agent.stderr()), 15_000)).toBe(true);
    const allSpoolArrived = async () => {
      const got = new Set((await streamFlows()).unique.map(recordSeq));
      return [...spooled.seqs].every((s) => got.has(s));
    };
    expect(await waitFor(allSpoolArrived, 15_000)).toBe(true);
    const dArrived = async () => pktsFrom((await streamFlows()).flows, d!.port) >= 3;
    expect(await waitFor(dArrived, 10_000)).toBe(true);

    // Phase C: after the restart.
    expect(await c!.echo(daemon.v4, [1, 2, 3, 4])).toBe(4);
    const cArrived = async () => pktsFrom((await streamFlows()).flows, c!.port) >= 4;
    expect(await waitFor(cArrived, 10_000)).toBe(true);
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);

    const { unique, flows } = await streamFlows();
    // Exact per client: no loss of what was spooled, no double count.
    expect(pktsFrom(flows, a!.port)).toBe(5);
    expect(pktsFrom(flows, b!.port)).toBe(5);
    expect(pktsFrom(flows, c!.port)).toBe(4);
    expect(pktsFrom(flows, d!.port)).toBe(3);
    expect(agent.stderr()).not.toMatch(/could not report/);
    const bBytes = flows.filter((e) => e.port === b!.port).reduce((n, e) => n + e.bytesOut, 0);
    expect(bBytes).toBe(11 + 12 + 13 + 14 + 15);
    // Other connected sockets on this host show up too (proc source); ours are the daemon's.
    const ours = flows.filter((e) => e.localPort === daemon.v4);
    expect(ours.length).toBeGreaterThan(0);
    for (const e of ours) {
      expect(e.service).toBe('echo');
      expect(e.source).toBe('hook');
      expect(e.owner?.pid).toBe(daemon.child.pid);
    }
    // Every record is a v2 block part except the v1 heartbeats.
    for (const r of unique)
      expect(r.block !== undefined || r.lines[0]?.type === 'heartbeat').toBe(true);
    // One agent id throughout; seqs after the restart are above every seq before it.
    const heartbeats = heartbeatsOf(unique);
    const ids = new Set([...flows.map((e) => e.agentId), ...heartbeats.map((h) => h.agentId)]);
    expect(ids.size).toBe(1);
    const cSeqs = flows.filter((e) => e.port === c!.port).map((e) => e.seq);
    expect(cSeqs.length).toBeGreaterThan(0);
    for (const seq of cSeqs) expect(seq).toBeGreaterThan(maxSeqBefore);
    expect(heartbeats.length).toBeGreaterThanOrEqual(2);
    expect(heartbeats.some((h) => h.spooled > 0)).toBe(true);
  });

  it('Kinesis hangs, then SIGKILL: all but the last seconds are spooled, the rest checkpointed or re-sent, and everything arrives once after the restart', async () => {
    const state = join(dir, 'state-hung');
    const configPath = join(dir, 'agent-hung.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        retryMaxSeconds: 0.3,
        heartbeatSeconds: 1,
        sealIntervalSeconds: 1,
        sources: { conntrack: false, ebpf: false },
        services: [{ name: 'echo', port: daemon.v4 }],
      }),
    );
    // What a kill can lose with these settings (interval 0.2 s): the hook
    // window, a cycle, and the seal interval with its cycle.
    const boundMs = (1 + 0.2 + 1 + 0.2) * 1000;
    let agent = startAgent(configPath, state);
    const hooked = new RegExp(`hook: daemon pid ${daemon.child.pid} \\(node\\) reports`);
    expect(await waitFor(() => hooked.test(agent.stderr()), 15_000), agent.stderr()).toBe(true);
    const e = await openClient(4);
    clients.push(e);
    // PutRecords taken and never answered while the agent lives.
    proxy.setFaults([{ operation: 'PutRecords', kind: 'delay', delayMs: 60_000 }]);
    const sentAt: number[] = [];
    const started = Date.now();
    while (Date.now() - started < 10_000) {
      expect(await e.echo(daemon.v4, [64])).toBe(1);
      sentAt.push(Date.now());
      await new Promise((r) => setTimeout(r, 250));
    }
    agent.child.kill('SIGKILL');
    const killedAt = Date.now();
    await exited(agent.child);
    proxy.clear();
    const onDisk = pktsFrom(spoolContents(state).lines, e.port);
    const atRisk = sentAt.filter((t) => t > killedAt - boundMs).length;
    // Nothing older than the bound was held only in memory, hung call or not.
    expect(onDisk).toBeGreaterThanOrEqual(sentAt.length - atRisk);
    expect(onDisk).toBeLessThanOrEqual(sentAt.length);

    agent = startAgent(configPath, state);
    expect(
      await waitFor(() => /did not stop cleanly/.test(agent.stderr()), 15_000),
      agent.stderr(),
    ).toBe(true);
    // eBPF is off here, so the restored checkpoint and the hook's re-sent lines lose nothing.
    expect(agent.stderr()).toMatch(/checkpoint restored .*; nothing it observed is lost/);
    // The spool, the checkpoint's unsealed rest and what the hook sent again
    // (its lines were acknowledged only once checkpointed): everything sent.
    const arrived = async () => pktsFrom((await streamFlows()).flows, e.port) >= sentAt.length;
    expect(await waitFor(arrived, 20_000), agent.stderr()).toBe(true);
    await new Promise((r) => setTimeout(r, 1_000));
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);
    // Exactly once: no double count of the abandoned calls' records or of the restored ones.
    expect(pktsFrom((await streamFlows()).flows, e.port)).toBe(sentAt.length);
    // A clean stop leaves no unclean mark for the next start.
    agent = startAgent(configPath, state);
    expect(await waitFor(() => /started: agent /.test(agent.stderr()), 15_000)).toBe(true);
    expect(agent.stderr()).not.toMatch(/did not stop cleanly/);
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);
  });

  it('exits 2 with a clear message for a bad flag or config', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        const child = spawn(process.execPath, ['bin/udpwatch-agent.js', ...args], { cwd: REPO });
        let err = '';
        child.stderr.on('data', (x) => {
          err += x;
        });
        child.once('exit', (code) => resolve({ code, err }));
      });
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ stream: 's', maxFlows: -1 }));
    const [flag, config, snapshotFor] = await Promise.all([
      run(['run', '--interval']),
      run(['run', '--config', bad]),
      run(['snapshot', '--for', 'soon']),
    ]);
    expect(flag.code).toBe(2);
    expect(flag.err).toMatch(/--interval/);
    expect(config.code).toBe(2);
    expect(config.err).toMatch(/maxFlows/);
    expect(snapshotFor.code).toBe(2);
    expect(snapshotFor.err).toMatch(/--for: "soon" is not a duration/);
  });
});
