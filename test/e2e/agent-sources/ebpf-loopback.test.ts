/**
 * Loopback through the eBPF source (real bpftrace, python sockets, a
 * namespace built here): a datagram between two sockets of the namespace
 * passes both net_dev_queue and netif_receive_skb on lo, and must be counted
 * once in the kernel, then credited to both ends: the sender's packet out and
 * the receiver's packet in, exactly, over several drains of the per-CPU sums.
 *
 *   talker 127.0.0.1:41001, [::1]:41001  <-- lo -->  echo server 0.0.0.0:5000, [::]:5000
 *
 * The kernel map holds MAX_FLOWS tuples a drain: the conversation's four
 * tuples (two each way, v4 and v6) fit only when each datagram is one tuple.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEbpfSource, type EbpfSource } from '../../../agent/ebpf-source.js';
import type { PeerObservation } from '../../../agent/observation.js';
import { createProcSource } from '../../../agent/proc-source.js';
import { ebpfLabSkipReason } from '../../support/ebpf-lab.js';
import { NamespaceLab, nsExec, nsSpawn } from '../../support/netns.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const SERVER_PORT = 5000;
const TALKER_PORT = 41001;
const MAX_FLOWS = 4;
const DRAIN_MS = 400;
const COUNT = 240;
const SIZE = 37;

const skipReason = await ebpfLabSkipReason();
if (skipReason) console.warn(`SKIPPING eBPF loopback e2e: ${skipReason}`);

/** Holds one bound socket per family; on `go N SIZE GAP_MS` sends N to the server on each and waits for every echo. */
const TALKER = `import socket, sys, time
socks = []
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, ${TALKER_PORT}))
    s.settimeout(3)
    socks.append((s, host))
print("ready", flush=True)
for line in sys.stdin:
    _, n, size, gap = line.split()
    echoes = 0
    for i in range(int(n)):
        for s, host in socks:
            s.sendto(b"x" * int(size), (host, ${SERVER_PORT}))
            if len(s.recv(65535)) == int(size):
                echoes += 1
        time.sleep(int(gap) / 1000)
    print("done", echoes, flush=True)
`;

const lab = new NamespaceLab('uwlo');
let source: EbpfSource;
let proc: ReturnType<typeof createProcSource>;
let talker: ChildProcess;
let talkerLines: Interface;
const seen: PeerObservation[] = [];

function ready(child: ChildProcess, what: string): Promise<Interface> {
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no ready`)), 10_000);
    lines.on('line', (line) => {
      if (line.trim() === 'ready') {
        clearTimeout(timer);
        resolve(lines);
      }
    });
    child.once('exit', (code) => reject(new Error(`${what} exited ${code}`)));
  });
}

async function pollOnce(): Promise<void> {
  await proc.poll();
  seen.push(...source.poll());
}

/** What the source reported for one flow (local port, remote ip:port). */
function flow(localPort: number, remoteIp: string, remotePort: number) {
  const t = { pktsIn: 0, bytesIn: 0, pktsOut: 0, bytesOut: 0 };
  for (const o of seen) {
    if (o.localPort !== localPort || o.remoteIp !== remoteIp || o.remotePort !== remotePort)
      continue;
    t.pktsIn += o.pktsIn;
    t.bytesIn += o.bytesIn;
    t.pktsOut += o.pktsOut;
    t.bytesOut += o.bytesOut;
  }
  return t;
}

describe.skipIf(skipReason !== null)('eBPF source on loopback', () => {
  beforeAll(async () => {
    const ns = await lab.add('lo');
    const server = lab.track(
      nsSpawn(ns, 'python3', [join(FIXTURES, 'udp-echo.py'), 'echo', String(SERVER_PORT)]),
    );
    await ready(server, 'echo server');
    // stdin open: the test tells the talker when to start.
    talker = lab.track(
      spawn('ip', ['netns', 'exec', ns, 'python3', '-c', TALKER], {
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
    talkerLines = await ready(talker, 'talker');
    proc = createProcSource({ netDir: `/proc/${server.pid}/net` });
    await proc.poll();
    const inode = Number(/\[(\d+)\]/.exec(await nsExec(ns, 'readlink', '/proc/self/ns/net'))![1]);
    source = createEbpfSource({
      netnsInode: inode,
      sockets: () => ({ listeners: proc.listeners(), connected: [] }),
      localAddresses: () => ['127.0.0.1', '::1'],
      drainIntervalMs: DRAIN_MS,
      maxFlows: MAX_FLOWS,
    });
    expect(await source.start()).toMatchObject({ live: true });
  });

  afterAll(async () => {
    await source?.stop();
    await lab.cleanup();
  });

  it('counts each loopback datagram once in the kernel and credits it to the sender out and the receiver in, exactly', async () => {
    const done = new Promise<number>((resolve) => {
      talkerLines.on('line', (line) => {
        const [word, n] = line.trim().split(' ');
        if (word === 'done') resolve(Number(n));
      });
    });
    // About 2.4 s of traffic: several drains, each buffer used more than once.
    talker.stdin!.write(`go ${COUNT} ${SIZE} 10\n`);
    const timer = setInterval(() => void pollOnce(), DRAIN_MS / 2);
    let echoes: number;
    try {
      echoes = await done;
      // Two drains more, so a late or doubled count would show.
      await new Promise((r) => setTimeout(r, DRAIN_MS * 3));
    } finally {
      clearInterval(timer);
    }
    await pollOnce();
    expect(echoes).toBe(2 * COUNT);
    const exact = { pktsIn: COUNT, bytesIn: COUNT * SIZE, pktsOut: COUNT, bytesOut: COUNT * SIZE };
    // The server's flows (keyed by its wildcard binds) and the talker's own.
    expect(flow(SERVER_PORT, '127.0.0.1', TALKER_PORT)).toEqual(exact);
    expect(flow(SERVER_PORT, '::1', TALKER_PORT)).toEqual(exact);
    expect(flow(TALKER_PORT, '127.0.0.1', SERVER_PORT)).toEqual(exact);
    expect(flow(TALKER_PORT, '::1', SERVER_PORT)).toEqual(exact);
    // Four tuples a drain fit the bound only if no datagram was counted at both tracepoints.
    expect(source.status()).toMatchObject({
      refusedPackets: 0,
      unownedPackets: 0,
      lostEvents: 0,
      badEntries: 0,
    });
  });
});
