/**
 * `npm run bench [-- --quick] [-- --only id,id]`: runs the benchmark cases,
 * prints a table and writes bench/results.json.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { agentCost } from './cases/agent-cost.js';
import { aggregator } from './cases/aggregator.js';
import { blocks } from './cases/blocks.js';
import { checkpoint } from './cases/checkpoint.js';
import { ebpfSource } from './cases/ebpf-source.js';
import { hookOverhead } from './cases/hook-overhead.js';
import { scaleModel } from './cases/scale-model.js';
import { socketDiscovery } from './cases/socket-discovery.js';
import { storeReads } from './cases/store-reads.js';
import { timeToVisibility } from './cases/time-to-visibility.js';
import { webView } from './cases/web-view.js';
import { type BenchCase, type Figure, renderTable } from './harness.js';

const CASES: BenchCase[] = [
  hookOverhead,
  socketDiscovery,
  agentCost,
  checkpoint,
  ebpfSource,
  blocks,
  aggregator,
  storeReads,
  timeToVisibility,
  scaleModel,
  webView,
];

const HELP = `usage: npm run bench -- [--quick] [--only id[,id...]] [--out file]

  --quick   small sizes and few rounds (CI smoke, under 2 minutes)
  --only    run only these cases: ${CASES.map((c) => c.id).join(', ')}
  --out     where to write the JSON results (default bench/results.json)`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string', default: 'bench/results.json' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const only = values.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((id) => !CASES.some((c) => c.id === id)) ?? [];
  if (unknown.length > 0) {
    console.error(`bench: unknown case ${unknown.join(', ')}\n\n${HELP}`);
    process.exit(2);
  }
  const selected = CASES.filter((c) => !only || only.includes(c.id));
  const quick = values.quick || process.env.CI === 'true';
  const results: { case: BenchCase; figures: Figure[]; seconds: number }[] = [];
  // A failing case is reported and the run goes on: the other cases' figures are still written.
  const failed: { id: string; error: string }[] = [];
  for (const c of selected) {
    const t0 = performance.now();
    console.error(`bench: ${c.id} (${c.title})${quick ? ' [quick]' : ''}...`);
    try {
      const figures = await c.run({ quick, log: (m) => console.error(`  ${c.id}: ${m}`) });
      results.push({ case: c, figures, seconds: (performance.now() - t0) / 1000 });
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      console.error(`bench: ${c.id} failed: ${error}`);
      failed.push({ id: c.id, error: error.split('\n')[0]! });
    }
  }
  console.log(renderTable(results));
  const doc = {
    at: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    cases: results.map((r) => ({
      id: r.case.id,
      title: r.case.title,
      seconds: r.seconds,
      figures: r.figures,
    })),
    ...(failed.length > 0 ? { failed } : {}),
  };
  writeFileSync(values.out, `${JSON.stringify(doc, null, 2)}\n`);
  console.error(`bench: wrote ${values.out}`);
  if (failed.length > 0) {
    console.error(`bench: ${failed.length} case(s) failed: ${failed.map((f) => f.id).join(', ')}`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
