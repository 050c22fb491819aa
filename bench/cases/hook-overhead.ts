/**
 * Hook overhead: a UDP echo daemon's throughput on loopback with and without
 * the dgram hook, same run. The hooked daemon really ships: an agent-side
 * receiver listens on a temporary Unix socket, and the packets the hook
 * reported are checked against the packets echoed.
 *
 * Each round measures both daemons back to back, in alternating order, so
 * drift on a shared machine (other load, thermal) hits both sides alike.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHookReceiver } from '../../agent/hook-receiver.js';
import { runForJson, spawnReady } from '../child-json.js';
import { type BenchCase, compared, type Figure, plain } from '../harness.js';
import { cpuSeconds } from '../proc-stat.js';

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
const DAEMON = here('../procs/echo-daemon.mjs');
const LOAD = here('../procs/udp-load.mjs');
const HOOK = here('../../agent/hook/register.mjs');

/** Client sockets of the load generator: each one is a flow the hook keys. */
const FLOWS = 8;
/** Datagrams each client keeps in flight. */
const WINDOW = 16;

interface LoadResult {
  echoed: number;
  ms: number;
  heard: number;
}

/** Echoes heard by load generators of the hooked daemon, warm-ups included. */
let heardByHooked = 0;

/** One load run against a daemon: datagrams/s echoed and daemon CPU µs per echoed datagram. */
async function measure(
  daemon: { pid: number; port: number },
  size: number,
  seconds: number,
  hooked: boolean,
): Promise<{ rate: number; cpuUs: number }> {
  const port = daemon.port;
  const cpu0 = cpuSeconds(daemon.pid);
  const r = await runForJson<LoadResult>(
    process.execPath,
    [LOAD, String(port), String(size), String(seconds), String(FLOWS), String(WINDOW)],
    { timeoutMs: (seconds + 15) * 1000 },
  );
  const cpu = cpuSeconds(daemon.pid) - cpu0;
  if (hooked) heardByHooked += r.heard;
  return { rate: r.echoed / (r.ms / 1000), cpuUs: (cpu * 1e6) / Math.max(1, r.heard) };
}

export const hookOverhead: BenchCase = {
  id: 'hook-overhead',
  title: 'echo daemon throughput with and without the dgram hook',
  async run({ quick, log }) {
    const seconds = quick ? 1.2 : 3;
    const roundCount = quick ? 3 : 7;
    const dir = await mkdtemp(join(tmpdir(), 'uwb-hook-'));
    const socketPath = join(dir, 'hook.sock');
    const receiver = await startHookReceiver(socketPath);
    let hookedPackets = 0;
    const drainer = setInterval(() => {
      for (const o of receiver.drain()) hookedPackets += o.pktsIn;
    }, 250);
    const env = { ...process.env, UDPWATCH_HOOK_SOCKET: socketPath };
    const plainDaemon = await spawnReady<{ port: number }>(process.execPath, [DAEMON], { env });
    const hookedDaemon = await spawnReady<{ port: number }>(
      process.execPath,
      ['--import', HOOK, DAEMON],
      { env },
    );
    const plainTarget = { pid: plainDaemon.child.pid!, port: plainDaemon.ready.port };
    const hookedTarget = { pid: hookedDaemon.child.pid!, port: hookedDaemon.ready.port };
    const figures: Figure[] = [];
    heardByHooked = 0;
    try {
      for (const size of [64, 1024]) {
        // Warm-up: JIT and socket buffers of both daemons.
        await measure(plainTarget, size, 0.5, false);
        await measure(hookedTarget, size, 0.5, true);
        const without: number[] = [];
        const withHook: number[] = [];
        const ratios: number[] = [];
        const cpuWithout: number[] = [];
        const cpuWith: number[] = [];
        const extraPer10k: number[] = [];
        for (let r = 0; r < roundCount; r++) {
          const hookedFirst = r % 2 === 1;
          let h = { rate: 0, cpuUs: 0 };
          let u = { rate: 0, cpuUs: 0 };
          if (hookedFirst) h = await measure(hookedTarget, size, seconds, true);
          u = await measure(plainTarget, size, seconds, false);
          if (!hookedFirst) h = await measure(hookedTarget, size, seconds, true);
          without.push(u.rate);
          withHook.push(h.rate);
          ratios.push(h.rate / u.rate);
          cpuWithout.push(u.cpuUs);
          cpuWith.push(h.cpuUs);
          // Each echo is two datagrams the hook counts (one in, one out).
          extraPer10k.push((((h.cpuUs - u.cpuUs) / 2) * 10_000) / 1000);
          log(
            `${size} B round ${r + 1}: unhooked ${u.rate.toFixed(0)}/s ${u.cpuUs.toFixed(2)} µs, hooked ${h.rate.toFixed(0)}/s ${h.cpuUs.toFixed(2)} µs`,
          );
        }
        figures.push(
          compared(
            `echo throughput, ${size} B, hooked`,
            'datagrams/s',
            withHook,
            'unhooked',
            without,
            'higher',
            { goal: '≥ 0.97×', note: `${FLOWS} client flows, ${WINDOW} in flight each, loopback` },
          ),
          plain(`hooked/unhooked per round, ${size} B`, '×', ratios, {
            goal: '≥ 0.97',
            note: 'ratio of the two runs of the same round (alternating order)',
          }),
          compared(
            `daemon CPU per echoed datagram, ${size} B, hooked`,
            'µs',
            cpuWith,
            'unhooked',
            cpuWithout,
            'lower',
            {
              goal: '≤ 1.03×',
              note: 'user+system time of the daemon process (10 ms ticks); less sensitive to other load than throughput',
            },
          ),
          plain(
            `hook's extra daemon CPU per 10,000 datagrams/s, ${size} B`,
            'ms CPU/s',
            extraPer10k,
            {
              note: 'hooked minus unhooked CPU per datagram, same round; 10 ms CPU/s = 1% of a core',
            },
          ),
        );
      }
      // Let the last window reach the receiver before checking what the hook shipped.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      for (const o of receiver.drain()) hookedPackets += o.pktsIn;
      const stats = receiver.stats();
      figures.push(
        plain(
          'hook: packets reported / echoes heard',
          '×',
          [hookedPackets / Math.max(1, heardByHooked)],
          {
            goal: '≈ 1 (slightly above: datagrams in flight at the end)',
            note: `the hook really shipped: ${stats.messages} messages, ${stats.droppedPackets} packets it could not report`,
          },
        ),
      );
    } finally {
      clearInterval(drainer);
      await Promise.all([plainDaemon.stop(), hookedDaemon.stop()]);
      await receiver.close();
      await rm(dir, { recursive: true, force: true });
    }
    return figures;
  },
};
