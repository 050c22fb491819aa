/**
 * Reads back everything a Kinesis stream holds, shard by shard in order, and
 * decodes it as the aggregator would: v2 block parts and v1 lines
 * (heartbeats) alike.
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { expect } from 'vitest';
import type { Block, BlockEndpoint } from '../../../contract/block.js';
import type { HeartbeatLine, Line } from '../../../contract/wire.js';
import { decodePayload, readShardRecords } from '../../support/stream-records.js';

export interface StreamRecord {
  shardId: string;
  partitionKey: string;
  data: Buffer;
  /** The block part of a v2 record. */
  block?: Block;
  /** The lines of a v1 record. */
  lines: Line[];
}

/** Every record of the stream, in shard order; fails the test on anything undecodable. */
export async function readStream(
  kinesis: KinesisClient,
  streamName: string,
): Promise<StreamRecord[]> {
  const out: StreamRecord[] = [];
  for (const { shardId, records } of await readShardRecords(kinesis, streamName)) {
    for (const rec of records) {
      const data = Buffer.from(rec.Data!);
      const decoded = decodePayload(data);
      expect(decoded.errors).toEqual([]);
      const r: StreamRecord = {
        shardId,
        partitionKey: rec.PartitionKey!,
        data,
        lines: decoded.lines,
      };
      if (decoded.block) r.block = decoded.block;
      out.push(r);
    }
  }
  return out;
}

/** What names a record for the store: (agent, seq, part) of a block; (agent, seq) of v1 lines. */
export function recordIdentity(r: StreamRecord): string {
  if (r.block) return `${r.block.agentId}#${r.block.seq}#${r.block.part}`;
  const first = r.lines[0]!;
  return `${first.agentId}#${first.seq}#v1`;
}

/** The seq of a record (block or v1). */
export function recordSeq(r: StreamRecord): number {
  return r.block ? r.block.seq : r.lines[0]!.seq;
}

/**
 * Checks the property the store relies on: a re-sent record (same agent, seq
 * and part) carries the identical bytes. Returns the records with the
 * re-sends removed.
 */
export function assertResendsIdentical(records: StreamRecord[]): StreamRecord[] {
  const first = new Map<string, StreamRecord>();
  const unique: StreamRecord[] = [];
  for (const r of records) {
    const id = recordIdentity(r);
    const prev = first.get(id);
    if (prev) {
      expect(r.data.equals(prev.data), `${id} re-sent with other content`).toBe(true);
      continue;
    }
    first.set(id, r);
    unique.push(r);
  }
  return unique;
}

/** Every endpoint of every block part, with its block's minute and seq. */
export function endpointsOf(
  records: StreamRecord[],
): Array<BlockEndpoint & { service: string; minute: number; seq: number; agentId: string }> {
  return records.flatMap((r) =>
    r.block
      ? r.block.endpoints.map((e) => ({
          ...e,
          service: r.block!.service,
          minute: r.block!.minute,
          seq: r.block!.seq,
          agentId: r.block!.agentId,
        }))
      : [],
  );
}

/** Packets and bytes of every endpoint whose client port is `port` (one test client's traffic). */
export function portTotals(
  records: StreamRecord[],
  port: number,
): { pktsIn: number; bytesIn: number; pktsOut: number } {
  const mine = endpointsOf(records).filter((e) => e.port === port);
  return {
    pktsIn: mine.reduce((n, e) => n + e.pktsIn, 0),
    bytesIn: mine.reduce((n, e) => n + e.bytesIn, 0),
    pktsOut: mine.reduce((n, e) => n + e.pktsOut, 0),
  };
}

/** The heartbeat lines among the records. */
export function heartbeatsOf(records: StreamRecord[]): HeartbeatLine[] {
  return records.flatMap((r) => r.lines).filter((l): l is HeartbeatLine => l.type === 'heartbeat');
}
