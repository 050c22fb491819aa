/**
 * The /proc reader against `ss -uanp` on the same real sockets: a few hundred
 * UDP sockets (IPv4, IPv6, IPv4-mapped; loopback and wildcard; connected and
 * not) in this process and in a child, then a receive-buffer overflow in a
 * child that never reads.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanHostSockets } from '../../../agent/host-sockets.js';
import { createProcSource } from '../../../agent/proc-source.js';
import { readSs, type SsRow } from './ss-output.js';

const PER_KIND = 30;
const CHILD_ROUNDS = 15;

const sockets: dgram.Socket[] = [];
const children: ChildProcess[] = [];

function bound(type: 'udp4' | 'udp6', address: string): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(type);
    s.once('error', reject);
    s.bind(0, address, () => resolve(s));
    sockets.push(s);
  });
}

async function connected(
  type: 'udp4' | 'udp6',
  bindAddress: string,
  port: number,
  address: string,
): Promise<dgram.Socket> {
  const s = await bound(type, bindAddress);
  await new Promise<void>((resolve, reject) => {
    s.connect(port, address, (err?: Error) => (err ? reject(err) : resolve()));
  });
  return s;
}

/** Spawns node running `code` (ESM) with a distinct process name; resolves on its first stdout line. */
async function nodeChild(
  code: string,
  args: string[],
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let buf = '';
  child.stdout!.setEncoding('utf8');
  for await (const chunk of child.stdout!) {
    buf += chunk;
    if (buf.includes('\n')) break;
  }
  return { child, line: buf.split('\n')[0]! };
}

const CHILD_CODE = `
import dgram from 'node:dgram';
process.title = 'uwschild';
const [v4Port, v6Port, rounds] = process.argv.slice(1).map(Number);
const bound = (type, addr) => new Promise((r) => { const s = dgram.createSocket(type); s.bind(0, addr, () => r(s)); });
for (let i = 0; i < rounds; i++) {
  await bound('udp4', '127.0.0.1');
  await bound('udp6', '::');
  const c4 = await bound('udp4', '0.0.0.0');
  await new Promise((r) => c4.connect(v4Port, '127.0.0.1', r));
  const c6 = await bound('udp6', '::1');
  await new Promise((r) => c6.connect(v6Port, '::1', r));
}
process.stdout.write('ready\\n');
setInterval(() => {}, 1000);
`;

// Binds, shrinks its receive buffer, then blocks its event loop so nothing is ever read.
const SINK_CODE = `
import dgram from 'node:dgram';
process.title = 'uwssink';
const s = dgram.createSocket('udp4');
s.bind(0, '127.0.0.1', () => {
  s.setRecvBufferSize(2048);
  process.stdout.write(s.address().port + '\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
  process.exit(0);
});
`;

/** A row as a comparable string: state, queues, endpoints, owners. */
function ssKey(r: SsRow): string {
  const users = r.users.map((u) => `${u.comm}/${u.pid}/${u.fd}`).sort();
  return `${r.state} ${r.recvQ} ${r.sendQ} ${r.localIp}|${r.localPort} ${r.peerIp}|${r.peerPort} ${users.join(',')}`;
}

let childPid = 0;

beforeAll(async () => {
  const v4 = await bound('udp4', '127.0.0.1');
  const v6 = await bound('udp6', '::1');
  const v4Port = v4.address().port;
  const v6Port = v6.address().port;
  for (let i = 0; i < PER_KIND; i++) {
    await bound('udp4', '127.0.0.1');
    await bound('udp4', '0.0.0.0');
    await bound('udp6', '::1');
    await bound('udp6', '::');
    await connected('udp4', '127.0.0.1', v4Port, '127.0.0.1');
    await connected('udp6', '::1', v6Port, '::1');
    // A dual-stack socket talking IPv4: /proc/net/udp6 lists it as ::ffff:127.0.0.1.
    await connected('udp6', '::', v4Port, '::ffff:127.0.0.1');
  }
  const { child, line } = await nodeChild(CHILD_CODE, [
    String(v4Port),
    String(v6Port),
    String(CHILD_ROUNDS),
  ]);
  expect(line).toBe('ready');
  childPid = child.pid!;
});

afterAll(() => {
  for (const s of sockets) s.close();
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('host socket scan agrees with ss -uanp', () => {
  it('lists the same sockets, states, queues, endpoints and owners', async () => {
    const ours = new Set([process.pid, childPid]);
    const scan = await scanHostSockets();
    const ss = readSs();
    expect(scan.errors).toEqual([]);

    const fromSs = ss
      .filter((r) => r.users.some((u) => ours.has(u.pid)))
      .map(ssKey)
      .sort();
    const fromScan = scan.sockets
      .filter((s) => s.owners.some((o) => ours.has(o.pid)))
      .map((s) =>
        ssKey({
          state: s.connected ? 'ESTAB' : 'UNCONN',
          recvQ: s.rxQueue,
          sendQ: s.txQueue,
          localIp: s.localIp,
          localPort: s.localPort,
          peerIp: s.remoteIp,
          peerPort: s.remotePort,
          users: s.owners.map((o) => ({ comm: o.comm, pid: o.pid, fd: o.fd })),
        }),
      )
      .sort();
    // 2 targets + 7 per round here, 4 per round in the child.
    expect(fromSs).toHaveLength(2 + 7 * PER_KIND + 4 * CHILD_ROUNDS);
    expect(fromScan).toEqual(fromSs);
    // Both processes are there under their own names.
    expect(fromScan.filter((k) => k.includes(`uwschild/${childPid}/`))).toHaveLength(
      4 * CHILD_ROUNDS,
    );
    // The mapped sockets folded to IPv4, and the wildcard forms were read.
    expect(fromScan.some((k) => k.startsWith('ESTAB 0 0 127.0.0.1|'))).toBe(true);
    expect(fromScan.some((k) => k.includes(' ::|'))).toBe(true);
    expect(fromScan.some((k) => k.includes(' 0.0.0.0|'))).toBe(true);
  });

  it('turns connected sockets into peers and unconnected ones into listeners', async () => {
    const source = createProcSource();
    const peers = await source.poll();
    const scan = source.lastScan()!;
    const mine = scan.sockets.filter((s) => s.owner?.pid === childPid);
    // By address and port: an IPv4 and an IPv6 socket may get the same ephemeral port.
    const connectedEnds = new Set(
      mine.filter((s) => s.connected).map((s) => `${s.localIp}|${s.localPort}`),
    );
    const peerEnds = peers
      .filter((p) => p.pid === childPid)
      .map((p) => `${p.localIp}|${p.localPort}`);
    expect(new Set(peerEnds)).toEqual(connectedEnds);
    expect(peerEnds).toHaveLength(2 * CHILD_ROUNDS);
    expect(connectedEnds.size).toBe(2 * CHILD_ROUNDS);
    for (const p of peers.filter((p) => p.pid === childPid)) {
      expect(p.process).toBe('uwschild');
      expect(p.source).toBe('proc');
      expect(p.pktsIn + p.pktsOut + p.bytesIn + p.bytesOut).toBe(0);
    }
    const listeners = source.listeners().filter((l) => l.pid === childPid);
    expect(listeners).toHaveLength(2 * CHILD_ROUNDS);
    expect(new Set(listeners.map((l) => l.localIp))).toEqual(new Set(['127.0.0.1', '::']));
    // A second poll answers from the owner cache and still knows every owner.
    await source.poll();
    expect(source.listeners().filter((l) => l.pid === childPid)).toHaveLength(2 * CHILD_ROUNDS);
  });

  it('sees receive-queue depth and drops of a socket nobody reads, as ss does', async () => {
    const before = await scanHostSockets({ withOwners: false });
    const { child, line } = await nodeChild(SINK_CODE, []);
    const port = Number(line);
    expect(port).toBeGreaterThan(0);
    const sender = await bound('udp4', '127.0.0.1');
    const payload = Buffer.alloc(1000, 7);
    for (let i = 0; i < 200; i++) {
      await new Promise<void>((resolve, reject) =>
        sender.send(payload, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
      );
    }
    const scan = await scanHostSockets();
    const ss = readSs(true);
    const sink = scan.sockets.find((s) => s.localPort === port && s.family === 4)!;
    expect(sink.owner).toMatchObject({ pid: child.pid, comm: 'uwssink' });
    expect(sink.drops).toBeGreaterThan(0);
    expect(sink.rxQueue).toBeGreaterThan(0);
    const row = ss.find((r) => r.localPort === port && r.localIp === '127.0.0.1')!;
    expect(row.recvQ).toBe(sink.rxQueue);
    expect(row.drops).toBe(sink.drops);
    const listener = scan.listeners.find((l) => l.inode === sink.inode)!;
    expect(listener).toMatchObject({
      drops: sink.drops,
      rxQueueBytes: sink.rxQueue,
      pid: child.pid,
    });
    // The namespace-wide counter moved at least by this socket's drops.
    const rcvbuf = (s: typeof scan) => s.snmp.udp?.rcvbufErrors ?? Number.NaN;
    expect(rcvbuf(scan) - rcvbuf(before)).toBeGreaterThanOrEqual(sink.drops);
    child.kill('SIGKILL');
    await once(child, 'exit');
  });
});
