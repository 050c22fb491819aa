import { describe, expect, it } from 'vitest';
import { bucketOf, packRecords } from '../../../agent/record-packer.js';
import { decodeRecord, type UnsequencedLine } from '../../../contract/codec.js';
import { flowBucket, partitionKey } from '../../../contract/partitioning.js';

const T0 = 1_700_000_000_000;

function flow(service: string, remoteIp: string, n: number): UnsequencedLine {
  return {
    v: 1,
    type: 'flow',
    agentId: 'ag',
    host: 'h',
    service,
    source: 'hook',
    localIp: '192.0.2.1',
    localPort: 53,
    remoteIp,
    remotePort: 1000 + n,
    firstSeen: T0,
    lastSeen: T0 + n,
    pktsIn: n,
    bytesIn: n * 10,
    pktsOut: 0,
    bytesOut: 0,
    sampleRate: 1,
  };
}

describe('packRecords', () => {
  it('puts each line in the record of its bucket, in order, with increasing seqs', () => {
    const lines: UnsequencedLine[] = [];
    for (let i = 0; i < 200; i++) lines.push(flow(`svc${i % 3}`, `198.51.100.${i % 40}`, i));
    lines.push({
      v: 1,
      type: 'heartbeat',
      agentId: 'ag',
      host: 'h',
      at: T0,
      flows: 1,
      dropped: 0,
      spooled: 0,
    });
    let seq = 100;
    const records = packRecords(lines, { agentId: 'ag', nextSeq: () => seq++ });
    const seen: string[] = [];
    for (const r of records) {
      const d = decodeRecord(r.data);
      expect(d.errors).toEqual([]);
      expect(d.gzip).toBe(true);
      expect(d.lines).toHaveLength(r.lines);
      for (const l of d.lines) {
        expect(l.seq).toBe(r.seq);
        expect(r.partitionKey).toBe(partitionKey('ag', bucketOf(l)));
        if (l.type === 'flow') {
          expect(bucketOf(l)).toBe(flowBucket(l.service, l.remoteIp));
          seen.push(`${l.service}/${l.remotePort}`);
        } else expect(r.partitionKey).toBe('ag/0');
      }
    }
    // Every line exactly once, and within a bucket in input order.
    expect(seen.sort()).toEqual(
      lines
        .filter((l) => l.type === 'flow')
        .map((l) => `${l.service}/${l.remotePort}`)
        .sort(),
    );
    const seqs = records.map((r) => r.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(Math.min(...seqs)).toBe(100);
  });
});
