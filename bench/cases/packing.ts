/**
 * Bytes on the wire per flow line after packing, flow lines per Kinesis
 * record, and PutRecords calls per 10,000 flows; the packer's speed compared
 * with plain JSON serialization of the same lines.
 */
import { encodeRecords, type UnsequencedLine } from '../../contract/codec.js';
import { type BenchCase, compared, plain } from '../harness.js';

function syntheticFlows(count: number): UnsequencedLine[] {
  const now = Date.now();
  return Array.from({ length: count }, (_, i) => ({
    v: 1 as const,
    type: 'flow' as const,
    agentId: 'bench-agent-0001',
    host: 'host-017.example.internal',
    service: 'dns',
    source: 'conntrack' as const,
    localIp: '192.0.2.10',
    localPort: 53,
    remoteIp: `198.51.${(i >> 8) & 255}.${i & 255}`,
    remotePort: 1024 + ((i * 7919) % 60_000),
    firstSeen: now - 900,
    lastSeen: now - (i % 900),
    pktsIn: 1 + (i % 17),
    bytesIn: 60 * (1 + (i % 17)),
    pktsOut: 1 + (i % 17),
    bytesOut: 120 * (1 + (i % 17)),
    sampleRate: 1,
    pid: 812,
    process: 'named',
  }));
}

export const packing: BenchCase = {
  id: 'packing',
  title: 'connection-log packing',
  async run({ quick }) {
    const n = 10_000;
    const lines = syntheticFlows(n);
    const count = quick ? 3 : 9;
    const packMs: number[] = [];
    const jsonMs: number[] = [];
    let bytes = 0;
    let records = 0;
    for (let r = 0; r < count + 1; r++) {
      let seq = 0;
      const t0 = performance.now();
      const out = encodeRecords(lines, { nextSeq: () => seq++ });
      const t1 = performance.now();
      const json = lines.map((l) => JSON.stringify(l)).join('\n');
      const t2 = performance.now();
      if (r === 0) continue; // warm-up
      packMs.push(t1 - t0);
      jsonMs.push(t2 - t1);
      bytes = out.reduce((s, x) => s + x.data.length, 0);
      records = out.length;
      if (json.length === 0) throw new Error('unreachable');
    }
    return [
      plain('wire bytes per flow line (gzip)', 'B', [bytes / n]),
      plain('flow lines per Kinesis record', 'lines', [n / records], {
        note: 'records hold up to 4 MiB of NDJSON before gzip',
      }),
      plain('PutRecords calls per 10,000 flows', 'calls', [Math.ceil(records / 500)]),
      compared(
        'pack 10,000 flow lines (NDJSON + gzip)',
        'ms',
        packMs,
        'JSON.stringify only',
        jsonMs,
        'lower',
      ),
    ];
  },
};
