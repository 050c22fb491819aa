/**
 * Socket discovery: the agent's full /proc scan (sockets of /proc/net/udp{,6},
 * owning processes through /proc/<pid>/fd, UDP error counters) against
 * `ss -uanp` on the same few thousand sockets; and the agent's conntrack read
 * (read, parse, match to the listener, deltas) against
 * `conntrack -L -p udp` on a few thousand tracked flows in a namespace.
 * Both tools' output is discarded; both sides see the same kernel state.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createConntrackSource } from '../../agent/conntrack-source.js';
import { scanHostSockets } from '../../agent/host-sockets.js';
import { spawnReady } from '../child-json.js';
import { type BenchCase, compared, type Figure, plain } from '../harness.js';
import { createBenchNamespace } from '../netns.js';

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
const HOLDER = here('../procs/socket-holder.mjs');
const FLOWS = here('../procs/conntrack-flows.mjs');

/** Wall time of a command with stdout discarded; rejects on a non-zero exit. */
function timeCommand(command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = performance.now() - t0;
      if (code === 0) resolve(ms);
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${err.trim()}`));
    });
  });
}

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function procVersusSs(quick: boolean, log: (m: string) => void): Promise<Figure[]> {
  const count = quick ? 1_000 : 4_000;
  const roundCount = quick ? 5 : 15;
  const holder = await spawnReady<{ pid: number; sockets: number }>(process.execPath, [
    HOLDER,
    String(count),
  ]);
  try {
    const scan = await scanHostSockets();
    const mine = scan.sockets.filter((s) => s.owner?.pid === holder.ready.pid).length;
    if (mine < count) throw new Error(`scan found ${mine} of the holder's ${count} sockets`);
    log(`${scan.sockets.length} UDP sockets on the host, ${mine} held for the benchmark`);
    const agent: number[] = [];
    const ss: number[] = [];
    await timeCommand('ss', ['-uanp']);
    for (let r = 0; r < roundCount; r++) {
      // Alternate which goes first, so page-cache and scheduler drift cancel.
      if (r % 2 === 0) {
        agent.push(await timeAsync(() => scanHostSockets()));
        ss.push(await timeCommand('ss', ['-uanp']));
      } else {
        ss.push(await timeCommand('ss', ['-uanp']));
        agent.push(await timeAsync(() => scanHostSockets()));
      }
    }
    const ownerCache = new Map();
    await scanHostSockets({ ownerCache });
    const cached: number[] = [];
    for (let r = 0; r < roundCount; r++)
      cached.push(await timeAsync(() => scanHostSockets({ ownerCache })));
    return [
      compared(
        `full /proc scan, ${scan.sockets.length} sockets with owners`,
        'ms',
        agent,
        'ss -uanp',
        ss,
        'lower',
        {
          goal: '< 1× (faster)',
          note: 'in-process scan vs spawning ss; both list sockets, owners and drops',
        },
      ),
      compared(
        `repeat /proc scan with owner cache, ${scan.sockets.length} sockets`,
        'ms',
        cached,
        'ss -uanp',
        ss,
        'lower',
        {
          note: 'what the agent does every cycle: only new sockets are looked up in /proc/*/fd',
        },
      ),
    ];
  } finally {
    await holder.stop();
  }
}

async function conntrackVersusTool(quick: boolean, log: (m: string) => void): Promise<Figure[]> {
  const flows = quick ? 1_000 : 4_000;
  const roundCount = quick ? 5 : 15;
  const ns = createBenchNamespace('ct');
  let holder: Awaited<ReturnType<typeof spawnReady<{ pid: number; answered: number }>>> | undefined;
  try {
    const port = 5353;
    holder = await spawnReady<{ pid: number; answered: number }>(
      'ip',
      ['netns', 'exec', ns.name, process.execPath, FLOWS, ns.address, String(port), String(flows)],
      { timeoutMs: 120_000 },
    );
    const listener = {
      localIp: ns.address,
      localPort: port,
      family: 4 as const,
      inode: 0,
      pid: holder.ready.pid,
      process: 'node',
      drops: 0,
      rxQueueBytes: 0,
    };
    const procRoot = `/proc/${holder.ready.pid}`;
    const read = async () => {
      // A fresh source each time: every entry is new, the most work a poll can do.
      const source = createConntrackSource({
        procRoot,
        listeners: () => [listener],
        localAddresses: () => [ns.address],
      });
      return source.poll();
    };
    const first = await read();
    log(`${holder.ready.answered} flows answered; agent read sees ${first.length} client flows`);
    if (first.length < flows * 0.95) {
      throw new Error(
        `conntrack shows ${first.length} of ${flows} flows: is conntrack tracking in ${ns.name}?`,
      );
    }
    const toolArgs = ['netns', 'exec', ns.name, 'conntrack', '-L', '-p', 'udp'];
    await timeCommand('ip', toolArgs);
    const agent: number[] = [];
    const tool: number[] = [];
    const nsexec: number[] = [];
    for (let r = 0; r < roundCount; r++) {
      if (r % 2 === 0) {
        agent.push(await timeAsync(read));
        tool.push(await timeCommand('ip', toolArgs));
      } else {
        tool.push(await timeCommand('ip', toolArgs));
        agent.push(await timeAsync(read));
      }
      nsexec.push(await timeCommand('ip', ['netns', 'exec', ns.name, 'true']));
    }
    return [
      compared(
        `conntrack read, ${first.length} tracked flows (parse + match + deltas)`,
        'ms',
        agent,
        'conntrack -L -p udp',
        tool,
        'lower',
        {
          goal: '< 1× (faster)',
          note: 'agent reads /proc/<pid>/net/nf_conntrack of a process in the namespace',
        },
      ),
      plain('  of which: ip netns exec + process start alone', 'ms', nsexec, {
        note: 'fixed cost the conntrack baseline pays per call',
      }),
    ];
  } finally {
    await holder?.stop();
    ns.remove();
  }
}

export const socketDiscovery: BenchCase = {
  id: 'socket-discovery',
  title: '/proc scan vs ss, conntrack read vs conntrack -L',
  async run({ quick, log }) {
    const procFigures = await procVersusSs(quick, log);
    const conntrackFigures = await conntrackVersusTool(quick, log);
    return [...procFigures, ...conntrackFigures];
  },
};
