/**
 * Outbound client sockets are not services, with real sockets in a network
 * namespace built here: a python echo server on udp 53 (a resolver's
 * upstream, say) and, on the same host, a client with two sockets on
 * ephemeral ports the kernel picked, one connect()ed to the server and one
 * using sendto(). The real agent (proc and conntrack, accounting on, an nft
 * rule using ct state) ships to Kinesis. The server's service lists both
 * client sockets with exact counts; the client's sockets are no service, so
 * the server never shows up as anybody's client.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEphemeralPorts } from '../../../agent/outbound-flows.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { canUseNamespaces, NamespaceLab, nsExec, nsSpawn } from '../../support/netns.js';
import { assertResendsIdentical, endpointsOf, readStream } from '../agent/stream-reader.js';
import { type AgentProcess, startAgent } from '../pipeline/fleet-harness.js';

const PORT = 53;
const COUNT = 12;
const SIZE = 60;
const BRIDGE_PORT = 14620;
const FIXTURES = join(import.meta.dirname, 'fixtures');

const skip = !(await canUseNamespaces());
if (skip) console.warn('SKIPPING outbound-client e2e: cannot create network namespaces');

const lab = new NamespaceLab('uwob');
let dir = '';
let ns = '';
let emulators: Emulators;
let agent: AgentProcess | undefined;

/** Waits for a child's first stdout line matching `test`, parsed as JSON. */
function lineOf<T>(
  child: ReturnType<typeof nsSpawn>,
  test: (line: string) => boolean,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no line`)), 30_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!test(line)) return;
      clearTimeout(timer);
      resolve((line.startsWith('{') ? JSON.parse(line) : line) as T);
    });
  });
}

describe.skipIf(skip)(
  'a client socket on an ephemeral port talking to a server on a low port',
  () => {
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'uwob-'));
      emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
      ns = await lab.add('host');
      await lab.bridgeLoopback(ns, BRIDGE_PORT, Number(new URL(emulators.kinesisEndpoint).port));
      await nsExec(ns, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_acct=1');
      await nsExec(
        ns,
        'nft',
        [
          'add table inet uwob',
          'add chain inet uwob in { type filter hook input priority 0 ; }',
          'add rule inet uwob in ct state new,established counter',
        ].join(' ; '),
      );
      const server = lab.track(
        nsSpawn(ns, 'python3', [join(FIXTURES, 'udp-echo.py'), 'echo', String(PORT)]),
      );
      await lineOf(server, (l) => l.trim() === 'ready', 'echo server');
      agent = await startAgent({
        ns,
        stream: emulators.streamName,
        endpoint: `http://127.0.0.1:${BRIDGE_PORT}`,
        stateDir: join(dir, 'state'),
        hookSocket: join(dir, 'hook.sock'),
        configPath: join(dir, 'agent.json'),
        settings: {
          host: 'uwob-host',
          services: [{ name: 'upstream-dns', port: PORT }],
          sources: { hook: false, ebpf: false, conntrack: true, proc: true },
        },
      });
    });

    afterAll(async () => {
      await agent?.stop('SIGKILL');
      await lab.cleanup();
      await emulators?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('lists both client sockets as clients of the server, and neither as a service', async () => {
      const client = lab.track(
        nsSpawn(ns, 'python3', [
          join(FIXTURES, 'udp-outbound-client.py'),
          '127.0.0.1',
          String(PORT),
          String(COUNT),
          String(SIZE),
          '100',
          '2500',
        ]),
      );
      const ports = await lineOf<{ connected: number; unconnected: number }>(
        client,
        (l) => l.includes('"connected"'),
        'client ports',
      );
      // The kernel picked both from the namespace's ephemeral range.
      const { range } = readEphemeralPorts();
      for (const p of [ports.connected, ports.unconnected]) {
        expect(p).toBeGreaterThanOrEqual(range.low);
        expect(p).toBeLessThanOrEqual(range.high);
      }
      const done = await lineOf<{ echoes: number[] }>(
        client,
        (l) => l.includes('"echoes"'),
        'client end',
      );
      expect(done.echoes).toEqual([COUNT, COUNT]);

      const read = async () =>
        endpointsOf(
          assertResendsIdentical(await readStream(emulators.kinesis, emulators.streamName)),
        );
      const inOf = (es: Awaited<ReturnType<typeof read>>, port: number) =>
        es.filter((e) => e.service === 'upstream-dns' && e.port === port);
      let endpoints = await read();
      for (let i = 0; i < 100; i++) {
        const sum = (port: number) => inOf(endpoints, port).reduce((n, e) => n + e.pktsIn, 0);
        if (sum(ports.connected) >= COUNT && sum(ports.unconnected) >= COUNT) break;
        await new Promise((r) => setTimeout(r, 200));
        endpoints = await read();
      }
      // The server's clients, counted exactly (UDP payload bytes).
      for (const port of [ports.connected, ports.unconnected]) {
        const mine = inOf(endpoints, port);
        expect(mine.reduce((n, e) => n + e.pktsIn, 0)).toBe(COUNT);
        expect(mine.reduce((n, e) => n + e.bytesIn, 0)).toBe(COUNT * SIZE);
      }
      // No other service: not the client's connected socket, not its unconnected one.
      const records = assertResendsIdentical(
        await readStream(emulators.kinesis, emulators.streamName),
      );
      const services = new Set(records.flatMap((r) => (r.block ? [r.block.service] : [])));
      expect([...services]).toEqual(['upstream-dns']);
      // And the server is nobody's client.
      expect(endpoints.filter((e) => e.port === PORT)).toEqual([]);
    });
  },
);
