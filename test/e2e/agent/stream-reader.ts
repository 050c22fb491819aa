/**
 * Reads back everything a Kinesis stream holds, shard by shard in order, and
 * decodes it with the contract decoder: what the aggregator would see.
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { expect } from 'vitest';
import { decodeRecord } from '../../../contract/codec.js';
import type { Line } from '../../../contract/wire.js';
import { readShardRecords } from '../../support/stream-records.js';

export interface StreamRecord {
  shardId: string;
  partitionKey: string;
  data: Buffer;
  lines: Line[];
}

/** Every record of the stream, in shard order; fails the test on any undecodable line. */
export async function readStream(
  kinesis: KinesisClient,
  streamName: string,
): Promise<StreamRecord[]> {
  const out: StreamRecord[] = [];
  for (const { shardId, records } of await readShardRecords(kinesis, streamName)) {
    for (const rec of records) {
      const data = Buffer.from(rec.Data!);
      const decoded = decodeRecord(data);
      expect(decoded.errors).toEqual([]);
      out.push({ shardId, partitionKey: rec.PartitionKey!, data, lines: decoded.lines });
    }
  }
  return out;
}

/**
 * Checks the property the aggregator relies on: per partition key, seqs never
 * go down, and a repeated seq is the identical payload. Returns the records
 * with duplicates removed.
 */
export function assertOrderedPerKey(records: StreamRecord[]): StreamRecord[] {
  const byKey = new Map<string, StreamRecord[]>();
  for (const r of records) {
    const list = byKey.get(r.partitionKey) ?? [];
    list.push(r);
    byKey.set(r.partitionKey, list);
  }
  const unique: StreamRecord[] = [];
  for (const [key, list] of byKey) {
    expect(new Set(list.map((r) => r.shardId)).size, `key ${key} on one shard`).toBe(1);
    let prev: StreamRecord | undefined;
    for (const r of list) {
      const seq = r.lines[0]!.seq;
      if (prev) {
        const prevSeq = prev.lines[0]!.seq;
        expect(seq, `key ${key}: seq ${seq} after ${prevSeq}`).toBeGreaterThanOrEqual(prevSeq);
        if (seq === prevSeq) {
          expect(r.data.equals(prev.data), `key ${key}: seq ${seq} resent with other content`).toBe(
            true,
          );
          continue;
        }
      }
      unique.push(r);
      prev = r;
    }
  }
  return unique;
}
