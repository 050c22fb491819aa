/**
 * Bytes on the wire per flow line after packing, flow lines per Kinesis
 * record, and PutRecords calls per 10,000 flows, using the agent's own packer
 * (lines split into partition buckets, NDJSON, gzip) on realistic synthetic
 * lines; the packer's speed compared with plain JSON serialization.
 */

import { MAX_RECORDS_PER_CALL } from '../../agent/kinesis-shipper.js';
import { packRecords } from '../../agent/record-packer.js';
import { type BenchCase, compared, type Figure, plain } from '../harness.js';
import { recordMeasurement } from '../measured.js';
import { syntheticFlowLines } from '../synthetic-flows.js';

/** Kinesis caps a PutRecords call at 5 MiB as well as 500 records. */
const MAX_CALL_BYTES = 5 * 1024 * 1024;

/** PutRecords calls needed for records of these sizes, packed greedily in order. */
export function putRecordsCalls(sizes: readonly number[]): number {
  let calls = 0;
  let records = 0;
  let bytes = 0;
  for (const size of sizes) {
    if (records > 0 && (records + 1 > MAX_RECORDS_PER_CALL || bytes + size > MAX_CALL_BYTES)) {
      calls++;
      records = 0;
      bytes = 0;
    }
    records++;
    bytes += size;
  }
  return records > 0 ? calls + 1 : calls;
}

export const packing: BenchCase = {
  id: 'packing',
  title: 'connection-log packing',
  async run({ quick }) {
    const figures: Figure[] = [];
    const roundCount = quick ? 3 : 9;
    for (const n of [1_000, 10_000]) {
      const lines = syntheticFlowLines({ count: n, seed: n });
      const packMs: number[] = [];
      const jsonMs: number[] = [];
      let wire = 0;
      let raw = 0;
      let sizes: number[] = [];
      for (let r = 0; r < roundCount + 1; r++) {
        let seq = 0;
        const t0 = performance.now();
        const out = packRecords(lines, { agentId: 'i-0a1b2c3d4e5f60718', nextSeq: () => seq++ });
        const t1 = performance.now();
        const json = lines.map((l) => JSON.stringify(l)).join('\n');
        const t2 = performance.now();
        if (r === 0) continue; // warm-up
        packMs.push(t1 - t0);
        jsonMs.push(t2 - t1);
        sizes = out.map((x) => x.data.length);
        wire = sizes.reduce((s, x) => s + x, 0);
        raw = Buffer.byteLength(json) + n;
      }
      // The scale model's hosts report 1,000 clients a window.
      if (n === 1_000) recordMeasurement('wireBytesPerLine', wire / n);
      const label = `${n.toLocaleString('en-US')}-flow window`;
      figures.push(
        plain(`wire bytes per flow line (gzip), ${label}`, 'B', [wire / n], {
          note: `NDJSON ${(raw / n).toFixed(0)} B/line before gzip (${(raw / wire).toFixed(1)}× smaller on the wire)`,
        }),
        plain(`flow lines per Kinesis record, ${label}`, 'lines', [n / sizes.length], {
          note: 'one record per partition bucket (16 per agent) per window; up to 4 MiB NDJSON each',
        }),
        plain(
          `PutRecords calls per 10,000 flows, ${label}`,
          'calls',
          [(putRecordsCalls(sizes) * 10_000) / n],
          { note: 'one agent, one window; calls are capped at 500 records and 5 MiB' },
        ),
        compared(
          `pack ${label} (buckets + NDJSON + gzip)`,
          'ms',
          packMs,
          'JSON.stringify only',
          jsonMs,
          'lower',
        ),
      );
    }
    return figures;
  },
};
