/**
 * The eBPF source's kernel map is bounded: a flood of distinct client ports
 * bigger than `maxFlows` must not grow it, and every packet it could not
 * count is counted as refused, so counted + refused equals what crossed the
 * wire (real bpftrace, a python echo server, namespaces built here):
 *
 *   cl 203.0.113.2 ---- 203.0.113.1 sv (a sink on 5000 that never answers, no nftables rules)
 *
 * The sink never answers, so what crossed the wire is exactly what was sent
 * (ingress is counted before the socket's queue, whatever it drops).
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEbpfSource, type EbpfSource } from '../../../agent/ebpf-source.js';
import type { PeerObservation } from '../../../agent/observation.js';
import { createProcSource } from '../../../agent/proc-source.js';
import { ebpfLabSkipReason } from '../../support/ebpf-lab.js';
import { NamespaceLab, nsExec, nsSpawn } from '../../support/netns.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const PORT = 5000;
const MAX_FLOWS = 32;
const CLIENT_PORTS = 400;
const DRAIN_MS = 400;

const skipReason = await ebpfLabSkipReason();
if (skipReason) console.warn(`SKIPPING eBPF overflow e2e: ${skipReason}`);

const lab = new NamespaceLab('uwov');
let source: EbpfSource;
let proc: ReturnType<typeof createProcSource>;
let client: string;

const SINK = `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", ${PORT}))
print("ready", flush=True)
while True:
    s.recv(2048)
`;

function startServer(ns: string): Promise<ChildProcess> {
  const child = lab.track(nsSpawn(ns, 'python3', ['-c', SINK]));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sink in ${ns}: no ready`)), 10_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.trim() === 'ready') {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`sink in ${ns} exited ${code}`)));
  });
}

describe.skipIf(skipReason !== null)('eBPF source under a flood of client ports', () => {
  beforeAll(async () => {
    const server = await lab.add('sv');
    client = await lab.add('cl');
    await lab.link(server, '203.0.113.1/24', client, '203.0.113.2/24');
    const sink = await startServer(server);
    proc = createProcSource({ netDir: `/proc/${sink.pid}/net` });
    await proc.poll();
    const inode = Number(
      /\[(\d+)\]/.exec(await nsExec(server, 'readlink', '/proc/self/ns/net'))![1],
    );
    source = createEbpfSource({
      netnsInode: inode,
      sockets: () => ({ listeners: proc.listeners(), connected: [] }),
      localAddresses: () => ['203.0.113.1'],
      drainIntervalMs: DRAIN_MS,
      maxFlows: MAX_FLOWS,
    });
    expect(await source.start()).toMatchObject({ live: true });
  });

  afterAll(async () => {
    await source?.stop();
    await lab.cleanup();
  });

  it('keeps its map bounded and counts every packet it could not count', async () => {
    // One datagram from each of CLIENT_PORTS ports, sent at once: far more flows than the map holds.
    const specs = Array.from({ length: CLIENT_PORTS }, (_, i) => ({
      host: '203.0.113.1',
      port: PORT,
      sport: 30_000 + i,
      count: 1,
      size: 10,
      echo: false,
    }));
    await nsExec(client, 'python3', join(FIXTURES, 'udp-client.py'), JSON.stringify(specs));
    const seen: PeerObservation[] = [];
    // Each datagram in, nothing out: counted into a flow, or refused.
    const wire = CLIENT_PORTS;
    const accounted = () =>
      seen.reduce((n, o) => n + o.pktsIn + o.pktsOut, 0) + source.status().refusedPackets;
    const deadline = Date.now() + 15_000;
    while (accounted() < wire && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, DRAIN_MS / 2));
      seen.push(...source.poll());
    }
    // Two drains more: a packet counted twice would show.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, DRAIN_MS));
      seen.push(...source.poll());
    }
    const status = source.status();
    const flows = new Set(seen.map((o) => `${o.remoteIp}:${o.remotePort}`));
    console.log(
      `flood: ${flows.size} flows counted, ${status.refusedPackets} packets refused, of ${wire} on the wire`,
    );
    expect(status.refusedPackets).toBeGreaterThan(0);
    expect(accounted()).toBe(wire);
    // Each drain interval's buffer holds at most MAX_FLOWS entries: far fewer flows than sent.
    expect(flows.size).toBeLessThan(CLIENT_PORTS);
    expect(flows.size).toBeGreaterThan(0);
    expect(status.lostEvents).toBe(0);
    expect(seen.every((o) => o.remoteIp === '203.0.113.2' && o.localPort === PORT)).toBe(true);
  });
});
