/**
 * One flow, three sources, one owner, in network namespaces built here:
 *
 *   cli 192.0.2.2 ---- 192.0.2.1 srv: a Node echo daemon on :5400, conntrack
 *                                     (ct rule, accounting on) and bpftrace
 *
 * The agent (in this process) runs the real hook receiver, the /proc source,
 * conntrack and eBPF for the server namespace. Datagrams of known payload
 * sizes must read the same bytes from every source, be counted once while
 * the daemon is hooked, and, once the daemon restarts on the same port
 * without the hook, its new clients must be counted by the other sources at
 * the next cycle with exact counts.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from '../../../agent/agent.js';
import { AgentConfigSchema } from '../../../agent/agent-config.js';
import { SeqAllocator } from '../../../agent/agent-state.js';
import { createConntrackSource } from '../../../agent/conntrack-source.js';
import { createEbpfSource, type EbpfSource } from '../../../agent/ebpf-source.js';
import type { FlowView } from '../../../agent/flow-table.js';
import { openHookSource } from '../../../agent/hook-source.js';
import type { PeerObservation } from '../../../agent/observation.js';
import { createProcSource } from '../../../agent/proc-source.js';
import { ebpfLabSkipReason } from '../../support/ebpf-lab.js';
import { NamespaceLab, nsExec, nsSpawn } from '../../support/netns.js';
import { RecordingShipper } from '../../unit/agent/fake-sources.js';

const PORT = 5400;
const SERVER = '192.0.2.1';
const CLIENT = '192.0.2.2';
const DRAIN_MS = 500;
const INTERVAL_MS = 1000;
const HOOK = join(import.meta.dirname, '../../../agent/hook/register.mjs');
const ECHO = join(import.meta.dirname, 'fixtures/echo-port.mjs');
const CLIENTS = join(import.meta.dirname, 'fixtures/udp-client.py');

const skipReason = await ebpfLabSkipReason();
if (skipReason) console.warn(`SKIPPING ownership e2e: ${skipReason}`);

const lab = new NamespaceLab('uwow');
const dir = mkdtempSync(join(tmpdir(), 'uw-owner-'));
let srv = '';
let cli = '';
let daemon: ChildProcess | undefined;
let ebpf: EbpfSource | undefined;
let agent: Agent | undefined;
/** What each source returned, in order: the sources' raw views of the same datagrams. */
const seen: Record<'hook' | 'conntrack' | 'ebpf', PeerObservation[]> = {
  hook: [],
  conntrack: [],
  ebpf: [],
};

function startDaemon(hooked: boolean): Promise<ChildProcess> {
  const args = hooked ? ['--import', HOOK, ECHO, String(PORT)] : [ECHO, String(PORT)];
  const env = {
    ...process.env,
    UDPWATCH_HOOK_SOCKET: join(dir, 'hook.sock'),
    UDPWATCH_HOOK_INTERVAL_MS: '100',
  };
  const child = lab.track(nsSpawn(srv, process.execPath, args, env));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('echo daemon: no ready in 10 s')), 10_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.trim() === 'ready') {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`echo daemon exited ${code}`)));
  });
}

async function send(specs: Array<{ sport: number; count: number; size: number }>) {
  const full = specs.map((s) => ({ host: SERVER, port: PORT, ...s }));
  const out = await nsExec(cli, 'python3', CLIENTS, JSON.stringify(full));
  expect(JSON.parse(out)).toEqual(specs.map((s) => s.count));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sum(list: PeerObservation[], remotePort: number) {
  const t = { pktsIn: 0, bytesIn: 0, pktsOut: 0, bytesOut: 0 };
  for (const o of list) {
    if (o.remotePort !== remotePort || o.localPort !== PORT) continue;
    t.pktsIn += o.pktsIn;
    t.bytesIn += o.bytesIn;
    t.pktsOut += o.pktsOut;
    t.bytesOut += o.bytesOut;
  }
  return t;
}

/** A flow's source, owner and counters. */
const counted = (f: FlowView) => ({
  source: f.source,
  pid: f.pid,
  pktsIn: f.pktsIn,
  bytesIn: f.bytesIn,
  pktsOut: f.pktsOut,
  bytesOut: f.bytesOut,
});

const flowOf = (remotePort: number) =>
  agent!.flowTable.list().filter((f) => f.remotePort === remotePort && f.localPort === PORT);

describe.skipIf(skipReason !== null)('one owner per flow, following the live socket', () => {
  beforeAll(async () => {
    srv = await lab.add('srv');
    cli = await lab.add('cli');
    await lab.link(srv, `${SERVER}/24`, cli, `${CLIENT}/24`);
    await nsExec(srv, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_acct=1');
    await nsExec(
      srv,
      'nft',
      [
        'add table inet uwow',
        'add chain inet uwow in { type filter hook input priority 0 ; }',
        'add rule inet uwow in ct state new,established counter',
      ].join(' ; '),
    );
    // A process that stays in the namespace for the whole test: the sources
    // read the namespace's tables through it while the daemon restarts.
    const anchor = lab.track(nsSpawn(srv, 'sleep', ['600']));
    await sleep(100);
    const nsProc = `/proc/${anchor.pid}`;
    const netnsInode = Number(
      /\[(\d+)\]/.exec(await nsExec(srv, 'readlink', '/proc/self/ns/net'))![1],
    );

    const hook = await openHookSource(join(dir, 'hook.sock'), String(process.getgid!()), (m) =>
      console.log(m),
    );
    expect(hook).toBeDefined();
    const proc = createProcSource({ netDir: `${nsProc}/net` });
    const conntrack = createConntrackSource({
      procRoot: nsProc,
      listeners: () => proc.listeners(),
      localAddresses: () => [SERVER],
    });
    ebpf = createEbpfSource({
      netnsInode,
      sockets: () => ({ listeners: proc.listeners(), connected: [] }),
      localAddresses: () => [SERVER],
      drainIntervalMs: DRAIN_MS,
      log: (m) => console.log(`[ebpf] ${m}`),
    });
    const started = await ebpf.start();
    expect(started, started.reason).toMatchObject({ live: true });
    const source = ebpf;
    agent = createAgent(
      AgentConfigSchema.parse({ host: 'owner-host', intervalSeconds: INTERVAL_MS / 1000 }),
      {
        agentId: 'owner-agent',
        proc,
        hook: {
          ...hook!,
          drain: () => {
            const o = hook!.drain();
            seen.hook.push(...o);
            return o;
          },
          // The agent takes the rows one refilled object at a time: keep copies.
          drainInto: (visit) =>
            hook!.drainInto((o) => {
              seen.hook.push({ ...o });
              visit(o);
            }),
        },
        conntrack: {
          status: () => conntrack.status(),
          poll: async () => {
            const o = await conntrack.poll();
            seen.conntrack.push(...o);
            return o;
          },
        },
        ebpf: {
          status: () => source.status(),
          stop: () => source.stop(),
          pollInto: (visit) =>
            source.pollInto((o) => {
              seen.ebpf.push({ ...o });
              visit(o);
            }),
        },
        shipper: new RecordingShipper(),
        seq: new SeqAllocator(dir),
        clock: Date.now,
        log: (m) => console.log(`[agent] ${m}`),
      },
    );
    daemon = await startDaemon(true);
    // The first conntrack read is the baseline; the daemon's socket gets listed.
    await agent.tick();
  }, 60_000);

  afterAll(async () => {
    await agent?.stop().catch(() => {});
    await ebpf?.stop();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the same payload bytes from the hook, conntrack and eBPF, and counts the hooked flow once', async () => {
    const spec = { sport: 46001, count: 6, size: 137 };
    await send([spec]);
    const want = { pktsIn: 6, bytesIn: 6 * 137, pktsOut: 6, bytesOut: 6 * 137 };
    const deadline = Date.now() + 15_000;
    const done = () =>
      (['hook', 'conntrack', 'ebpf'] as const).every(
        (s) => sum(seen[s], spec.sport).pktsOut >= spec.count,
      );
    while (!done() && Date.now() < deadline) {
      await sleep(DRAIN_MS / 2);
      await agent!.tick();
    }
    for (let i = 0; i < 3; i++) {
      await sleep(DRAIN_MS / 2);
      await agent!.tick();
    }
    // Each source alone saw every datagram, with the same meaning of bytes.
    expect(sum(seen.hook, spec.sport)).toEqual(want);
    expect(sum(seen.conntrack, spec.sport)).toEqual(want);
    expect(sum(seen.ebpf, spec.sport)).toEqual(want);
    // The table counted them once: one flow, owned by the hook.
    const flows = flowOf(spec.sport);
    expect(flows.map(counted)).toEqual([{ source: 'hook', pid: daemon!.pid, ...want }]);
  }, 30_000);

  it('counts the new clients of the daemon restarted without the hook at the next cycle, exactly', async () => {
    const old = daemon!;
    await new Promise<void>((resolve) => {
      old.once('exit', () => resolve());
      old.kill('SIGKILL');
    });
    daemon = await startDaemon(false);
    const spec = { sport: 46002, count: 5, size: 211 };
    await send([spec]);
    // One interval, plus what eBPF needs to drain (half its interval and a print).
    await sleep(INTERVAL_MS);
    await agent!.tick();
    const want = { pktsIn: 5, bytesIn: 5 * 211, pktsOut: 5, bytesOut: 5 * 211 };
    const flows = flowOf(spec.sport);
    expect(flows.map(counted)).toEqual([{ source: 'ebpf', pid: daemon.pid, ...want }]);
    // Conntrack saw the same, and left the counting to eBPF.
    expect(sum(seen.conntrack, spec.sport)).toEqual(want);
    expect(sum(seen.hook, spec.sport)).toEqual({ pktsIn: 0, bytesIn: 0, pktsOut: 0, bytesOut: 0 });
    const table = readFileSync(`/proc/${daemon.pid}/net/nf_conntrack`, 'latin1');
    expect(table).toMatch(new RegExp(`sport=${spec.sport} dport=${PORT}\\b`));
  }, 30_000);
});
