/**
 * Blind spots end to end: non-Node servers that conntrack cannot see, the
 * real agent process (eBPF off) in each server's namespace, the real
 * functions in local mode, the HTTP API and the `udpwatch` CLI.
 *
 *   uwu<pid>nt  NOTRACK rule on udp 5000 (busy python echo), a ct rule, and a
 *               quiet socat on 5001 that conntrack would see
 *   uwu<pid>ba  no nftables rules at all (the kernel tracks nothing): a busy
 *               python echo on 5000 and a busy Node daemon under the hook
 *
 * Each busy service is flagged "peers unobserved" with its cause; the quiet
 * one and the hooked one are not; `udpwatch agents` says which sources are
 * blind and why. Then, with eBPF on, the NOTRACK service's clients are listed
 * and the flag clears.
 */
import { type ChildProcess, execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ebpfProblem, readEbpfFacts } from '../../../agent/ebpf-requirements.js';
import type {
  AgentsResponse,
  ClientsResponse,
  CountResponse,
  ServicesResponse,
} from '../../../contract/api-schemas.js';
import { canUseNamespaces, NamespaceLab, nsSpawn } from '../../support/netns.js';
import {
  type AgentProcess,
  type DaemonProcess,
  type Pipeline,
  runClients,
  startAgent,
  startHookedDaemon,
  startPipeline,
  waitFor,
} from './fleet-harness.js';

const runFile = promisify(execFile);
const REPO = join(import.meta.dirname, '../../..');
const FIXTURES = join(import.meta.dirname, '../agent-sources/fixtures');
const BUSY = 5000;
const QUIET = 5001;

const namespacesOk = await canUseNamespaces();
if (!namespacesOk) console.warn('SKIPPING blind-spot e2e: network namespaces need root');
const ebpfWhyNot = namespacesOk
  ? ebpfProblem(await readEbpfFacts({ bpftrace: 'bpftrace', mountTracefs: true }))
  : 'no namespaces';

const dir = mkdtempSync(join(tmpdir(), 'uwu-'));
const lab = new NamespaceLab('uwu');
const agents: AgentProcess[] = [];
const daemons: DaemonProcess[] = [];
const senders: ChildProcess[] = [];
let pipeline: Pipeline;
let ns: { nt: string; ba: string; c1: string; c2: string };
let hooked: DaemonProcess;
let ntAgent: AgentProcess;
let baAgent: AgentProcess;

function startEcho(where: string, port: number): Promise<void> {
  const child = lab.track(
    nsSpawn(where, 'python3', [join(FIXTURES, 'udp-echo.py'), 'echo', String(port)]),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`echo in ${where}: not ready`)), 10_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.trim() === 'ready') {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`echo in ${where} exited ${code}`)));
  });
}

/** A steady client: `count` echoed datagrams, `gapMs` apart (bounded: count * gap). */
function steadyClient(from: string, host: string, sport: number, count: number, gapMs: number) {
  const spec = [{ host, port: BUSY, sport, count, size: 64, gapMs }];
  const child = lab.track(
    nsSpawn(from, 'python3', [join(FIXTURES, 'udp-client.py'), JSON.stringify(spec)]),
  );
  senders.push(child);
  return child;
}

/** Agent settings shared by the agents in the server namespaces. */
function agentIn(where: string, name: string, sources: { hook: boolean; ebpf: boolean }) {
  return startAgent({
    ns: where,
    stream: pipeline.stack.emulators.streamName,
    endpoint: 'http://127.0.0.1:14600',
    stateDir: join(dir, `state-${name}`),
    hookSocket: join(dir, `hook-${name}.sock`),
    configPath: join(dir, `agent-${name}.json`),
    settings: {
      host: `uwu-${name}-host`,
      services: [
        { name: `uo-${name}`, port: BUSY },
        { name: `uo-${name}-quiet`, port: QUIET },
        ...(hooked && name === 'bare' ? [{ name: 'uo-hooked', port: hooked.port }] : []),
      ],
      sources: { hook: sources.hook, ebpf: sources.ebpf, conntrack: true, proc: true },
    },
  });
}

async function cli(...args: string[]): Promise<string> {
  const { stdout } = await runFile(
    process.execPath,
    ['bin/udpwatch.js', ...args, '--api', pipeline.apiUrl],
    { cwd: REPO, timeout: 30_000 },
  );
  return stdout;
}

async function servicesUntil(done: (a: ServicesResponse) => boolean): Promise<ServicesResponse> {
  let last: unknown;
  return waitFor(
    'the services answer to flag the unobserved services',
    async () => {
      const res = await pipeline.get<ServicesResponse>('/v1/services');
      last = res.body;
      return res.status === 200 && done(res.body) ? res.body : undefined;
    },
    {
      timeoutMs: 40_000,
      describe: () =>
        `last answer: ${JSON.stringify(last)}\nagent logs:\n${agents.map((a) => a.log().slice(-3000)).join('\n---\n')}`,
    },
  );
}

const flagged = (a: ServicesResponse, name: string) =>
  a.services.find((s) => s.service === name)?.peersUnobserved === true;

describe.skipIf(!namespacesOk)('busy services no live source observes', () => {
  beforeAll(async () => {
    pipeline = await startPipeline();
    ns = {
      nt: await lab.add('nt'),
      ba: await lab.add('ba'),
      c1: await lab.add('c1'),
      c2: await lab.add('c2'),
    };
    await lab.link(ns.nt, '192.0.2.1/24', ns.c1, '192.0.2.2/24');
    await lab.link(ns.ba, '198.51.100.1/24', ns.c2, '198.51.100.2/24');
    const rules = `table inet uwu {
  chain pre { type filter hook prerouting priority raw; udp dport ${BUSY} notrack; }
  chain out { type filter hook output priority raw; udp sport ${BUSY} notrack; }
  chain in { type filter hook input priority 0; ct state established,related accept; }
}`;
    execFileSync('ip', ['netns', 'exec', ns.nt, 'nft', '-f', '-'], { input: rules });
    // Both agents ship through one bridge port each into the root namespace's Kinesis proxy.
    await lab.bridgeLoopback(ns.nt, 14600, pipeline.kinesisProxy.port);
    await lab.bridgeLoopback(ns.ba, 14600, pipeline.kinesisProxy.port);
    await startEcho(ns.nt, BUSY);
    lab.track(nsSpawn(ns.nt, 'socat', [`UDP4-RECVFROM:${QUIET},fork`, 'PIPE']));
    await startEcho(ns.ba, BUSY);
    hooked = await startHookedDaemon({
      ns: ns.ba,
      ip: '198.51.100.1',
      hookSocket: join(dir, 'hook-bare.sock'),
    });
    daemons.push(hooked);
    ntAgent = await agentIn(ns.nt, 'notrack', { hook: false, ebpf: false });
    baAgent = await agentIn(ns.ba, 'bare', { hook: true, ebpf: false });
    agents.push(ntAgent, baAgent);
    await baAgent.waitForLog(new RegExp(`hook: daemon pid ${hooked.pid} \\(node\\) reports`));
  }, 60_000);

  afterAll(async () => {
    for (const a of agents) await a.stop('SIGKILL').catch(() => {});
    for (const d of daemons) d.child.kill('SIGKILL');
    await lab.cleanup();
    await pipeline?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('flags each busy service with its cause in the heartbeat, the API and the CLI; not the quiet or hooked one', async () => {
    // About 12 s of traffic each: 40 datagrams/s, well above the agent's threshold.
    steadyClient(ns.c1, '192.0.2.1', 41001, 480, 25);
    steadyClient(ns.c2, '198.51.100.1', 41002, 480, 25);
    // The hooked daemon is busy too, at the same time (its reports account for it).
    const hookedClients = runClients(
      Array.from({ length: 40 }, () => ({
        target: '198.51.100.1',
        port: hooked.port,
        sizes: Array.from({ length: 20 }, () => 100),
      })),
      ns.c2,
    );

    const answer = await servicesUntil((a) => flagged(a, 'uo-notrack') && flagged(a, 'uo-bare'));
    const byName = new Map(answer.services.map((s) => [s.service, s]));
    expect(byName.get('uo-notrack')).toMatchObject({
      peersUnobserved: true,
      active: false,
      unobservedReason: expect.stringMatching(
        /uwu-notrack-host: udp port 5000: .*a NOTRACK rule exempts udp port 5000.*eBPF is off.*fix: /,
      ),
    });
    expect(byName.get('uo-bare')).toMatchObject({
      peersUnobserved: true,
      unobservedReason: expect.stringMatching(
        /uwu-bare-host: udp port 5000: .*no firewall rule uses conntrack.*fix: /,
      ),
    });
    // Quiet (and visible to conntrack): no flag, and no entry made up for it.
    expect(byName.get('uo-notrack-quiet')?.peersUnobserved ?? false).toBe(false);

    await hookedClients;
    const withHooked = await servicesUntil((a) =>
      a.services.some((s) => s.service === 'uo-hooked'),
    );
    expect(withHooked.services.find((s) => s.service === 'uo-hooked')).toMatchObject({
      peersUnobserved: false,
    });
    expect(
      withHooked.services.find((s) => s.service === 'uo-hooked')?.unobservedReason,
    ).toBeUndefined();

    const count = await pipeline.get<CountResponse>('/v1/services/uo-notrack/count');
    expect(count.body).toMatchObject({ endpoints: 0, ips: 0, peersUnobserved: true });
    expect(count.body.unobservedReason).toMatch(/NOTRACK/);
    const hookedCount = await pipeline.get<CountResponse>('/v1/services/uo-hooked/count');
    expect(hookedCount.body).toMatchObject({ peersUnobserved: false });

    // The heartbeat itself, as stored and answered per agent.
    const agentsAnswer = await pipeline.get<AgentsResponse>('/v1/agents');
    const nt = agentsAnswer.body.agents.find((g) => g.host === 'uwu-notrack-host')!;
    const ba = agentsAnswer.body.agents.find((g) => g.host === 'uwu-bare-host')!;
    expect(nt.unobserved.map((u) => [u.service, u.port])).toEqual([['uo-notrack', BUSY]]);
    expect(ba.unobserved.map((u) => u.service)).not.toContain('uo-hooked');
    expect(ba.unobserved.map((u) => u.service)).toContain('uo-bare');
    const state = (g: typeof nt, source: string) => g.sourceStates.find((s) => s.source === source);
    expect(state(nt, 'conntrack')).toMatchObject({
      state: 'partial',
      reason: expect.stringMatching(/NOTRACK rule exempts udp port 5000/),
    });
    expect(state(ba, 'conntrack')).toMatchObject({
      state: 'blind',
      reason: expect.stringMatching(/no firewall rule uses conntrack/),
    });
    expect(state(nt, 'ebpf')).toMatchObject({
      state: 'off',
      reason: expect.stringMatching(/sources\.ebpf/),
    });
    // Listed as working only where it sees something.
    expect(nt.sources).toContain('conntrack');
    expect(ba.sources).not.toContain('conntrack');
    expect(ba.sources).toEqual(['hook', 'proc']);

    // Logged once per episode, with the cause and the fix.
    const episodes = ntAgent.log().match(/peers unobserved: service uo-notrack /g) ?? [];
    expect(episodes).toHaveLength(1);
    expect(ntAgent.log()).toMatch(/peers unobserved: service uo-notrack .*fix: enable eBPF/);
    expect(baAgent.log()).toMatch(/source conntrack: blind \(no firewall rule uses conntrack/);

    const services = await cli('services');
    const row = (name: string) => services.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
    expect(row('uo-notrack')).toMatch(/peers unobserved/);
    expect(row('uo-bare')).toMatch(/peers unobserved/);
    expect(row('uo-hooked')).not.toMatch(/peers unobserved/);
    expect(services).toMatch(/uo-notrack: uwu-notrack-host: udp port 5000: .*NOTRACK/);

    const agentsOut = await cli('agents');
    expect(agentsOut).toMatch(/ conntrack: blind - no firewall rule uses conntrack/);
    expect(agentsOut).toMatch(/ conntrack: partial - a NOTRACK rule exempts udp port 5000/);
    expect(agentsOut).toMatch(/ ebpf: off - turned off in the config \(sources\.ebpf\)/);
    expect(agentsOut).toMatch(/ peers unobserved: uo-notrack \(udp port 5000\)/);
    expect(pipeline.stack.failures).toEqual([]);
  }, 90_000);

  it.skipIf(ebpfWhyNot !== null)(
    'with eBPF on, lists the NOTRACK service’s clients and clears the flag',
    async () => {
      await ntAgent.stop('SIGTERM');
      const ebpfAgent = await agentIn(ns.nt, 'notrack', { hook: false, ebpf: true });
      agents.push(ebpfAgent);
      await ebpfAgent.waitForLog(/eBPF source: attached/, {
        timeoutMs: 60_000,
      });
      steadyClient(ns.c1, '192.0.2.1', 41011, 120, 25);
      const clients = await waitFor(
        'the API to list the NOTRACK service’s client, seen by eBPF',
        async () => {
          const res = await pipeline.get<ClientsResponse>('/v1/services/uo-notrack/clients');
          return res.body.clients.some((c) => c.endpoint === '192.0.2.2:41011')
            ? res.body
            : undefined;
        },
        { timeoutMs: 40_000 },
      );
      expect(clients.clients.find((c) => c.endpoint === '192.0.2.2:41011')?.sources).toEqual([
        'ebpf',
      ]);
      // The heartbeat after attaching says so (heartbeats and blocks travel apart).
      const nt = await waitFor('the heartbeat to show eBPF live', async () => {
        const res = await pipeline.get<AgentsResponse>('/v1/agents');
        const g = res.body.agents.find((a) => a.host === 'uwu-notrack-host');
        return g?.sourceStates.some((s) => s.source === 'ebpf' && s.state === 'live')
          ? g
          : undefined;
      });
      expect(nt.unobserved).toEqual([]);
      expect(nt.sourceStates.find((s) => s.source === 'ebpf')).toEqual({
        source: 'ebpf',
        state: 'live',
      });
      const count = await pipeline.get<CountResponse>('/v1/services/uo-notrack/count');
      expect(count.body.peersUnobserved).toBe(false);
    },
    120_000,
  );
});
