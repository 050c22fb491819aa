/**
 * The whole agent for the agent-cost benchmark, every source on: the real
 * Agent with the /proc, conntrack, eBPF (bpftrace) and hook sources of the
 * network namespace it runs in, one cycle a second, its checkpoint written
 * every cycle (into <stateDir>), with a shipper that only
 * counts (shipping is network I/O, measured by the shipper's own tests).
 * Run it inside the benchmark's namespace (ip netns exec).
 *
 *   node --expose-gc --import tsx agent-whole.ts <hookSocket> <stateDir>
 *
 * Prints {"ready":true,"sources":[..]} once eBPF is attached. Then each stdin
 * line `measure <seconds> [heapSnapshotFile]` is answered, after that many
 * seconds, with
 * {"cpuMs":..,"bpftraceCpuMs":..,"rssBytes":..,"rssAfterGcBytes":..,"heapTotalBytes":..,
 * "externalBytes":..,"bpftraceRssBytes":..,"heapBytes":..,"spaces":{..},"resident":{..},
 * "flows":..,"records":..,"sources":[..]}
 * (CPU over the window; RSS, V8 heap spaces, external memory and resident
 * memory by kind of mapping at its end; RSS and heap after a full
 * collection); `stop`
 * stops the agent.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import { createAgent } from '../../agent/agent.js';
import { AgentConfigSchema } from '../../agent/agent-config.js';
import { checkpointLimits } from '../../agent/checkpoint-codec.js';
import { CheckpointFile } from '../../agent/checkpoint-file.js';
import { openHookSource } from '../../agent/hook-source.js';
import { createKernelSources } from '../../agent/kernel-sources.js';
import { childrenNamed, cpuSeconds, rssMiB } from '../proc-stat.js';

const [socketPath, stateDir] = process.argv.slice(2);
if (!socketPath || !stateDir) {
  console.error(
    'usage: agent-whole.ts <hookSocket> <stateDir>   (then `measure <seconds> [heapSnapshotFile]` lines on stdin)',
  );
  process.exit(2);
}

const logs: string[] = [];
const log = (m: string) => {
  if (logs.length < 50) logs.push(m);
};
// The agent writes its checkpoint there every cycle, as the CLI's does; the caller removes it.
mkdirSync(stateDir, { recursive: true });
const config = AgentConfigSchema.parse({
  stream: 'bench',
  host: 'bench-host',
  stateDir,
  hookSocket: socketPath,
  maxFlows: 200_000,
});
// The CLI's own assembly of the kernel-side sources, every one on by default.
const { proc, conntrack, ebpf } = createKernelSources(config, log);
if (!proc || !conntrack || !ebpf) throw new Error(`a kernel source is off: ${logs.join('; ')}`);
const hook = await openHookSource(socketPath, String(process.getgid!()), log);
if (!hook) throw new Error(`hook socket ${socketPath} did not open: ${logs.join('; ')}`);
let seq = 0;
const totals = { records: 0, bytes: 0 };
const agent = createAgent(config, {
  agentId: 'bench-agent',
  proc,
  conntrack,
  ebpf,
  hook,
  shipper: {
    enqueue(records) {
      totals.records += records.length;
      for (const r of records) totals.bytes += r.data.length;
    },
    start() {},
    async stop() {},
    stats: () => ({ droppedLines: 0, spooledRecords: 0 }),
  },
  seq: { take: () => seq++ },
  clock: Date.now,
  checkpoint: new CheckpointFile(stateDir, 'bench-agent', checkpointLimits(config.maxFlows)),
  log,
});
const status = await ebpf.start();
if (!status.live) throw new Error(`eBPF source did not start: ${status.reason}`);
const bpftrace = childrenNamed('bpftrace')[0];
if (bpftrace === undefined) throw new Error('no bpftrace child after the eBPF source started');
agent.start();
process.stdout.write(`${JSON.stringify({ ready: true, sources: agent.sources() })}\n`);

/**
 * Resident bytes of this process by kind of mapping (/proc/self/smaps): `brk`
 * is malloc's main heap, `anon` every other anonymous mapping (V8's heap,
 * malloc's thread arenas, stacks), `file` code and data of mapped files.
 */
function residentByKind(): { brk: number; anon: number; file: number } {
  const kinds = { brk: 0, anon: 0, file: 0 };
  let kind: keyof typeof kinds = 'anon';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header) {
      const name = header[1]!;
      kind = name === '[heap]' ? 'brk' : name === '' || name.startsWith('[') ? 'anon' : 'file';
    } else if (line.startsWith('Rss:')) {
      kinds[kind] += Number(line.split(/\s+/)[1]) * 1024;
    }
  }
  return kinds;
}

/** One measured window: this process's and bpftrace's CPU over it, memory at its end. */
async function measure(windowSeconds: number, snapshot?: string): Promise<Record<string, unknown>> {
  totals.records = 0;
  totals.bytes = 0;
  const cpu0 = process.cpuUsage();
  const bpf0 = cpuSeconds(bpftrace!);
  await new Promise((resolve) => setTimeout(resolve, windowSeconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  const before = process.memoryUsage();
  // Committed bytes per V8 heap space at the window's end: where RSS growth sits.
  const spaces = Object.fromEntries(
    getHeapSpaceStatistics().map((sp) => [sp.space_name, sp.space_size]),
  );
  const resident = residentByKind();
  // Live heap: after a full collection when --expose-gc allows one (after the CPU window).
  (globalThis as { gc?: () => void }).gc?.();
  const after = process.memoryUsage();
  const result = {
    cpuMs: (cpu.user + cpu.system) / 1000,
    bpftraceCpuMs: (cpuSeconds(bpftrace!) - bpf0) * 1000,
    rssBytes: before.rss,
    /** Resident after that collection: what the live state keeps, garbage returned. */
    rssAfterGcBytes: after.rss,
    heapTotalBytes: before.heapTotal,
    externalBytes: before.external,
    bpftraceRssBytes: rssMiB(bpftrace!) * 1024 * 1024,
    heapBytes: after.heapUsed,
    spaces,
    resident,
    flows: agent.flowTable.size,
    sources: agent.sources(),
    ...totals,
  };
  if (snapshot) writeHeapSnapshot(snapshot);
  return result;
}

// Commands, one a line: `measure <seconds> [heapSnapshotFile]` answers with a
// JSON line; `stop` (or the end of stdin) stops the agent and exits.
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const [cmd, arg, file] = line.trim().split(' ');
  if (cmd === 'measure' && Number(arg) > 0 && Number(arg) <= 120) {
    process.stdout.write(`${JSON.stringify(await measure(Number(arg), file))}\n`);
  } else if (cmd === 'stop') {
    break;
  } else {
    process.stdout.write(
      `${JSON.stringify({ error: `unknown command ${JSON.stringify(line)}` })}\n`,
    );
  }
}
await agent.stop();
process.exit(0);
