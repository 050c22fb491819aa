/**
 * Packs v1 NDJSON lines into Kinesis records: one group per partition bucket
 * (flowBucket of service and client IP; heartbeats in bucket 0), each packed
 * with the contract encoder, so every record holds lines of one bucket of one
 * agent under that bucket's partition key. The agent ships its heartbeats this
 * way; its flows go out as sealed blocks (block-sealer.ts). `ShipRecord` is
 * what the shipper and the spool carry, whatever the payload.
 */
import { encodeRecords, type UnsequencedLine } from '../contract/codec.js';
import { flowBucket, partitionKey } from '../contract/partitioning.js';

/** A v1 flow line before its record's seq is stamped. */
export type UnsequencedFlowLine = Extract<UnsequencedLine, { type: 'flow' }>;

/** A record ready to ship: its partition key, seq and payload. */
export interface ShipRecord {
  partitionKey: string;
  seq: number;
  /** The payload exactly as it goes out (a spooled record is re-sent byte for byte). */
  data: Buffer;
  /** Lines (v1) or endpoints (v2 block part) in the record, for counters. */
  lines: number;
}

/** The bucket a line belongs to. */
export function bucketOf(line: UnsequencedLine): number {
  return line.type === 'flow' ? flowBucket(line.service, line.remoteIp) : 0;
}

/**
 * Groups lines by bucket (keeping their order within a bucket) and encodes
 * each group; seqs are taken in output order, so they increase per key.
 */
export function packRecords(
  lines: readonly UnsequencedLine[],
  options: { agentId: string; nextSeq: () => number; gzip?: boolean },
): ShipRecord[] {
  const groups = new Map<number, UnsequencedLine[]>();
  for (const line of lines) {
    const b = bucketOf(line);
    let group = groups.get(b);
    if (!group) {
      group = [];
      groups.set(b, group);
    }
    group.push(line);
  }
  const out: ShipRecord[] = [];
  for (const b of [...groups.keys()].sort((x, y) => x - y)) {
    const key = partitionKey(options.agentId, b);
    for (const r of encodeRecords(groups.get(b)!, {
      nextSeq: options.nextSeq,
      gzip: options.gzip ?? true,
    })) {
      out.push({ partitionKey: key, seq: r.seq, data: r.data, lines: r.lines });
    }
  }
  return out;
}
