/**
 * conntrack and NAT in network namespaces built here:
 *
 *   c1 192.0.2.2 ----- 192.0.2.1 \
 *                                 router (masquerade) 203.0.113.1 ----- 203.0.113.2 server :5000
 *   c2 198.51.100.2 - 198.51.100.1 /
 *
 * Clients in c1 and c2 send known datagrams to an echo server; the conntrack
 * source running inside the server namespace must report every client
 * endpoint with exact packet and byte counts, all behind the router's single
 * address, while the router's own table shows the translation.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConntrack } from '../../../agent/nf-conntrack.js';
import type { ListeningSocket, PeerObservation } from '../../../agent/observation.js';

const ID = process.pid;
const NS = { srv: `uws-srv-${ID}`, rtr: `uws-rtr-${ID}`, c1: `uws-c1-${ID}`, c2: `uws-c2-${ID}` };
const SERVER_IP = '203.0.113.2';
const ROUTER_IP = '203.0.113.1';
const PORT = 5000;
// Inside the server namespace, datagrams to this port are redirected to PORT
// and their source rewritten to SNAT_IP: the server's own table then shows a
// translation, which the source must report as natFromIp/natFromPort.
const NAT_PORT = 5001;
const SNAT_IP = '203.0.113.99';
// A dual-stack socket on [::]:V6_PORT, talked to over ::1 inside the server
// namespace: IPv6 entries as the kernel prints them (full form) and a wildcard
// IPv6 listener.
const V6_PORT = 5002;

// Every endpoint gets its own (count, size) so the server side can be matched
// without knowing the ports masquerading picked. c2 reuses c1's first port on
// purpose: the router must remap one of them.
const PLAN = {
  c1: [
    { sport: 40001, count: 3, size: 100 },
    { sport: 40010, count: 6, size: 64, dport: NAT_PORT },
    { sport: 40002, count: 5, size: 200 },
    { sport: 40003, count: 7, size: 50 },
  ],
  c2: [
    { sport: 40001, count: 4, size: 300 },
    { sport: 40005, count: 2, size: 1000 },
  ],
  srv: [{ sport: 40020, count: 3, size: 80, dport: V6_PORT, host: '::1' }],
};

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
const inNs = (ns: string, cmd: string, ...args: string[]) =>
  run('ip', ['netns', 'exec', ns, cmd, ...args]);

/** Why namespaces cannot be used here, or null when they can. */
function namespaceProblem(): string | null {
  const probe = `uws-probe-${ID}`;
  try {
    run('ip', ['netns', 'add', probe]);
    run('ip', ['netns', 'del', probe]);
    return null;
  } catch (err) {
    return `ip netns add is not permitted here (${(err as Error).message.split('\n')[0]})`;
  }
}

const ECHO_SERVER = `
import dgram from 'node:dgram';
process.title = 'uwsecho';
const s = dgram.createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
const s6 = dgram.createSocket('udp6');
s6.on('message', (m, r) => s6.send(m, r.port, r.address));
s.bind(${PORT}, '0.0.0.0', () => s6.bind(${V6_PORT}, '::', () => process.stdout.write('ready\\n')));
`;

// Sends each datagram and waits for its echo, so nothing is in flight when we look.
const CLIENT = `
import dgram from 'node:dgram';
const specs = JSON.parse(process.argv[1]);
const results = [];
for (const { sport, count, size, dport, host } of specs) {
  const v6 = (host ?? '').includes(':');
  const s = dgram.createSocket(v6 ? 'udp6' : 'udp4');
  await new Promise((r) => s.bind(sport, v6 ? '::' : '0.0.0.0', r));
  let echoes = 0;
  for (let i = 0; i < count; i++) {
    const got = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no echo for ' + sport)), 3000);
      s.once('message', (m) => { clearTimeout(t); resolve(m.length); });
    });
    s.send(Buffer.alloc(size, i), dport ?? ${PORT}, host ?? '${SERVER_IP}');
    if ((await got) === size) echoes++;
  }
  results.push({ sport, echoes });
  s.close();
}
process.stdout.write(JSON.stringify(results) + '\\n');
`;

const problem = namespaceProblem();
if (problem) console.warn(`SKIPPING conntrack/NAT namespace test: ${problem}`);

let server: ChildProcess | undefined;
let emptyProcRoot = '';
/** conntrack-probe.ts and the agent code it runs, bundled into one self-contained ES module. */
let probeBundle = '';

/**
 * Bundles the probe in memory. It is fed to node on stdin, so the unprivileged
 * runs below need no access to the checkout (which may sit in a private
 * directory) nor to a TypeScript loader or node_modules.
 */
async function bundleProbe(): Promise<string> {
  const result = await build({
    entryPoints: [join(import.meta.dirname, 'conntrack-probe.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

function veth(a: string, nsA: string, ipA: string, b: string, nsB: string, ipB: string) {
  run('ip', ['link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
  inNs(nsA, 'ip', 'addr', 'add', ipA, 'dev', a);
  inNs(nsB, 'ip', 'addr', 'add', ipB, 'dev', b);
  inNs(nsA, 'ip', 'link', 'set', a, 'up');
  inNs(nsB, 'ip', 'link', 'set', b, 'up');
}

interface ProbeOutput {
  observations: PeerObservation[];
  status: { available: boolean; via?: string; accounting?: boolean; reason?: string };
  errors: unknown[];
  listeners: ListeningSocket[];
}

/**
 * Runs conntrack-probe.ts in the server namespace; with `caps`, as user nobody
 * holding only those capabilities (e.g. '+dac_read_search', '' for none).
 */
function probe(opts: { procRoot?: string; caps?: string } = {}): ProbeOutput {
  // `-` reads the module from stdin; the probe's arguments follow it (argv[2]).
  const node = [
    process.execPath,
    '--input-type=module',
    '-',
    ...(opts.procRoot ? [opts.procRoot] : []),
  ];
  const caps = opts.caps === undefined ? null : `-all${opts.caps ? `,${opts.caps}` : ''}`;
  const asUser =
    caps === null
      ? node
      : [
          'setpriv',
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          `--inh-caps=${caps}`,
          `--ambient-caps=${caps}`,
          ...node,
        ];
  const out = execFileSync('ip', ['netns', 'exec', NS.srv, ...asUser], {
    encoding: 'utf8',
    input: probeBundle,
    // A directory every user may enter, whatever the checkout's permissions.
    cwd: '/',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return JSON.parse(out);
}

describe.skipIf(problem !== null)('conntrack source behind a masquerading router', () => {
  beforeAll(async () => {
    probeBundle = await bundleProbe();
    for (const ns of Object.values(NS)) run('ip', ['netns', 'add', ns]);
    for (const ns of Object.values(NS)) inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
    veth(`u${ID}s`, NS.srv, `${SERVER_IP}/24`, `u${ID}rs`, NS.rtr, `${ROUTER_IP}/24`);
    veth(`u${ID}a`, NS.c1, '192.0.2.2/24', `u${ID}ra`, NS.rtr, '192.0.2.1/24');
    veth(`u${ID}b`, NS.c2, '198.51.100.2/24', `u${ID}rb`, NS.rtr, '198.51.100.1/24');
    inNs(NS.c1, 'ip', 'route', 'add', 'default', 'via', '192.0.2.1');
    inNs(NS.c2, 'ip', 'route', 'add', 'default', 'via', '198.51.100.1');
    inNs(NS.srv, 'ip', 'route', 'add', 'default', 'via', ROUTER_IP);
    inNs(NS.rtr, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    inNs(
      NS.rtr,
      'nft',
      [
        'add table ip uws',
        'add chain ip uws post { type nat hook postrouting priority 100 ; }',
        `add rule ip uws post oifname "u${ID}rs" masquerade`,
      ].join(' ; '),
    );
    // Counters must be on before the flows start; conntrack in a fresh
    // namespace only tracks once a rule uses ct state.
    inNs(NS.srv, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_acct=1');
    inNs(
      NS.srv,
      'nft',
      [
        'add table inet uws',
        'add chain inet uws in { type filter hook input priority 0 ; }',
        'add rule inet uws in ct state new,established counter',
        'add table ip uwsnat',
        'add chain ip uwsnat pre { type nat hook prerouting priority -100 ; }',
        `add rule ip uwsnat pre udp dport ${NAT_PORT} redirect to :${PORT}`,
        'add chain ip uwsnat in { type nat hook input priority 100 ; }',
        `add rule ip uwsnat in udp dport ${PORT} ip saddr ${ROUTER_IP} ct status dnat snat to ${SNAT_IP}`,
      ].join(' ; '),
    );

    server = spawn(
      'ip',
      ['netns', 'exec', NS.srv, process.execPath, '--input-type=module', '-e', ECHO_SERVER],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    server.stdout!.setEncoding('utf8');
    for await (const chunk of server.stdout!) {
      out += chunk;
      if (out.includes('\n')) break;
    }
    expect(out).toBe('ready\n');

    for (const ns of ['c1', 'c2', 'srv'] as const) {
      const result = JSON.parse(
        inNs(
          NS[ns],
          process.execPath,
          '--input-type=module',
          '-e',
          CLIENT,
          JSON.stringify(PLAN[ns]),
        ),
      );
      expect(result).toEqual(PLAN[ns].map(({ sport, count }) => ({ sport, echoes: count })));
    }
    emptyProcRoot = mkdtempSync(join(tmpdir(), 'uws-noproc-'));
  });

  afterAll(() => {
    if (server && server.exitCode === null) server.kill('SIGKILL');
    for (const ns of Object.values(NS)) {
      try {
        run('ip', ['netns', 'del', ns]);
      } catch {
        // never created
      }
    }
    if (emptyProcRoot) rmSync(emptyProcRoot, { recursive: true, force: true });
  });

  const expected = [...PLAN.c1, ...PLAN.c2].map(({ count, size }) => ({
    pktsIn: count,
    // UDP payload: the source takes the IP+UDP headers conntrack counts off each packet.
    bytesIn: count * size,
    pktsOut: count,
    bytesOut: count * size,
  }));
  const counters = (o: PeerObservation) => ({
    pktsIn: o.pktsIn,
    bytesIn: o.bytesIn,
    pktsOut: o.pktsOut,
    bytesOut: o.bytesOut,
  });
  const byBytes = (a: { bytesIn: number }, b: { bytesIn: number }) => a.bytesIn - b.bytesIn;

  it('reports every client endpoint with exact counts, masqueraded ones behind the router address', () => {
    const { observations, status, errors, listeners } = probe();
    expect(status).toEqual({ available: true, via: 'proc', accounting: true });
    expect(errors).toEqual([]);
    const echo = listeners.find((l) => l.localPort === PORT)!;
    expect(echo).toMatchObject({ localIp: '0.0.0.0', process: 'uwsecho', pid: server!.pid });

    // The redirected flow (sent to NAT_PORT) is attributed to the socket on PORT too.
    const toServer = observations.filter((o) => o.localPort === PORT);
    expect(toServer).toHaveLength(6);
    expect(toServer.map(counters).sort(byBytes)).toEqual(expected.sort(byBytes));
    for (const o of toServer) {
      expect(o).toMatchObject({
        source: 'conntrack',
        localIp: '0.0.0.0',
        process: 'uwsecho',
        pid: server!.pid,
      });
    }
    // Masquerading happened at the router: here those flows show no translation.
    const masqueraded = toServer.filter((o) => o.remoteIp === ROUTER_IP);
    expect(masqueraded).toHaveLength(5);
    for (const o of masqueraded) expect(o.natFromIp).toBeUndefined();
    // The flow translated in this namespace carries its pre-NAT address.
    const local = toServer.find((o) => o.remoteIp === SNAT_IP)!;
    const nat = PLAN.c1.find((p) => p.dport === NAT_PORT)!;
    expect(local).toMatchObject({
      natFromIp: ROUTER_IP,
      natFromPort: nat.sport,
      pktsIn: nat.count,
    });
    // NAT in numbers: six endpoints, two distinct IPs; the colliding source port was remapped.
    expect(new Set(toServer.map((o) => `${o.remoteIp}:${o.remotePort}`)).size).toBe(6);
    expect(new Set(toServer.map((o) => o.remoteIp))).toEqual(new Set([ROUTER_IP, SNAT_IP]));
  });

  it('matches the router table: each server-side endpoint is one client translated', () => {
    const { observations } = probe();
    const routerTable = parseConntrack(inNs(NS.rtr, 'cat', '/proc/net/nf_conntrack'));
    expect(routerTable.errors).toEqual([]);
    const translated = routerTable.entries.filter((e) => e.orig.dst === SERVER_IP);
    expect(translated).toHaveLength(6);
    const clientByRouterPort = new Map<number, string>();
    for (const e of translated) {
      expect(e.reply.dst).toBe(ROUTER_IP); // masqueraded
      clientByRouterPort.set(e.reply.dport, `${e.orig.src}:${e.orig.sport}`);
    }
    // Follow each server-side endpoint back through the router's translation.
    const clients = new Set(
      observations
        .filter((o) => o.localPort === PORT)
        .map((o) => clientByRouterPort.get(o.natFromPort ?? o.remotePort)),
    );
    expect(clients).toEqual(
      new Set([
        ...PLAN.c1.map((p) => `192.0.2.2:${p.sport}`),
        ...PLAN.c2.map((p) => `198.51.100.2:${p.sport}`),
      ]),
    );
  });

  it('reports an IPv6 client of a dual-stack wildcard socket', () => {
    const { observations } = probe();
    const [spec] = PLAN.srv;
    const v6 = observations.filter((o) => o.localPort === V6_PORT);
    expect(v6).toEqual([
      {
        source: 'conntrack',
        localIp: '::',
        localPort: V6_PORT,
        remoteIp: '::1',
        remotePort: spec!.sport,
        pktsIn: spec!.count,
        bytesIn: spec!.count * spec!.size,
        pktsOut: spec!.count,
        bytesOut: spec!.count * spec!.size,
        firstSeen: v6[0]!.lastSeen,
        lastSeen: v6[0]!.lastSeen,
        pid: server!.pid,
        process: 'uwsecho',
      },
    ]);
  });

  it('reads the same through the conntrack tool when the /proc file is absent', () => {
    const viaProc = probe();
    const viaTool = probe({ procRoot: emptyProcRoot });
    expect(viaTool.status).toEqual({ available: true, via: 'tool', accounting: true });
    const key = (o: PeerObservation) =>
      `${o.remoteIp}:${o.remotePort} ${JSON.stringify(counters(o))}`;
    expect(viaTool.observations.map(key).sort()).toEqual(viaProc.observations.map(key).sort());
    expect(viaTool.observations.filter((o) => o.localPort === PORT)).toHaveLength(6);
  });
  it('needs CAP_DAC_READ_SEARCH for the table file or CAP_NET_ADMIN for the tool, and says so', () => {
    const key = (o: PeerObservation) => `${o.remoteIp}:${o.remotePort} ${o.pktsIn} ${o.bytesIn}`;
    const asRoot = probe().observations.map(key).sort();

    const none = probe({ caps: '' });
    expect(none.observations).toEqual([]);
    expect(none.status.available).toBe(false);
    expect(none.status.reason).toContain('/proc/net/nf_conntrack: EACCES');
    expect(none.status.reason).toContain('CAP_NET_ADMIN');
    // The /proc source runs on: listeners are there, owners of other users' processes are not.
    const echo = none.listeners.find((l) => l.localPort === PORT)!;
    expect(echo.localIp).toBe('0.0.0.0');
    expect(echo.pid).toBeUndefined();

    const file = probe({ caps: '+dac_read_search,+sys_ptrace' });
    expect(file.status).toMatchObject({ available: true, via: 'proc' });
    expect(file.observations.map(key).sort()).toEqual(asRoot);
    expect(file.listeners.find((l) => l.localPort === PORT)!.pid).toBe(server!.pid);

    const tool = probe({ caps: '+net_admin' });
    expect(tool.status).toMatchObject({ available: true, via: 'tool' });
    expect(tool.observations.map(key).sort()).toEqual(asRoot);
  });
});
