/**
 * The agent's pipeline alone, for the agent-cost benchmark: hook receiver ->
 * flow table -> block sealer (one main part per minute, early parts for new
 * clients) -> encoded records, one cycle a second, as the agent's run loop does it
 * (shipping left out: it is network I/O, measured by the shipper's own tests).
 *
 *   node --import tsx agent-pipeline.ts <hookSocket> <warmSeconds> <seconds>
 *
 * Prints {"ready":true} once listening, then after warm-up + measurement
 * {"cpuMs":..,"rssBytes":..,"heapBytes":..,"flows":..,"lines":..,"records":..,"wireBytes":..,"packets":..}
 * covering the measured seconds only (rss/heap at the end).
 */
import { BlockSealer, blockRecord } from '../../agent/block-sealer.js';
import { FlowTable } from '../../agent/flow-table.js';
import { startHookReceiver } from '../../agent/hook-receiver.js';
import { createServiceNamer } from '../../agent/service-names.js';

const [socketPath, warmArg, secondsArg] = process.argv.slice(2);
const warm = Number(warmArg);
const seconds = Number(secondsArg);
if (!socketPath || !(warm >= 0) || !(seconds > 0)) {
  console.error('usage: agent-pipeline.ts <hookSocket> <warmSeconds> <seconds>');
  process.exit(2);
}

const agentId = 'bench-agent';
const receiver = await startHookReceiver(socketPath);
const table = new FlowTable({ serviceFor: createServiceNamer([]), maxFlows: 200_000 });
let seq = 0;
const totals = { lines: 0, records: 0, wireBytes: 0, packets: 0 };

const sealer = new BlockSealer({
  agentId,
  host: 'bench-host',
  nextSeq: () => seq++,
  sealIntervalMs: 60_000,
  graceMs: 3_000,
  sendOffsetMs: 0,
  earlyBurst: 2,
  earlyRefillMs: 30_000,
  now: Date.now(),
});

function cycle(): void {
  const now = Date.now();
  // As the agent takes hook rows: handed from the receiver's columns to the table, no object a row.
  table.ingestHookFrom((visit) =>
    receiver.drainInto((o) => {
      totals.packets += o.pktsIn + o.pktsOut;
      visit(o);
    }),
  );
  const deltas = table.drain(now);
  const blocks = [...sealer.addDeltas(deltas, now), ...sealer.sealDue(now)];
  const records = blocks.map(blockRecord);
  totals.lines += deltas.length;
  totals.records += records.length;
  for (const r of records) totals.wireBytes += r.data.length;
}

process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
const timer = setInterval(cycle, 1000);
await new Promise((resolve) => setTimeout(resolve, warm * 1000));
totals.lines = 0;
totals.records = 0;
totals.wireBytes = 0;
totals.packets = 0;
const cpu0 = process.cpuUsage();
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
const cpu = process.cpuUsage(cpu0);
clearInterval(timer);
const mem = process.memoryUsage();
process.stdout.write(
  `${JSON.stringify({
    cpuMs: (cpu.user + cpu.system) / 1000,
    rssBytes: mem.rss,
    heapBytes: mem.heapUsed,
    flows: table.size,
    ...totals,
  })}\n`,
);
await receiver.close();
process.exit(0);
