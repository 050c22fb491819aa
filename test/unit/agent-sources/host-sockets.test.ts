/**
 * The owner walk and the host scan over a procRoot directory laid out like
 * /proc (real symlinks reading back `socket:[N]`), for what the live /proc will
 * not do on demand: processes without an fd directory, shared sockets, a
 * process that changes hands between scans. The live comparison with `ss` is
 * in test/e2e/agent-sources.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { scanHostSockets } from '../../../agent/host-sockets.js';
import { findSocketOwners, type SocketOwner } from '../../../agent/proc-sockets-owners.js';
import { type KernelSocket, kernelUdpLine, UDP_HEADER, UDP6_HEADER } from './kernel-text.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'uws-proc-'));
  mkdirSync(join(root, 'net'));
  writeFileSync(join(root, 'net', 'snmp'), 'Udp: InDatagrams RcvbufErrors\nUdp: 10 2\n');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function proc(pid: number, comm: string | null, args: string[], fds: Record<number, string>) {
  mkdirSync(join(root, String(pid), 'fd'), { recursive: true });
  if (comm !== null) writeFileSync(join(root, String(pid), 'comm'), `${comm}\n`);
  writeFileSync(join(root, String(pid), 'cmdline'), args.map((a) => `${a}\0`).join(''));
  for (const [fd, target] of Object.entries(fds))
    symlinkSync(target, join(root, String(pid), 'fd', fd));
}

function sock(inode: number, over: Partial<KernelSocket> = {}): KernelSocket {
  return {
    slot: 0,
    localIp: '127.0.0.1',
    localPort: 5000,
    remoteIp: '0.0.0.0',
    remotePort: 0,
    state: 7,
    txQueue: 0,
    rxQueue: 0,
    uid: 0,
    inode,
    refs: 2,
    drops: 0,
    ...over,
  };
}

function udpTables(v4: KernelSocket[], v6: KernelSocket[] = []) {
  writeFileSync(join(root, 'net', 'udp'), [UDP_HEADER, ...v4.map(kernelUdpLine), ''].join('\n'));
  writeFileSync(join(root, 'net', 'udp6'), [UDP6_HEADER, ...v6.map(kernelUdpLine), ''].join('\n'));
}

describe('findSocketOwners', () => {
  it('maps wanted inodes to every holder, skipping what vanished', async () => {
    proc(100, 'dnsd', ['/usr/sbin/dnsd', '-c', '/etc/dnsd.conf'], {
      3: 'socket:[555]',
      4: '/dev/null',
      5: 'socket:[777]',
    });
    proc(300, null, [], { 7: 'socket:[555]' }); // a forked child sharing the socket, already exiting
    mkdirSync(join(root, '200')); // a process whose fd directory is gone
    mkdirSync(join(root, 'self')); // not a pid
    const scan = await findSocketOwners(new Set([555]), { procRoot: root });
    const owners = scan.owners.get(555)!.sort((a, b) => a.pid - b.pid);
    expect(owners).toEqual([
      { pid: 100, fd: 3, comm: 'dnsd', cmdline: '/usr/sbin/dnsd -c /etc/dnsd.conf', name: 'dnsd' },
      { pid: 300, fd: 7, comm: '', cmdline: '', name: 'unknown' },
    ]);
    expect(scan.owners.has(777)).toBe(false); // not wanted
    expect(scan.skipped).toBe(1);
    expect(scan.pidsScanned).toBe(3);
    expect((await findSocketOwners(null, { procRoot: root })).owners.get(777)).toHaveLength(1);
  });

  it('returns nothing, without walking, when nothing is wanted or procRoot is unreadable', async () => {
    expect((await findSocketOwners(new Set(), { procRoot: root })).pidsScanned).toBe(0);
    const missing = await findSocketOwners(null, { procRoot: join(root, 'nope') });
    expect(missing).toEqual({ owners: new Map(), pidsScanned: 0, skipped: 1 });
  });
});

describe('scanHostSockets', () => {
  it('joins sockets with owners, peers for connected ones, listeners for bound unconnected ones', async () => {
    udpTables(
      [
        sock(11, { localPort: 53, drops: 4, rxQueue: 768 }),
        sock(12, { localPort: 40000, remoteIp: '192.0.2.8', remotePort: 53, state: 1 }),
        sock(13, { localPort: 0 }), // unbound: not a listener
      ],
      [sock(14, { localIp: '::', localPort: 123, remoteIp: '::' })],
    );
    proc(100, 'dnsd', ['dnsd'], { 3: 'socket:[11]', 4: 'socket:[12]' });
    proc(101, 'ntpd', ['ntpd', '-g'], { 9: 'socket:[14]' });
    const scan = await scanHostSockets({ procRoot: root });
    expect(scan.errors).toEqual([]);
    expect(scan.snmp.udp).toEqual({ inDatagrams: 10, rcvbufErrors: 2 });
    expect(scan.sockets.map((s) => [s.inode, s.owner?.comm, s.peer])).toEqual([
      [11, 'dnsd', undefined],
      [12, 'dnsd', { ip: '192.0.2.8', port: 53 }],
      [13, undefined, undefined],
      [14, 'ntpd', undefined],
    ]);
    expect(scan.listeners).toEqual([
      {
        localIp: '127.0.0.1',
        localPort: 53,
        family: 4,
        inode: 11,
        drops: 4,
        rxQueueBytes: 768,
        pid: 100,
        pids: [100],
        process: 'dnsd',
        cmdline: 'dnsd',
        name: 'dnsd',
      },
      {
        localIp: '::',
        localPort: 123,
        family: 6,
        inode: 14,
        drops: 0,
        rxQueueBytes: 0,
        pid: 101,
        pids: [101],
        process: 'ntpd',
        cmdline: 'ntpd -g',
        name: 'ntpd',
      },
    ]);
  });

  it('with an owner cache, looks up only new sockets and forgets closed ones', async () => {
    udpTables([sock(11), sock(12, { localPort: 5001 })]);
    proc(100, 'dnsd', ['dnsd'], { 3: 'socket:[11]' });
    const cache = new Map<number, SocketOwner[]>();
    await scanHostSockets({ procRoot: root, ownerCache: cache });
    expect([...cache.keys()].sort()).toEqual([11, 12]);
    expect(cache.get(12)).toEqual([]); // looked up, nobody holds it

    // 11 moves to another process (the cache keeps the old owner), 12 closes, 13 appears.
    rmSync(join(root, '100'), { recursive: true });
    proc(200, 'newd', ['newd'], { 5: 'socket:[11]', 6: 'socket:[13]' });
    udpTables([sock(11), sock(13, { localPort: 5002 })]);
    const scan = await scanHostSockets({ procRoot: root, ownerCache: cache });
    expect([...cache.keys()].sort()).toEqual([11, 13]);
    expect(scan.sockets.map((s) => [s.inode, s.owner?.comm])).toEqual([
      [11, 'dnsd'],
      [13, 'newd'],
    ]);
  });

  it('reports malformed lines and still returns the good sockets', async () => {
    writeFileSync(
      join(root, 'net', 'udp'),
      `${UDP_HEADER}\n${kernelUdpLine(sock(11))}\n  1: garbage\n${kernelUdpLine(sock(12))}\n`,
    );
    const scan = await scanHostSockets({ procRoot: root, withOwners: false });
    expect(scan.sockets.map((s) => s.inode)).toEqual([11, 12]);
    // A missing udp6/snmp6 means IPv6 is off: not an error.
    expect(scan.errors).toEqual([
      { path: `${root}/net/udp`, line: 3, reason: 'expected 13 fields, got 2' },
    ]);
  });
});
