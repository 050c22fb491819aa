/**
 * Where the agent's memory per flow goes, deterministically: the hook
 * receiver's parse (hook protocol lines as a hooked daemon writes them), the
 * flow table and the block sealer, driven in one process by a simulated clock
 * (one cycle per simulated second, all within one minute, so the sealer holds
 * every flow's pending endpoint as it does before a main part), no sockets,
 * no timers. Then the live heap after a full collection, and what each
 * structure holds: the heap freed by dropping the sealer, then the table.
 *
 *   node --expose-gc --import tsx agent-memory.ts <flows> [cycles] [heapSnapshotFile]
 *
 * Prints one JSON line: heap and RSS per flow, CPU per cycle, the share of each structure,
 * and with a snapshot file, the snapshot's largest node kinds by self size.
 */
import { readFileSync } from 'node:fs';
import { writeHeapSnapshot } from 'node:v8';
import { BlockSealer } from '../../agent/block-sealer.js';
import { FlowTable } from '../../agent/flow-table.js';
import { hookObservations } from '../../agent/hook-receiver.js';
import { createServiceNamer } from '../../agent/service-names.js';
import { parseHookMessage } from '../../contract/hook-protocol.js';
import { busyHookLines } from '../busy-hook-lines.js';

const [flowsArg, cyclesArg, snapshotFile] = process.argv.slice(2);
const flows = Number(flowsArg);
const cycles = Number(cyclesArg ?? 20);
const gc = (globalThis as { gc?: () => void }).gc;
if (!(flows > 0) || !(cycles > 0 && cycles < 55) || !gc) {
  console.error(
    'usage: node --expose-gc --import tsx agent-memory.ts <flows> [cycles < 55] [heapSnapshotFile]',
  );
  process.exit(2);
}

/** The heap after a full collection (twice: weak references and finalizers settle). */
function liveHeap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

const base = liveHeap();
const { rss: rss0, arrayBuffers: buffers0 } = process.memoryUsage();
// A minute boundary plus a little, so every cycle's deltas land in one pending minute.
const start = Math.ceil(Date.now() / 60_000) * 60_000 + 1_000;
let table: FlowTable | null = new FlowTable({
  serviceFor: createServiceNamer([]),
  maxFlows: 200_000,
});
let seq = 0;
let sealer: BlockSealer | null = new BlockSealer({
  agentId: 'bench-agent',
  host: 'bench-host',
  nextSeq: () => seq++,
  sealIntervalMs: 60_000,
  graceMs: 3_000,
  sendOffsetMs: 0,
  earlyBurst: 2,
  earlyRefillMs: 30_000,
  now: start,
});
/**
 * One simulated second as the agent runs it: the window's hook lines into
 * the table, its deltas into the sealer. A function of its own, so nothing a
 * cycle builds outlives it on the stack and counts as held.
 */
function cycle(now: number, window: number): number {
  for (const line of busyHookLines(flows, now, window)) {
    const parsed = parseHookMessage(JSON.parse(line));
    if (!parsed.ok) throw new Error(`feeder line refused: ${parsed.reason}`);
    const observations = hookObservations(parsed.message);
    table!.ingestHookFrom((visit) => {
      for (const o of observations) visit(o);
    });
  }
  const early = sealer!.addDeltasFrom((visit) => table!.drainInto(now, visit), now);
  return early.length + sealer!.sealDue(now).length;
}
let sealedBlocks = 0;
const cpu0 = process.cpuUsage();
for (let c = 0; c < cycles; c++) sealedBlocks += cycle(start + c * 1000, c);
const cpu = process.cpuUsage(cpu0);
const rssLoaded = process.memoryUsage().rss;
const held = table.size;
const pending = sealer.stats().pendingEndpoints;
const all = liveHeap();
const { rss, arrayBuffers } = process.memoryUsage();
let snapshot: Record<string, { count: number; bytes: number }> | undefined;
if (snapshotFile) {
  writeHeapSnapshot(snapshotFile);
  snapshot = summarize(snapshotFile);
}
sealer = null;
const withoutSealer = liveHeap();
table = null;
const withoutTable = liveHeap();

const perFlow = (bytes: number) => Math.round(bytes / flows);
process.stdout.write(
  `${JSON.stringify({
    flows,
    held,
    pending,
    sealedBlocks,
    heapPerFlow: perFlow(all - base),
    sealerPerFlow: perFlow(all - withoutSealer),
    tablePerFlow: perFlow(withoutSealer - withoutTable),
    /** Outside the JS heap: the typed arrays of the slots and the key maps. */
    arrayBuffersPerFlow: perFlow(arrayBuffers - buffers0),
    rssPerFlow: perFlow(rss - rss0),
    /** Before the collection above: what the cycles' garbage left resident. */
    loadedRssPerFlow: perFlow(rssLoaded - rss0),
    /** CPU of the cycles (this process, main thread and V8's helpers) per cycle. */
    cpuMsPerCycle: Math.round((cpu.user + cpu.system) / 1000 / cycles),
    ...(snapshot ? { snapshot } : {}),
  })}\n`,
);

/** The snapshot's node kinds (type and name) holding the most self size, largest first. */
function summarize(file: string): Record<string, { count: number; bytes: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = snap.snapshot.meta.node_types[0];
  const kinds = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!;
    // Strings and numbers by type only: their names are their contents.
    const name =
      type === 'string' || type === 'concatenated string' || type === 'sliced string'
        ? ''
        : snap.strings[snap.nodes[i + nameAt]!]!.slice(0, 40);
    const key = `${type}:${name}`;
    const k = kinds.get(key) ?? { count: 0, bytes: 0 };
    k.count++;
    k.bytes += snap.nodes[i + sizeAt]!;
    kinds.set(key, k);
  }
  return Object.fromEntries(
    [...kinds.entries()].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 15),
  );
}
