/**
 * The eBPF source alone, for the ebpf-source benchmark: the agent's real
 * source (its bpftrace program) on one network namespace, polled once a
 * second as the agent polls it, attributing to listeners on 127.0.0.1 at the
 * given ports, its flows folded into a flow table as the agent folds them. A
 * process of its own, so its CPU is the source's parse and attribution and
 * the flow table's work on them, and nothing of the benchmark's.
 *
 *   node --import tsx ebpf-session.ts <netnsInode> <port>[,<port>...] [drainMs]
 *
 * Prints {"ready":true,"bpftracePid":N,"startupMs":N} once bpftrace is
 * attached. Each stdin line `take` is answered with {"ownedIn":N,"unowned":N}:
 * packets into the listeners and packets of no local socket counted since
 * the previous take; `collect` runs a full garbage collection (started with
 * --expose-gc) and answers {"collected":true}, so a CPU window starts with
 * no earlier garbage to collect. Stops bpftrace and exits when stdin closes or on SIGTERM.
 */
import { createInterface } from 'node:readline';
import { createEbpfSource } from '../../agent/ebpf-source.js';
import { FlowTable } from '../../agent/flow-table.js';
import type { ListeningSocket } from '../../agent/observation.js';
import { createServiceNamer } from '../../agent/service-names.js';
import { childrenNamed } from '../proc-stat.js';

const [inodeArg, portsArg, drainArg] = process.argv.slice(2);
const netnsInode = Number(inodeArg);
const ports = (portsArg ?? '').split(',').map(Number);
const drainIntervalMs = Number(drainArg ?? 1000);
if (
  !(netnsInode > 0) ||
  !ports.every((p) => Number.isInteger(p) && p > 0 && p < 65_536) ||
  !(drainIntervalMs >= 100)
) {
  console.error('usage: ebpf-session.ts <netnsInode> <port>[,<port>...] [drainMs, default 1000]');
  process.exit(2);
}

const listeners: ListeningSocket[] = ports.map((localPort) => ({
  localIp: '127.0.0.1',
  localPort,
  family: 4,
  inode: 0,
  drops: 0,
  rxQueueBytes: 0,
}));
const source = createEbpfSource({
  sockets: () => ({ listeners, connected: [] }),
  netnsInode,
  localAddresses: () => ['127.0.0.1'],
  drainIntervalMs,
});
const status = await source.start();
if (!status.live) {
  console.error(`eBPF source did not start: ${status.reason}`);
  process.exit(1);
}
const pids = childrenNamed('bpftrace');
if (pids.length !== 1) {
  console.error(`expected one bpftrace child, found ${pids.length}`);
  await source.stop();
  process.exit(1);
}

let ownedIn = 0;
let unownedBase = 0;
const table = new FlowTable({ serviceFor: createServiceNamer([], 300), maxFlows: 200_000 });
table.setListeners(listeners);
const poll = () => {
  table.ingestFrom((visit) =>
    source.pollInto((o) => {
      ownedIn += o.pktsIn;
      visit(o);
    }),
  );
  // What the agent's sealer would take: the table's deltas, one refilled object each.
  table.drainInto(Date.now(), () => {});
};
const timer = setInterval(poll, 1000);
console.log(
  JSON.stringify({ ready: true, bpftracePid: pids[0], startupMs: status.startupMs ?? null }),
);

const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line.trim() === 'collect') {
    globalThis.gc?.();
    console.log(JSON.stringify({ collected: globalThis.gc !== undefined }));
    return;
  }
  if (line.trim() !== 'take') return;
  poll();
  const unowned = source.status().unownedPackets;
  console.log(JSON.stringify({ ownedIn, unowned: unowned - unownedBase }));
  ownedIn = 0;
  unownedBase = unowned;
});
// Stopped by closing stdin or by SIGTERM: either way bpftrace is stopped first, never orphaned.
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  void source.stop().then(() => process.exit(0));
};
input.on('close', stop);
process.on('SIGTERM', stop);
