/**
 * Real daemons, real clients, the real agent process, the real functions:
 * datagrams sent by clients come out of the HTTP API with exact counts, then
 * leave the active set once they are older than the window.
 *
 * - a Node daemon under the dgram hook, the agent on this host's loopback;
 * - socat (no hook possible) in a server namespace, seen through conntrack by
 *   an agent running in that namespace and shipping through a loopback bridge.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  ClientIpResponse,
  ClientsResponse,
  CountResponse,
  Problem,
} from '../../../contract/api-schemas.js';
import { canUseNamespaces, NamespaceLab, nsExec, nsSpawn } from '../../support/netns.js';
import {
  type AgentProcess,
  ackDaemonCounters,
  addCounters,
  type ClientPlan,
  countersOf,
  type DaemonProcess,
  echoedConntrackCounters,
  type Pipeline,
  runClients,
  sleep,
  startAgent,
  startHookedDaemon,
  startPipeline,
  waitFor,
} from './fleet-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'uwe-daemons-'));
const namespacesOk = await canUseNamespaces();
if (!namespacesOk) console.warn('SKIPPING the conntrack case: network namespaces need root');

let pipeline: Pipeline;
const agents: AgentProcess[] = [];
const daemons: DaemonProcess[] = [];
const lab = new NamespaceLab('uwe');

beforeAll(async () => {
  pipeline = await startPipeline();
});

afterAll(async () => {
  for (const a of agents) await a.stop('SIGKILL').catch(() => {});
  for (const d of daemons) d.child.kill('SIGKILL');
  await lab.cleanup();
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Answers give times at the start of their second (docs/store.md), and a
 * window's `since` is floored to the second: an entry whose last packet was at
 * `t` shows `lastSeen` = floor(t) and stays in a `w` s window until
 * floor(now - w) > floor(t), i.e. until lastSeen + (w + 1) s.
 */
const startOfSecond = (ms: number) => Math.floor(ms / 1000) * 1000;

/** When an entry listed with this lastSeen has surely left a window of `seconds`. */
const goneFromWindowAt = (lastSeen: number, seconds: number) => lastSeen + (seconds + 1) * 1000;

/** Polls a service's clients (by endpoint) until the predicate holds. */
async function clientsUntil(
  service: string,
  done: (a: ClientsResponse) => boolean,
  query = '',
): Promise<ClientsResponse> {
  let last: unknown;
  return waitFor(
    `the API to list the expected clients of ${service}`,
    async () => {
      const res = await pipeline.get<ClientsResponse>(
        `/v1/services/${service}/clients?by=endpoint${query}`,
      );
      last = res.body;
      return res.status === 200 && done(res.body) ? res.body : undefined;
    },
    { timeoutMs: 30_000, describe: () => `last answer: ${JSON.stringify(last)}` },
  );
}

describe('Node daemons under the dgram hook', () => {
  const host = 'uwe-loopback-host';
  let daemon: DaemonProcess;
  let daemon6: DaemonProcess;

  beforeAll(async () => {
    const hookSocket = join(dir, 'hook.sock');
    daemon = await startHookedDaemon({ ip: '127.0.0.1', hookSocket });
    daemons.push(daemon);
    // Services are told apart by port: the IPv6 daemon must not draw the same number.
    for (let i = 0; i < 5; i++) {
      daemon6 = await startHookedDaemon({ ip: '::1', hookSocket });
      daemons.push(daemon6);
      if (daemon6.port !== daemon.port) break;
    }
    expect(daemon6.port).not.toBe(daemon.port);
    const agent = await startAgent({
      stream: pipeline.stack.emulators.streamName,
      endpoint: pipeline.kinesisProxy.url,
      stateDir: join(dir, 'state-hook'),
      hookSocket,
      configPath: join(dir, 'agent-hook.json'),
      settings: {
        host,
        services: [
          { name: 'rd-hook', port: daemon.port, timeoutSeconds: 2 },
          { name: 'rd-hook6', port: daemon6.port, timeoutSeconds: 2 },
        ],
        sources: { hook: true, conntrack: false, proc: false },
      },
    });
    agents.push(agent);
    // Until the hook has connected, its counts are dropped (and counted) by design.
    for (const d of [daemon, daemon6])
      await agent.waitForLog(new RegExp(`hook: daemon pid ${d.pid} \\(node\\) reports`));
  });

  it('shows each client with exact counts in and out, then drops it from a 3 s window', async () => {
    const plan: ClientPlan[] = [[100, 200, 300], [64], [1000, 1, 17, 33, 512], [1400, 1400]].map(
      (sizes) => ({ target: '127.0.0.1', port: daemon.port, sizes }),
    );
    const started = Date.now();
    const results = await runClients(plan);
    const finished = Date.now();
    const expected = new Map(
      results.map((r, i) => [`127.0.0.1:${r.sport}`, ackDaemonCounters(plan[i]!.sizes)]),
    );
    // The daemon really answered what the ack daemon promises.
    results.forEach((r, i) => {
      expect(r.bytesBack).toBe(expected.get(`127.0.0.1:${r.sport}`)!.bytesOut);
      expect(r.answered).toBe(plan[i]!.sizes.length);
    });

    const sameCounts = (a: ClientsResponse) =>
      a.clients.length === expected.size &&
      a.clients.every(
        (c) => JSON.stringify(countersOf(c)) === JSON.stringify(expected.get(c.endpoint ?? '')),
      );
    const answer = await clientsUntil('rd-hook', sameCounts);
    for (const c of answer.clients) {
      expect(countersOf(c)).toEqual(expected.get(c.endpoint!));
      expect(c).toMatchObject({
        service: 'rd-hook',
        ip: '127.0.0.1',
        hosts: [host],
        sources: ['hook'],
      });
      // At one-second resolution: no earlier than the second the clients started in.
      expect(c.firstSeen).toBeGreaterThanOrEqual(startOfSecond(started));
      expect(c.firstSeen % 1000).toBe(0);
      expect(c.lastSeen).toBeLessThanOrEqual(finished + 1);
      expect(c.lastSeen).toBeGreaterThanOrEqual(c.firstSeen);
    }
    // Newest first.
    const lastSeens = answer.clients.map((c) => c.lastSeen);
    expect(lastSeens).toEqual([...lastSeens].sort((a, b) => b - a));

    const byIp = await pipeline.get<ClientsResponse>('/v1/services/rd-hook/clients?by=ip');
    expect(byIp.status).toBe(200);
    expect(byIp.body.clients).toHaveLength(1);
    expect(countersOf(byIp.body.clients[0]!)).toEqual(addCounters(...expected.values()));
    const count = await pipeline.get<CountResponse>('/v1/services/rd-hook/count');
    expect(count.body).toMatchObject({ service: 'rd-hook', endpoints: 4, ips: 1 });

    // Quiet for longer than a 3 s window: gone from it, still in the default one.
    // (lastSeen is the start of its second, so the window drops it up to 1 s after 3 s.)
    const newest = Math.max(...answer.clients.map((c) => c.lastSeen));
    await sleep(
      Math.max(0, finished + 3_500 - Date.now(), goneFromWindowAt(newest, 3) - Date.now()),
    );
    const recent = await pipeline.get<ClientsResponse>(
      '/v1/services/rd-hook/clients?by=endpoint&window=3',
    );
    expect(recent.status).toBe(200);
    expect(recent.body.window).toBe(3);
    expect(recent.body.clients).toEqual([]);
    const recentCount = await pipeline.get<CountResponse>('/v1/services/rd-hook/count?window=3');
    expect(recentCount.body).toMatchObject({ endpoints: 0, ips: 0 });
    const whole = await pipeline.get<ClientsResponse>('/v1/services/rd-hook/clients');
    expect(whole.body.clients).toHaveLength(4);
    // Whatever the agent sealed meanwhile moved no counter.
    for (const c of whole.body.clients) expect(countersOf(c)).toEqual(expected.get(c.endpoint!));
    expect(pipeline.stack.failures).toEqual([]);
  });

  it('shows IPv6 clients as [ip]:port endpoints, and finds them by any spelling of the address', async () => {
    const plan: ClientPlan[] = [
      [5, 6, 7],
      [900, 100],
    ].map((sizes) => ({
      target: '::1',
      port: daemon6.port,
      sizes,
    }));
    const results = await runClients(plan);
    const expected = new Map(
      results.map((r, i) => [`[::1]:${r.sport}`, ackDaemonCounters(plan[i]!.sizes)]),
    );
    const answer = await clientsUntil(
      'rd-hook6',
      (a) =>
        a.clients.length === 2 &&
        a.clients.every(
          (c) => JSON.stringify(countersOf(c)) === JSON.stringify(expected.get(c.endpoint ?? '')),
        ),
    );
    for (const c of answer.clients) {
      expect(c).toMatchObject({ ip: '::1', hosts: [host], sources: ['hook'] });
      expect(c.port).toBe(Number(/\]:(\d+)$/.exec(c.endpoint!)?.[1]));
    }
    const count = await pipeline.get<CountResponse>('/v1/services/rd-hook6/count');
    expect(count.body).toMatchObject({ endpoints: 2, ips: 1 });
    const client = await pipeline.get<ClientIpResponse>('/v1/clients/0:0:0:0:0:0:0:1');
    expect(client.status).toBe(200);
    expect(client.body.ip).toBe('::1');
    expect(client.body.services.map((e) => [e.service, countersOf(e)])).toEqual([
      ['rd-hook6', addCounters(...expected.values())],
    ]);
  });
});

describe.skipIf(!namespacesOk)('socat in a namespace, seen through conntrack', () => {
  it('shows each client endpoint with exact kernel counts, then drops it from a 3 s window', async () => {
    const srv = await lab.add('rs');
    const cli = await lab.add('rc');
    await lab.link(srv, '198.51.100.2/24', cli, '198.51.100.3/24');
    // Counters on, and a rule using ct state so this namespace tracks flows.
    await nsExec(srv, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_acct=1');
    await nsExec(
      srv,
      'nft',
      'add table inet uwe ; add chain inet uwe in { type filter hook input priority 0 ; } ; add rule inet uwe in ct state new,established counter',
    );
    await lab.bridgeLoopback(srv, 14567, pipeline.kinesisProxy.port);
    const port = 5353;
    lab.track(nsSpawn(srv, 'socat', [`UDP4-RECVFROM:${port},fork`, 'PIPE']));
    await waitFor('socat to listen', async () =>
      (await nsExec(srv, 'ss', '-Huln', `sport = :${port}`)).trim() ? true : undefined,
    );
    const agent = await startAgent({
      ns: srv,
      stream: pipeline.stack.emulators.streamName,
      endpoint: 'http://127.0.0.1:14567',
      stateDir: join(dir, 'state-ct'),
      hookSocket: join(dir, 'hook-ct.sock'),
      configPath: join(dir, 'agent-ct.json'),
      settings: {
        host: 'uwe-socat-host',
        services: [{ name: 'rd-socat', port, timeoutSeconds: 2 }],
        sources: { hook: false, conntrack: true, proc: true },
      },
    });
    agents.push(agent);
    expect(agent.log()).toMatch(/conntrack: reading via proc/);

    const plan: ClientPlan[] = [
      { sport: 42001, sizes: [10, 20, 30] },
      { sport: 42002, sizes: [700] },
      { sport: 42003, sizes: [1, 2, 3, 4, 5, 6] },
    ].map((c) => ({ ...c, target: '198.51.100.2', port }));
    const started = Date.now();
    const results = await runClients(plan, cli);
    const expected = new Map(
      plan.map((p) => [`198.51.100.3:${p.sport}`, echoedConntrackCounters(p.sizes)]),
    );
    results.forEach((r, i) => {
      expect(r.sport).toBe(plan[i]!.sport);
      expect(r.bytesBack).toBe(plan[i]!.sizes.reduce((a, b) => a + b, 0));
    });

    const answer = await clientsUntil(
      'rd-socat',
      (a) =>
        a.clients.length === 3 &&
        a.clients.every(
          (c) => JSON.stringify(countersOf(c)) === JSON.stringify(expected.get(c.endpoint ?? '')),
        ),
    );
    for (const c of answer.clients) {
      expect(countersOf(c)).toEqual(expected.get(c.endpoint!));
      expect(c).toMatchObject({
        service: 'rd-socat',
        ip: '198.51.100.3',
        hosts: ['uwe-socat-host'],
        sources: ['conntrack'],
      });
    }
    const count = await pipeline.get<CountResponse>('/v1/services/rd-socat/count');
    expect(count.body).toMatchObject({ endpoints: 3, ips: 1 });

    // Conntrack shows a packet when the agent polls: last seen is that poll, shortly after
    // the packet, given at the start of its second (so at most 1 s before the poll).
    const lastSeen = Math.max(...answer.clients.map((c) => c.lastSeen));
    for (const c of answer.clients)
      expect(c.firstSeen).toBeGreaterThanOrEqual(startOfSecond(started));
    expect(lastSeen).toBeGreaterThanOrEqual(startOfSecond(started));
    expect(lastSeen).toBeLessThanOrEqual(Date.now());
    // Gone from a 3 s window once a whole 3 s separates its second from now's.
    await sleep(Math.max(0, goneFromWindowAt(lastSeen, 3) - Date.now()));
    const recent = await pipeline.get<ClientsResponse>('/v1/services/rd-socat/clients?window=3');
    expect(recent.body.clients).toEqual([]);
    const whole = await pipeline.get<ClientsResponse>('/v1/services/rd-socat/clients');
    expect(whole.body.clients.map((c) => countersOf(c))).toEqual(
      answer.clients.map((c) => expected.get(c.endpoint!)),
    );
    expect(pipeline.stack.failures).toEqual([]);
    // An unknown service is an empty answer, not an error.
    const none = await pipeline.get<ClientsResponse | Problem>('/v1/services/rd-none/clients');
    expect(none.status).toBe(200);
    expect((none.body as ClientsResponse).clients).toEqual([]);
  });

  it('finds a client translated on the server host by its pre-NAT address', async () => {
    const srv = await lab.add('ns');
    const cli = await lab.add('nc');
    await lab.link(srv, '203.0.113.2/24', cli, '203.0.113.3/24');
    await nsExec(srv, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_acct=1');
    // The server host rewrites its clients' source address on the way in:
    // the daemon sees 203.0.113.99, conntrack remembers 203.0.113.3.
    const port = 5354;
    await nsExec(
      srv,
      'nft',
      [
        'add table ip uwn',
        'add chain ip uwn in { type nat hook input priority 100 ; }',
        `add rule ip uwn in udp dport ${port} snat to 203.0.113.99`,
      ].join(' ; '),
    );
    await lab.bridgeLoopback(srv, 14568, pipeline.kinesisProxy.port);
    lab.track(nsSpawn(srv, 'socat', [`UDP4-RECVFROM:${port},fork`, 'PIPE']));
    await waitFor('socat to listen', async () =>
      (await nsExec(srv, 'ss', '-Huln', `sport = :${port}`)).trim() ? true : undefined,
    );
    const agent = await startAgent({
      ns: srv,
      stream: pipeline.stack.emulators.streamName,
      endpoint: 'http://127.0.0.1:14568',
      stateDir: join(dir, 'state-nat'),
      hookSocket: join(dir, 'hook-nat.sock'),
      configPath: join(dir, 'agent-nat.json'),
      settings: {
        host: 'uwe-nat-host',
        services: [{ name: 'rd-natted', port }],
        sources: { hook: false, conntrack: true, proc: true },
      },
    });
    agents.push(agent);
    const plan: ClientPlan[] = [{ sport: 42101, sizes: [40, 50], target: '203.0.113.2', port }];
    await runClients(plan, cli);
    // Until every datagram is in: conntrack's counts can reach the API a cycle apart.
    const want = JSON.stringify(echoedConntrackCounters([40, 50]));
    const seen = await clientsUntil(
      'rd-natted',
      (a) => a.clients.length === 1 && JSON.stringify(countersOf(a.clients[0]!)) === want,
    );
    expect(seen.clients[0]).toMatchObject({ ip: '203.0.113.99', natFrom: ['203.0.113.3:42101'] });
    const byPreNat = await pipeline.get<ClientIpResponse>('/v1/clients/203.0.113.3');
    expect(byPreNat.status).toBe(200);
    expect(byPreNat.body.services.map((e) => [e.service, e.ip, e.natFrom, countersOf(e)])).toEqual([
      ['rd-natted', '203.0.113.99', ['203.0.113.3:42101'], echoedConntrackCounters([40, 50])],
    ]);
    // The address the daemon saw finds it too.
    const bySeen = await pipeline.get<ClientIpResponse>('/v1/clients/203.0.113.99');
    expect(bySeen.body.services.map((e) => e.service)).toEqual(['rd-natted']);
  });
});
