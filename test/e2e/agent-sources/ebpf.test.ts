/**
 * The eBPF source with real bpftrace, real sockets and non-Node servers, in
 * network namespaces built here:
 *
 *   c1 192.0.2.2, 2001:db8:1::2 ---- 192.0.2.1, 2001:db8:1::1  notrack: nft NOTRACK for the
 *                                                                 server port (conntrack blind)
 *   c2 198.51.100.2, 2001:db8:2::2 -- 198.51.100.1, 2001:db8:2::1 bare: no nftables rules at all;
 *                                                                 also a connect()-per-client server
 *
 * One eBPF source per server namespace (bpftrace started once each, in
 * parallel), sockets from /proc of a server process in that namespace. Every
 * client endpoint must be listed with packet and byte counts equal to what
 * was sent and echoed, over IPv4 and IPv6.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../../agent/agent.js';
import { AgentConfigSchema } from '../../../agent/agent-config.js';
import { SeqAllocator } from '../../../agent/agent-state.js';
import { createEbpfSource, type EbpfSource } from '../../../agent/ebpf-source.js';
import type { PeerObservation } from '../../../agent/observation.js';
import { createProcSource } from '../../../agent/proc-source.js';

import { ebpfLabSkipReason } from '../../support/ebpf-lab.js';
import { NamespaceLab, nsExec, nsSpawn } from '../../support/netns.js';
import { decodePayload } from '../../support/stream-records.js';
import { RecordingShipper } from '../../unit/agent/fake-sources.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const ECHO_PORT = 5000;
const CONNECTED_PORT = 6000;
const NOBODY_PORT = 5999;
const DRAIN_MS = 500;

const skipReason = await ebpfLabSkipReason();
if (skipReason) console.warn(`SKIPPING eBPF source e2e: ${skipReason}`);

interface Spec {
  host: string;
  port: number;
  sport: number;
  count: number;
  size: number;
  echo?: boolean;
  gapMs?: number;
}

/** One server namespace: its eBPF source, /proc view and what the source reported so far. */
interface Watched {
  ns: string;
  source: EbpfSource;
  seen: PeerObservation[];
  proc: ReturnType<typeof createProcSource>;
}

const lab = new NamespaceLab('uweb');
const watched: Record<'notrack' | 'bare', Watched> = {} as never;
const startupMs: number[] = [];

function startServer(ns: string, args: string[]): Promise<ChildProcess> {
  const child = lab.track(nsSpawn(ns, 'python3', [join(FIXTURES, 'udp-echo.py'), ...args]));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server ${args.join(' ')} in ${ns}: no ready`)),
      10_000,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.trim() === 'ready') {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`server in ${ns} exited ${code}`)));
  });
}

async function send(ns: string, specs: Spec[]): Promise<number[]> {
  const out = await nsExec(ns, 'python3', join(FIXTURES, 'udp-client.py'), JSON.stringify(specs));
  return JSON.parse(out) as number[];
}

/** Reads the /proc view, then the source, as the agent's cycle does. */
async function pollOnce(w: Watched): Promise<void> {
  await w.proc.poll();
  w.seen.push(...w.source.poll());
}

/** Sums what the source reported for one remote endpoint (on a local port). */
function totals(w: Watched, remoteIp: string, remotePort: number, localPort: number) {
  const t = {
    pktsIn: 0,
    bytesIn: 0,
    pktsOut: 0,
    bytesOut: 0,
    lastSeen: 0,
    flows: new Set<string>(),
  };
  for (const o of w.seen) {
    if (o.remoteIp !== remoteIp || o.remotePort !== remotePort || o.localPort !== localPort)
      continue;
    t.pktsIn += o.pktsIn;
    t.bytesIn += o.bytesIn;
    t.pktsOut += o.pktsOut;
    t.bytesOut += o.bytesOut;
    t.lastSeen = Math.max(t.lastSeen, o.lastSeen);
    t.flows.add(o.localIp);
  }
  return t;
}

/**
 * Polls until every spec's packets are reported, then two drains more so a
 * late or doubled count would show. Returns nothing: callers assert totals.
 */
async function settle(w: Watched, specs: Spec[], clientIp: (s: Spec) => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  const done = () => specs.every((s) => totals(w, clientIp(s), s.sport, s.port).pktsIn >= s.count);
  while (!done() && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, DRAIN_MS / 2));
    await pollOnce(w);
  }
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, DRAIN_MS / 2));
    await pollOnce(w);
  }
}

describe.skipIf(skipReason !== null)('eBPF source (bpftrace in network namespaces)', () => {
  beforeAll(async () => {
    const notrack = await lab.add('nt');
    const bare = await lab.add('ba');
    const c1 = await lab.add('c1');
    const c2 = await lab.add('c2');
    const a = await lab.link(notrack, '192.0.2.1/24', c1, '192.0.2.2/24');
    const b = await lab.link(bare, '198.51.100.1/24', c2, '198.51.100.2/24');
    // nodad: the addresses are usable at once instead of after duplicate detection.
    await nsExec(notrack, 'ip', 'addr', 'add', '2001:db8:1::1/64', 'dev', a.aIf, 'nodad');
    await nsExec(c1, 'ip', 'addr', 'add', '2001:db8:1::2/64', 'dev', a.bIf, 'nodad');
    await nsExec(bare, 'ip', 'addr', 'add', '2001:db8:2::1/64', 'dev', b.aIf, 'nodad');
    await nsExec(c2, 'ip', 'addr', 'add', '2001:db8:2::2/64', 'dev', b.bIf, 'nodad');
    // NOTRACK for the echo port both ways, and a ct rule that would otherwise make conntrack track.
    const rules = `table inet uwraw {
  chain pre { type filter hook prerouting priority raw; udp dport ${ECHO_PORT} notrack; }
  chain out { type filter hook output priority raw; udp sport ${ECHO_PORT} notrack; }
  chain in { type filter hook input priority 0; ct state established,related accept; }
}`;
    execFileSync('ip', ['netns', 'exec', notrack, 'nft', '-f', '-'], { input: rules });
    const ntServer = await startServer(notrack, ['echo', String(ECHO_PORT)]);
    const baServer = await startServer(bare, ['echo', String(ECHO_PORT)]);
    await startServer(bare, ['connected', String(CONNECTED_PORT), '198.51.100.1']);
    const inode = async (ns: string) =>
      Number(/\[(\d+)\]/.exec(await nsExec(ns, 'readlink', '/proc/self/ns/net'))![1]);
    const make = async (ns: string, pid: number, addresses: string[]): Promise<Watched> => {
      const proc = createProcSource({ netDir: `/proc/${pid}/net` });
      await proc.poll();
      const source = createEbpfSource({
        netnsInode: await inode(ns),
        sockets: () => ({
          listeners: proc.listeners(),
          connected: (proc.lastScan()?.sockets ?? [])
            .filter((s) => s.connected)
            .map((s) => ({ ...s, pid: s.owner?.pid, process: s.owner?.comm })),
        }),
        localAddresses: () => addresses,
        drainIntervalMs: DRAIN_MS,
        log: (m) => console.log(`[${ns}] ${m}`),
      });
      return { ns, source, proc, seen: [] };
    };
    watched.notrack = await make(notrack, ntServer.pid!, ['192.0.2.1', '2001:db8:1::1']);
    watched.bare = await make(bare, baServer.pid!, ['198.51.100.1', '2001:db8:2::1']);
    const started = await Promise.all([
      watched.notrack.source.start(),
      watched.bare.source.start(),
    ]);
    for (const s of started) {
      expect(s, s.reason).toMatchObject({ live: true, state: 'live' });
      startupMs.push(s.startupMs!);
    }
    console.log(`bpftrace attached in ${startupMs.join(' ms and ')} ms (two started in parallel)`);
  });

  afterAll(async () => {
    await Promise.all(Object.values(watched).map((w) => w.source.stop()));
    await lab.cleanup();
  });

  it('counts every client of a NOTRACK server exactly, IPv4 and IPv6, where conntrack sees nothing', async () => {
    const w = watched.notrack;
    const specs: Spec[] = [
      { host: '192.0.2.1', port: ECHO_PORT, sport: 41001, count: 7, size: 100 },
      { host: '192.0.2.1', port: ECHO_PORT, sport: 41002, count: 3, size: 1200 },
      { host: '2001:db8:1::1', port: ECHO_PORT, sport: 41003, count: 5, size: 64 },
      { host: '2001:db8:1::1', port: ECHO_PORT, sport: 41004, count: 2, size: 900 },
    ];
    expect(await send(lab.namespaces[2]!, specs)).toEqual(specs.map((s) => s.count));
    await settle(w, specs, (s) => (s.host.includes(':') ? '2001:db8:1::2' : '192.0.2.2'));
    for (const s of specs) {
      const client = s.host.includes(':') ? '2001:db8:1::2' : '192.0.2.2';
      const t = totals(w, client, s.sport, ECHO_PORT);
      expect({ sport: s.sport, ...t, flows: [...t.flows] }).toEqual({
        sport: s.sport,
        pktsIn: s.count,
        bytesIn: s.count * s.size,
        pktsOut: s.count,
        bytesOut: s.count * s.size,
        lastSeen: t.lastSeen,
        // Keyed by the socket's bound wildcard, as conntrack flows are.
        flows: [s.host.includes(':') ? '::' : '0.0.0.0'],
      });
      expect(t.lastSeen).toBeLessThanOrEqual(Date.now());
    }
    const o = w.seen.find((x) => x.remotePort === 41001)!;
    expect(o).toMatchObject({ source: 'ebpf', process: 'python3' });
    // Conntrack is blind here: NOTRACK kept every datagram of the port out of its table.
    const table = `/proc/${w.proc.listeners()[0]!.pid}/net/nf_conntrack`;
    const text = existsSync(table) ? readFileSync(table, 'latin1') : '';
    expect(text).not.toMatch(new RegExp(`dport=${ECHO_PORT}\\b`));
  });

  it('counts the clients of a server in a namespace with no nftables rules, and no one for an unowned port', async () => {
    const w = watched.bare;
    expect((await nsExec(w.ns, 'nft', 'list', 'ruleset')).trim()).toBe('');
    const unownedBefore = w.source.status().unownedPackets;
    const specs: Spec[] = [
      { host: '198.51.100.1', port: ECHO_PORT, sport: 42001, count: 4, size: 333 },
      { host: '2001:db8:2::1', port: ECHO_PORT, sport: 42002, count: 6, size: 48 },
      { host: '198.51.100.1', port: NOBODY_PORT, sport: 42003, count: 5, size: 10, echo: false },
    ];
    const c2 = lab.namespaces[3]!;
    expect(await send(c2, specs)).toEqual([4, 6, 0]);
    await settle(w, specs.slice(0, 2), (s) =>
      s.host.includes(':') ? '2001:db8:2::2' : '198.51.100.2',
    );
    expect(totals(w, '198.51.100.2', 42001, ECHO_PORT)).toMatchObject({
      pktsIn: 4,
      bytesIn: 4 * 333,
      pktsOut: 4,
      bytesOut: 4 * 333,
    });
    expect(totals(w, '2001:db8:2::2', 42002, ECHO_PORT)).toMatchObject({
      pktsIn: 6,
      bytesIn: 6 * 48,
      pktsOut: 6,
      bytesOut: 6 * 48,
    });
    // Datagrams to a port no socket owns are not clients, but they are counted as such.
    expect(w.seen.filter((o) => o.localPort === NOBODY_PORT || o.remotePort === 42003)).toEqual([]);
    expect(w.source.status().unownedPackets - unownedBefore).toBeGreaterThanOrEqual(5);
    expect(w.source.status().refusedPackets).toBe(0);
  });

  it('counts a server that connect()s a socket per client exactly, with last-seen moving', async () => {
    const w = watched.bare;
    const c2 = lab.namespaces[3]!;
    const first: Spec[] = [
      { host: '198.51.100.1', port: CONNECTED_PORT, sport: 43001, count: 5, size: 70 },
      { host: '198.51.100.1', port: CONNECTED_PORT, sport: 43002, count: 2, size: 500 },
    ];
    expect(await send(c2, first)).toEqual([5, 2]);
    await settle(w, first, () => '198.51.100.2');
    const before = totals(w, '198.51.100.2', 43001, CONNECTED_PORT);
    expect(before).toMatchObject({ pktsIn: 5, bytesIn: 350, pktsOut: 5, bytesOut: 350 });
    expect(totals(w, '198.51.100.2', 43002, CONNECTED_PORT)).toMatchObject({
      pktsIn: 2,
      bytesIn: 1000,
      pktsOut: 2,
      bytesOut: 1000,
    });
    // The per-client socket answers, so the flow is the connected socket's own address.
    expect([...before.flows]).toContain('198.51.100.1');
    await new Promise((r) => setTimeout(r, 1200));
    const again: Spec[] = [{ ...first[0]!, count: 3 }];
    expect(await send(c2, again)).toEqual([3]);
    await settle(w, [{ ...first[0]!, count: 8 }], () => '198.51.100.2');
    const after = totals(w, '198.51.100.2', 43001, CONNECTED_PORT);
    expect(after).toMatchObject({ pktsIn: 8, bytesIn: 560, pktsOut: 8, bytesOut: 560 });
    expect(after.lastSeen - before.lastSeen).toBeGreaterThanOrEqual(1000);
  });

  it('loses and doubles nothing across drains: a steady stream over several drains adds up exactly', async () => {
    const w = watched.bare;
    const c2 = lab.namespaces[3]!;
    // About 3 s of traffic: six drains of 500 ms, each flip and print racing live packets.
    const stream: Spec = {
      host: '198.51.100.1',
      port: ECHO_PORT,
      sport: 44001,
      count: 2500,
      size: 20,
      echo: false,
      gapMs: 1,
    };
    // Poll while the stream runs, so its drains arrive as separate observations.
    let sent = false;
    const sending = send(c2, [stream]).finally(() => {
      sent = true;
    });
    while (!sent) {
      await new Promise((r) => setTimeout(r, DRAIN_MS / 2));
      await pollOnce(w);
    }
    await sending;
    await settle(w, [stream], () => '198.51.100.2');
    const t = totals(w, '198.51.100.2', 44001, ECHO_PORT);
    const batches = w.seen.filter((o) => o.remotePort === 44001 && o.pktsIn > 0).length;
    console.log(
      `steady stream: ${t.pktsIn} of ${stream.count} packets counted in ${batches} drains`,
    );
    expect(batches).toBeGreaterThanOrEqual(3);
    expect({ pktsIn: t.pktsIn, bytesIn: t.bytesIn }).toEqual({ pktsIn: 2500, bytesIn: 2500 * 20 });
    expect(w.source.status().lostEvents).toBe(0);
  });

  // Last: stopping the agent stops this namespace's bpftrace.
  it('an agent with the eBPF source lists it while attached and ships its flows as source ebpf', async () => {
    const w = watched.bare;
    const dir = mkdtempSync(join(tmpdir(), 'uw-ebpf-agent-'));
    try {
      const shipper = new RecordingShipper();
      const agent = createAgent(
        AgentConfigSchema.parse({
          host: 'ebpf-host',
          sealIntervalSeconds: 0.5,
          services: [{ name: 'echo', port: ECHO_PORT }],
        }),
        {
          agentId: 'ebpf-agent',
          proc: w.proc,
          ebpf: w.source,
          shipper,
          seq: new SeqAllocator(dir),
          clock: Date.now,
          log: () => {},
        },
      );
      expect(agent.sources()).toEqual(['ebpf', 'proc']);
      const spec: Spec = {
        host: '198.51.100.1',
        port: ECHO_PORT,
        sport: 45001,
        count: 9,
        size: 77,
      };
      expect(await send(lab.namespaces[3]!, [spec])).toEqual([9]);
      const deadline = Date.now() + 15_000;
      const flow = () => agent.flowTable.list().find((f) => f.remotePort === 45001);
      while ((flow()?.pktsIn ?? 0) < 9 && Date.now() < deadline) {
        await agent.tick();
        await new Promise((r) => setTimeout(r, DRAIN_MS / 2));
      }
      await agent.stop();
      expect(agent.sources()).toEqual(['proc']);
      expect(flow()).toMatchObject({
        service: 'echo',
        source: 'ebpf',
        pktsIn: 9,
        bytesIn: 9 * 77,
        pktsOut: 9,
        bytesOut: 9 * 77,
      });
      const shipped = shipper.records
        .map((r) => decodePayload(r.data).block)
        .flatMap((b) => b?.endpoints ?? [])
        .filter((e) => e.port === 45001);
      expect(shipped.every((e) => e.source === 'ebpf')).toBe(true);
      expect(shipped.reduce((n, e) => n + e.pktsIn, 0)).toBe(9);
      expect(shipped.reduce((n, e) => n + e.bytesOut, 0)).toBe(9 * 77);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
