/**
 * Time to visibility: from a new client's first datagram to its endpoint
 * appearing in the HTTP API. A UDP echo daemon runs under the dgram hook; the
 * real agent (`udpwatch-agent run`, started as local mode starts it,
 * local/local-agent.ts) ships to kinesalite; the local stack's event-source
 * poller feeds the real aggregate handler; the API is polled every 100 ms
 * through the local HTTP adapter and the query handler. Clients start one
 * after another at uneven offsets, so their first packets land at every phase
 * of the hook's, the agent's and the poller's cycles.
 *
 * Twice: with the local-mode agent config (everything sealed every second),
 * where the goal applies; and with the fleet's sealing defaults (a main part
 * per minute at this agent's send offset, early parts for new clients from a
 * token bucket of burst 2, one per 30 s), where the first new clients of a
 * burst come early and the rest wait for the minute's main part.
 */
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sendOffsetMs } from '../../agent/block-sealer.js';
import { type LocalChild, startLocalAgent } from '../../local/local-agent.js';
import { type LocalStack, startLocalStack } from '../../local/local-stack.js';
import { loadFunctionHandlers } from '../../local/start.js';
import { type ReadyChild, spawnReady } from '../child-json.js';
import { type BenchCase, type Figure, plain } from '../harness.js';
import { percentile } from '../percentile.js';
import { prepareHandlerEnvironment } from '../store-harness.js';

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
const DAEMON = here('../procs/echo-daemon.mjs');
const HOOK = here('../../agent/hook/register.mjs');

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

/** What one run measured: each new client's delay (s), in start order, and the agent's id. */
interface Run {
  delays: number[];
  agentId: string | undefined;
  warmUpMs: number;
}

/**
 * Runs the pipeline with the agent sealing every `sealIntervalSeconds`, starts
 * `clientCount` new clients a few hundred ms apart, and measures each one's delay.
 */
async function measure(
  stack: LocalStack,
  service: string,
  sealIntervalSeconds: number,
  clientCount: number,
  timeoutMs: number,
): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), 'uwb-ttv-'));
  const hookSocket = join(dir, 'hook.sock');
  const sockets: dgram.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  let daemon: ReadyChild<{ port: number }> | undefined;
  let agent: LocalChild | undefined;
  let agentId: string | undefined;
  try {
    if (!stack.api) throw new Error('local stack started without its API');
    const api = stack.api.url;
    daemon = await spawnReady<{ port: number }>(process.execPath, ['--import', HOOK, DAEMON], {
      env: { ...process.env, UDPWATCH_HOOK_SOCKET: hookSocket },
    });
    const port = daemon.ready.port;
    agent = await startLocalAgent({
      kinesisEndpoint: stack.emulators.kinesisEndpoint,
      streamName: stack.emulators.streamName,
      stateDir: join(dir, 'state'),
      hookSocket,
      services: [{ name: service, port }],
      sealIntervalSeconds,
      onLine: (line) => {
        agentId ??= /started: agent (\S+)/.exec(line)?.[1];
      },
    });
    await waitFor('the agent hook socket', 30_000, () => existsSync(hookSocket));

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
      timers.push(timer);
      return { port: s.address().port, t0 };
    };

    // Warm-up client: proves the whole path works (and warms it) before measuring.
    // Under the fleet defaults its early part spends one of the bucket's two tokens.
    const warm = await startClient();
    await waitFor(
      'the warm-up client in the API (is the pipeline running?)',
      timeoutMs,
      async () => {
        await poll();
        return visible.has(warm.port);
      },
    );
    const warmUpMs = visible.get(warm.port)! - warm.t0;

    let polling = true;
    const poller = (async () => {
      while (polling) {
        await poll().catch(() => {});
        await sleep(100);
      }
    })();
    const started: { port: number; t0: number }[] = [];
    for (let i = 0; i < clientCount; i++) {
      started.push(await startClient());
      await sleep(250 + ((i * 397) % 500));
    }
    await waitFor('every client in the API', timeoutMs, () =>
      started.every((c) => visible.has(c.port)),
    );
    polling = false;
    await poller;
    return {
      delays: started.map((c) => (visible.get(c.port)! - c.t0) / 1000),
      agentId,
      warmUpMs,
    };
  } finally {
    for (const t of timers) clearInterval(t);
    for (const s of sockets) s.close();
    await daemon?.stop();
    await agent?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export const timeToVisibility: BenchCase = {
  id: 'time-to-visibility',
  title: 'first datagram to visible in the API: local mode, and a burst under the fleet defaults',
  async run({ quick, log }) {
    prepareHandlerEnvironment();
    const clientCount = quick ? 8 : 40;

    // One stack for both runs: the function handlers are loaded once per process.
    const stack = await startLocalStack({
      loadHandlers: loadFunctionHandlers,
      summarizeIntervalMs: 3_600_000,
      sweepIntervalMs: 3_600_000,
    });
    try {
      return await bothRuns(stack, clientCount, log);
    } finally {
      await stack.stop();
    }
  },
};

/** The local-mode run and the fleet-defaults run, as figures. */
async function bothRuns(
  stack: LocalStack,
  clientCount: number,
  log: (line: string) => void,
): Promise<Figure[]> {
  const figures: Figure[] = [];
  const local = await measure(stack, 'uwb-echo-local', 1, clientCount, 30_000);
  log(`local mode: warm-up client visible after ${local.warmUpMs.toFixed(0)} ms`);
  figures.push(
    plain('local mode: time to visibility, p50', 's', [percentile(local.delays, 50)], {
      note: `${clientCount} new clients; the local-mode agent config (local/local-agent.ts: seal every 1 s, hook window 1 s), poller batching 0.5 s, API polled every 0.1 s`,
    }),
    plain('local mode: time to visibility, p95', 's', [percentile(local.delays, 95)], {
      goal: '≤ 2 s',
    }),
    plain('local mode: time to visibility, all clients', 's', local.delays),
  );

  // The fleet defaults: the burst's first clients ride early parts, the rest the main part.
  const fleet = await measure(stack, 'uwb-echo-fleet', 60, clientCount, 180_000);
  const offset = fleet.agentId ? sendOffsetMs(fleet.agentId) / 1000 : Number.NaN;
  log(
    `fleet defaults: agent ${fleet.agentId} (send offset ${offset} s), delays ${fleet.delays.map((d) => d.toFixed(1)).join(', ')} s`,
  );
  const [first, ...rest] = fleet.delays;
  figures.push(
    plain('fleet defaults: first new client of a burst (early part)', 's', [first!], {
      note: `seal interval 60 s, early parts burst 2 refilled one per 30 s (agent defaults); ${clientCount} new clients a few hundred ms apart, right after the warm-up client took one of the two tokens`,
    }),
    plain('fleet defaults: the rest of the burst', 's', rest, {
      note: `no token is left within the burst: the others wait for the minute's main part, sent after the minute ends plus grace plus this agent's send offset (${offset} s of 0..49, hash of the agent id): up to ~60 + 3 + 49 s`,
    }),
  );
  return figures;
}
