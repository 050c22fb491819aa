/**
 * Conntrack and a server that connect()s a socket per client (as QUIC and
 * iperf3 servers do), in network namespaces built here:
 *
 *   cli 192.0.2.2 ---- 192.0.2.1 srv: listener 0.0.0.0:6000 that answers each
 *                                     client from its own socket bound to
 *                                     192.0.2.1:6000 and connected to it
 *
 * Each client must be a client of that socket's service, with exact counts,
 * keyed by the connected socket's address, and its last-seen must move while
 * its traffic flows.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConntrackSource } from '../../../agent/conntrack-source.js';
import type { PeerObservation } from '../../../agent/observation.js';
import { createProcSource } from '../../../agent/proc-source.js';
import { canUseNamespaces, NamespaceLab, nsExec, nsSpawn } from '../../support/netns.js';

const PORT = 6000;
const SERVER = '192.0.2.1';
const FIXTURES = join(import.meta.dirname, 'fixtures');

const skip = !(await canUseNamespaces());
if (skip) console.warn('SKIPPING conntrack connected-socket e2e: cannot create network namespaces');

const lab = new NamespaceLab('uwcc');
let srv = '';
let cli = '';
let server: ChildProcess | undefined;
let poll: () => Promise<PeerObservation[]> = async () => [];

async function send(specs: Array<{ sport: number; count: number; size: number }>) {
  const full = specs.map((s) => ({ host: SERVER, port: PORT, ...s }));
  const out = await nsExec(cli, 'python3', join(FIXTURES, 'udp-client.py'), JSON.stringify(full));
  expect(JSON.parse(out)).toEqual(specs.map((s) => s.count));
}

describe.skipIf(skip)('conntrack source, a server with a connected socket per client', () => {
  beforeAll(async () => {
    srv = await lab.add('srv');
    cli = await lab.add('cli');
    await lab.link(srv, `${SERVER}/24`, cli, '192.0.2.2/24');
    await nsExec(srv, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_acct=1');
    await nsExec(
      srv,
      'nft',
      [
        'add table inet uwcc',
        'add chain inet uwcc in { type filter hook input priority 0 ; }',
        'add rule inet uwcc in ct state new,established counter',
      ].join(' ; '),
    );
    server = lab.track(
      nsSpawn(srv, 'python3', [join(FIXTURES, 'udp-echo.py'), 'connected', String(PORT), SERVER]),
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connected server: no ready')), 10_000);
      createInterface({ input: server!.stdout! }).on('line', (line) => {
        if (line.trim() === 'ready') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const proc = createProcSource({ netDir: `/proc/${server.pid}/net` });
    const conntrack = createConntrackSource({
      procRoot: `/proc/${server.pid}`,
      listeners: () => proc.listeners(),
      connected: () => proc.connected(),
      localAddresses: () => [SERVER],
    });
    poll = async () => {
      await proc.poll();
      return conntrack.poll();
    };
  });

  afterAll(() => lab.cleanup());

  it('counts each client exactly, as a client of its connected socket, with last-seen moving', async () => {
    await send([
      { sport: 43001, count: 5, size: 70 },
      { sport: 43002, count: 2, size: 500 },
    ]);
    const first = await poll();
    const mine = (o: PeerObservation[], port: number) => o.filter((x) => x.remotePort === port);
    expect(mine(first, 43001)).toEqual([
      {
        source: 'conntrack',
        // The connected socket's own address, as eBPF keys it: not the wildcard listener's.
        localIp: SERVER,
        localPort: PORT,
        remoteIp: '192.0.2.2',
        remotePort: 43001,
        pktsIn: 5,
        bytesIn: 5 * 70,
        pktsOut: 5,
        bytesOut: 5 * 70,
        firstSeen: first[0]!.firstSeen,
        lastSeen: first[0]!.lastSeen,
        pid: server!.pid,
        process: 'python3',
      },
    ]);
    expect(mine(first, 43002)).toMatchObject([
      { localIp: SERVER, pktsIn: 2, bytesIn: 1000, pktsOut: 2, bytesOut: 1000 },
    ]);
    const before = mine(first, 43001)[0]!;

    await new Promise((r) => setTimeout(r, 1200));
    await send([{ sport: 43001, count: 3, size: 70 }]);
    const second = await poll();
    // Only the client that talked moved, by exactly what it sent.
    expect(mine(second, 43002)).toEqual([]);
    const after = mine(second, 43001);
    expect(after).toMatchObject([
      { localIp: SERVER, pktsIn: 3, bytesIn: 210, pktsOut: 3, bytesOut: 210 },
    ]);
    expect(after[0]!.lastSeen - before.lastSeen).toBeGreaterThanOrEqual(1000);
    expect(after[0]!.firstSeen).toBe(before.firstSeen);
  });
});
