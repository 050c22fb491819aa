/**
 * A fleet in network namespaces, all shipping to one local stream:
 *
 *   nat  192.0.2.2 ---- 192.0.2.1 \                      / 203.0.113.2  h1: hooked Node daemon :5300 + agent
 *   (several clients)               router (SNAT of      -  203.0.113.18 h2: hooked Node daemon :5300 + agent
 *   pub  198.51.100.2 - 198.51.100.1/  192.0.2.0/24 to   \ 203.0.113.34 h3: socat :5353 (conntrack) + agent
 *                                      203.0.113.200)
 *
 * Each agent runs inside its host namespace and reaches Kinesis through a
 * loopback bridge. The API must answer per service, per host and per client
 * IP with exact counts, and the count endpoint must show the NAT: many
 * endpoints behind one address.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  AgentsResponse,
  ClientEntry,
  ClientIpResponse,
  ClientsResponse,
  CountResponse,
  HostClientsResponse,
  ServicesResponse,
} from '../../../contract/api-schemas.js';
import { canUseNamespaces, NamespaceLab, nsExec, nsSpawn } from '../../support/netns.js';
import {
  type AgentProcess,
  ackDaemonCounters,
  addCounters,
  type ClientPlan,
  type Counters,
  countersOf,
  echoedConntrackCounters,
  type Pipeline,
  runClients,
  startAgent,
  startHookedDaemon,
  startPipeline,
  waitFor,
} from './fleet-harness.js';

const namespacesOk = await canUseNamespaces();
if (!namespacesOk) console.warn('SKIPPING the fleet test: network namespaces need root');

const NAT_IP = '203.0.113.200';
const PUB_IP = '198.51.100.2';
const GAME = 'fl-game';
const DNS = 'fl-dns';
const GAME_PORT = 5300;
const DNS_PORT = 5353;
const HOSTS = ['uwe-h1', 'uwe-h2', 'uwe-h3'] as const;
const hostIp = (k: number) => `203.0.113.${16 * k + 2}`;

const dir = mkdtempSync(join(tmpdir(), 'uwe-fleet-'));
const lab = new NamespaceLab('uwe');
let pipeline: Pipeline;
const agents: AgentProcess[] = [];
const ns = { rtr: '', nat: '', pub: '' };
/** Host namespaces, h1..h3. */
const hostNs: string[] = [];

/** Who sends what: (namespace, source port, host index, datagram sizes). */
const TRAFFIC = [
  { from: 'nat', sport: 41001, host: 0, sizes: [10, 20] },
  { from: 'nat', sport: 41002, host: 0, sizes: [30] },
  { from: 'nat', sport: 41003, host: 0, sizes: [40, 40, 40] },
  { from: 'nat', sport: 41001, host: 1, sizes: [50] },
  { from: 'nat', sport: 41004, host: 1, sizes: [60, 61] },
  { from: 'nat', sport: 41005, host: 2, sizes: [70, 71, 72] },
  { from: 'nat', sport: 41002, host: 2, sizes: [80] },
  { from: 'pub', sport: 42001, host: 0, sizes: [90] },
  { from: 'pub', sport: 42002, host: 2, sizes: [100, 101] },
] as const;

const serviceOf = (host: number) => (host === 2 ? DNS : GAME);
const countersFor = (t: (typeof TRAFFIC)[number]) =>
  t.host === 2 ? echoedConntrackCounters([...t.sizes]) : ackDaemonCounters([...t.sizes]);
const clientIp = (t: (typeof TRAFFIC)[number]) => (t.from === 'nat' ? NAT_IP : PUB_IP);

/** Ground truth grouped by a key. */
function truthBy(key: (t: (typeof TRAFFIC)[number]) => string | undefined): Map<string, Counters> {
  const out = new Map<string, Counters>();
  for (const t of TRAFFIC) {
    const k = key(t);
    if (k === undefined) continue;
    out.set(k, addCounters(out.get(k) ?? addCounters(), countersFor(t)));
  }
  return out;
}

beforeAll(async () => {
  if (!namespacesOk) return;
  pipeline = await startPipeline();
  ns.rtr = await lab.add('rtr');
  ns.nat = await lab.add('nat');
  ns.pub = await lab.add('pub');
  await lab.link(ns.nat, '192.0.2.2/24', ns.rtr, '192.0.2.1/24');
  await lab.link(ns.pub, `${PUB_IP}/24`, ns.rtr, '198.51.100.1/24');
  await nsExec(ns.nat, 'ip', 'route', 'add', 'default', 'via', '192.0.2.1');
  await nsExec(ns.pub, 'ip', 'route', 'add', 'default', 'via', '198.51.100.1');
  for (let k = 0; k < 3; k++) {
    const h = await lab.add(`h${k + 1}`);
    hostNs.push(h);
    await lab.link(h, `${hostIp(k)}/28`, ns.rtr, `203.0.113.${16 * k + 1}/28`);
    await nsExec(h, 'ip', 'route', 'add', 'default', 'via', `203.0.113.${16 * k + 1}`);
    await lab.bridgeLoopback(h, 14567, pipeline.kinesisProxy.port);
  }
  await nsExec(ns.rtr, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  await nsExec(ns.rtr, 'ip', 'addr', 'add', `${NAT_IP}/32`, 'dev', 'lo');
  await nsExec(
    ns.rtr,
    'nft',
    `add table ip uwe ; add chain ip uwe post { type nat hook postrouting priority 100 ; } ; add rule ip uwe post ip saddr 192.0.2.0/24 snat to ${NAT_IP}`,
  );
  // h3 counts through conntrack: counters on, and a rule using ct state so it tracks.
  await nsExec(hostNs[2]!, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_acct=1');
  await nsExec(
    hostNs[2]!,
    'nft',
    'add table inet uwe ; add chain inet uwe in { type filter hook input priority 0 ; } ; add rule inet uwe in ct state new,established counter',
  );

  const daemons = await Promise.all(
    [0, 1].map((k) =>
      startHookedDaemon({
        ns: hostNs[k],
        ip: '0.0.0.0',
        port: GAME_PORT,
        hookSocket: join(dir, `hook-${k}.sock`),
      }),
    ),
  );
  for (const d of daemons) lab.track(d.child);
  lab.track(nsSpawn(hostNs[2]!, 'socat', [`UDP4-RECVFROM:${DNS_PORT},fork`, 'PIPE']));
  await waitFor('socat to listen in h3', async () =>
    (await nsExec(hostNs[2]!, 'ss', '-Huln', `sport = :${DNS_PORT}`)).trim() ? true : undefined,
  );

  const started = await Promise.all(
    [0, 1, 2].map((k) =>
      startAgent({
        ns: hostNs[k],
        stream: pipeline.stack.emulators.streamName,
        endpoint: 'http://127.0.0.1:14567',
        stateDir: join(dir, `state-${k}`),
        hookSocket: join(dir, `hook-${k}.sock`),
        configPath: join(dir, `agent-${k}.json`),
        settings: {
          host: HOSTS[k]!,
          services: k === 2 ? [{ name: DNS, port: DNS_PORT }] : [{ name: GAME, port: GAME_PORT }],
          sources: { hook: k < 2, conntrack: k === 2, proc: k === 2 },
        },
      }),
    ),
  );
  agents.push(...started);
  await Promise.all(
    [0, 1].map((k) =>
      started[k]!.waitForLog(new RegExp(`hook: daemon pid ${daemons[k]!.pid} \\(node\\) reports`)),
    ),
  );

  for (const from of ['nat', 'pub'] as const) {
    const mine = TRAFFIC.filter((t) => t.from === from);
    const plan: ClientPlan[] = mine.map((t) => ({
      target: hostIp(t.host),
      port: t.host === 2 ? DNS_PORT : GAME_PORT,
      sport: t.sport,
      sizes: [...t.sizes],
    }));
    await runClients(plan, ns[from]);
  }
}, 90_000);

afterAll(async () => {
  for (const a of agents) await a.stop('SIGKILL').catch(() => {});
  await lab.cleanup();
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const byKey = (entries: ClientEntry[], key: (e: ClientEntry) => string) =>
  Object.fromEntries(entries.map((e) => [key(e), countersOf(e)]));
const sortedObject = (m: Map<string, Counters>) =>
  Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)));
const sortKeys = (o: Record<string, Counters>) =>
  Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));

describe.skipIf(!namespacesOk)('a fleet of three hosts behind a NAT router', () => {
  it('answers per service with exact endpoint counts, all hosts merged', async () => {
    for (const service of [GAME, DNS]) {
      const truth = truthBy((t) =>
        serviceOf(t.host) === service ? `${clientIp(t)}:${t.sport}` : undefined,
      );
      let last: unknown;
      const answer = await waitFor(
        `all clients of ${service} with exact counts`,
        async () => {
          const res = await pipeline.get<ClientsResponse>(
            `/v1/services/${service}/clients?by=endpoint`,
          );
          last = res.body;
          const got = sortKeys(byKey(res.body.clients ?? [], (e) => e.endpoint ?? ''));
          return JSON.stringify(got) === JSON.stringify(sortedObject(truth)) ? res.body : undefined;
        },
        {
          timeoutMs: 40_000,
          describe: () => `last: ${JSON.stringify(last)}\n${agents.map((a) => a.log()).join('\n')}`,
        },
      );
      expect(sortKeys(byKey(answer.clients, (e) => e.endpoint!))).toEqual(sortedObject(truth));
      const source = service === DNS ? 'conntrack' : 'hook';
      for (const e of answer.clients) expect(e.sources).toEqual([source]);
      // Port 41001 of the NAT address reached both h1 and h2: one endpoint, two hosts.
      if (service === GAME) {
        const shared = answer.clients.find((e) => e.endpoint === `${NAT_IP}:41001`)!;
        expect([...shared.hosts].sort()).toEqual(['uwe-h1', 'uwe-h2']);
      }
      const byIp = await pipeline.get<ClientsResponse>(`/v1/services/${service}/clients?by=ip`);
      expect(sortKeys(byKey(byIp.body.clients, (e) => e.ip))).toEqual(
        sortedObject(truthBy((t) => (serviceOf(t.host) === service ? clientIp(t) : undefined))),
      );
    }
  });

  it('shows the NAT: more endpoints than distinct IPs', async () => {
    const game = await pipeline.get<CountResponse>(`/v1/services/${GAME}/count`);
    expect(game.body).toMatchObject({ service: GAME, endpoints: 5, ips: 2 });
    const dns = await pipeline.get<CountResponse>(`/v1/services/${DNS}/count`);
    expect(dns.body).toMatchObject({ service: DNS, endpoints: 3, ips: 2 });
    const services = await pipeline.get<ServicesResponse>('/v1/services');
    expect(services.body.services.map((s) => [s.service, s.active]).sort()).toEqual([
      [DNS, true],
      [GAME, true],
    ]);
  });

  it('answers per client IP: every service the address talked to', async () => {
    for (const ip of [NAT_IP, PUB_IP]) {
      const res = await pipeline.get<ClientIpResponse>(`/v1/clients/${ip}`);
      expect(res.status).toBe(200);
      expect(res.body.truncated).toBe(false);
      expect(sortKeys(byKey(res.body.services, (e) => e.service))).toEqual(
        sortedObject(truthBy((t) => (clientIp(t) === ip ? serviceOf(t.host) : undefined))),
      );
      for (const e of res.body.services) {
        expect(e.ip).toBe(ip);
        const sawIt = TRAFFIC.filter((t) => clientIp(t) === ip && serviceOf(t.host) === e.service);
        expect([...e.hosts].sort()).toEqual([...new Set(sawIt.map((t) => HOSTS[t.host]))].sort());
      }
    }
    const unknown = await pipeline.get<ClientIpResponse>('/v1/clients/192.0.2.99');
    expect(unknown.body.services).toEqual([]);
  });

  it('answers per host: only what that host saw', async () => {
    for (const [k, host] of HOSTS.entries()) {
      const res = await pipeline.get<HostClientsResponse>(`/v1/hosts/${host}/clients`);
      expect(res.status).toBe(200);
      for (const e of res.body.clients) expect(e.host).toBe(host);
      expect(sortKeys(byKey(res.body.clients, (e) => `${e.service}/${e.ip}`))).toEqual(
        sortedObject(
          truthBy((t) => (t.host === k ? `${serviceOf(t.host)}/${clientIp(t)}` : undefined)),
        ),
      );
    }
    const agentsAnswer = await pipeline.get<AgentsResponse>('/v1/agents');
    expect(agentsAnswer.body.agents.map((a) => a.host).sort()).toEqual([...HOSTS]);
    for (const a of agentsAnswer.body.agents) expect(a.reporting).toBe(true);
    expect(pipeline.stack.failures).toEqual([]);
  });
});
