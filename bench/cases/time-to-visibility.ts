/**
 * Time to visibility, local mode: from a new client's first datagram to its
 * endpoint appearing in the HTTP API. A UDP echo daemon runs under the dgram
 * hook; the real agent (`udpwatch-agent run`) ships to kinesalite; the local
 * stack's event-source poller feeds the real aggregate handler; the API is
 * polled every 100 ms through the local HTTP adapter and the query handler.
 * Clients start one after another at uneven offsets, so their first packets
 * land at every phase of the hook's, the agent's and the poller's cycles.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalStack } from '../../local/local-stack.js';
import { loadFunctionHandlers } from '../../local/start.js';
import { type ReadyChild, spawnReady } from '../child-json.js';
import { type BenchCase, plain } from '../harness.js';
import { percentile } from '../percentile.js';
import { prepareHandlerEnvironment } from '../store-harness.js';

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
const DAEMON = here('../procs/echo-daemon.mjs');
const HOOK = here('../../agent/hook/register.mjs');
const AGENT_BIN = here('../../bin/udpwatch-agent.js');

/** Ends a child with SIGTERM (SIGKILL after 5 s) and waits for it. */
function stopChild(child: ChildProcess | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(
  what: string,
  timeoutMs: number,
  check: () => boolean | Promise<boolean>,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until)
      throw new Error(`time-to-visibility: ${what} not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export const timeToVisibility: BenchCase = {
  id: 'time-to-visibility',
  title: 'first datagram to visible in the API, local mode',
  async run({ quick, log }) {
    prepareHandlerEnvironment();
    const clientCount = quick ? 8 : 40;
    const dir = await mkdtemp(join(tmpdir(), 'uwb-ttv-'));
    const hookSocket = join(dir, 'hook.sock');
    const stack = await startLocalStack({
      loadHandlers: loadFunctionHandlers,
      summarizeIntervalMs: 3_600_000,
      sweepIntervalMs: 3_600_000,
    });
    const sockets: dgram.Socket[] = [];
    let daemon: ReadyChild<{ port: number }> | undefined;
    let agent: ChildProcess | undefined;
    const agentLog: string[] = [];
    try {
      if (!stack.api) throw new Error('local stack started without its API');
      const api = stack.api.url;
      // The agent's config names the daemon's service; written before the agent reads it.
      daemon = await spawnReady<{ port: number }>(process.execPath, ['--import', HOOK, DAEMON], {
        env: { ...process.env, UDPWATCH_HOOK_SOCKET: hookSocket },
      });
      const port = daemon.ready.port;
      const service = 'uwb-echo';
      await writeFile(
        join(dir, 'agent.json'),
        JSON.stringify({ services: [{ name: service, port }] }),
      );
      agent = spawn(
        process.execPath,
        [
          AGENT_BIN,
          'run',
          '--stream',
          stack.emulators.streamName,
          '--endpoint',
          stack.emulators.kinesisEndpoint,
          '--region',
          'us-east-1',
          '--state-dir',
          join(dir, 'state'),
          '--hook-socket',
          hookSocket,
          '--config',
          join(dir, 'agent.json'),
        ],
        {
          env: { ...process.env, AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      agent.stderr?.on('data', (d: Buffer) => {
        agentLog.push(d.toString());
        if (agentLog.length > 50) agentLog.shift();
      });
      const running = agent;
      await waitFor('the agent hook socket', 30_000, () => {
        if (running.exitCode !== null)
          throw new Error(`agent exited: ${agentLog.join('').slice(-800)}`);
        return existsSync(hookSocket);
      });

      const visible = new Map<number, number>();
      const clientsPath = `/v1/services/${service}/clients?window=300&limit=1000`;
      const poll = async () => {
        const res = await fetch(`${api}${clientsPath}`);
        if (!res.ok) return;
        const body = (await res.json()) as { clients: { ip: string; port?: number }[] };
        const at = performance.now();
        for (const c of body.clients)
          if (c.port !== undefined && !visible.has(c.port)) visible.set(c.port, at);
      };
      const startClient = async () => {
        const s = dgram.createSocket('udp4');
        sockets.push(s);
        s.on('message', () => {});
        s.on('error', () => {});
        await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
        const t0 = performance.now();
        s.send('hello', port, '127.0.0.1');
        // Keep the client active until it is seen.
        const timer = setInterval(() => {
          if (visible.has(s.address().port)) clearInterval(timer);
          else s.send('hello', port, '127.0.0.1');
        }, 500);
        return { port: s.address().port, t0, timer };
      };

      // Warm-up client: proves the whole path works (and warms it) before measuring.
      const warm = await startClient();
      await waitFor(
        'the warm-up client in the API (is the pipeline running?)',
        60_000,
        async () => {
          await poll();
          return visible.has(warm.port);
        },
      );
      log(`warm-up client visible after ${(visible.get(warm.port)! - warm.t0).toFixed(0)} ms`);

      let polling = true;
      const poller = (async () => {
        while (polling) {
          await poll().catch(() => {});
          await sleep(100);
        }
      })();
      const started: { port: number; t0: number; timer: NodeJS.Timeout }[] = [];
      for (let i = 0; i < clientCount; i++) {
        started.push(await startClient());
        await sleep(250 + ((i * 397) % 500));
      }
      await waitFor('every client in the API', 30_000, () =>
        started.every((c) => visible.has(c.port)),
      );
      polling = false;
      await poller;
      for (const c of started) clearInterval(c.timer);
      clearInterval(warm.timer);
      const delays = started.map((c) => (visible.get(c.port)! - c.t0) / 1000);
      return [
        plain('time to visibility, p50', 's', [percentile(delays, 50)], {
          note: `${clientCount} new clients; hook window 1 s, agent cycle 1 s, poller batching 0.5 s, API polled every 0.1 s`,
        }),
        plain('time to visibility, p95', 's', [percentile(delays, 95)], { goal: '< 2 s' }),
        plain('time to visibility, all clients', 's', delays),
      ];
    } finally {
      for (const s of sockets) s.close();
      await daemon?.stop();
      await stopChild(agent);
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
