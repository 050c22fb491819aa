/**
 * Reads back every record a Kinesis stream holds, shard by shard from
 * TRIM_HORIZON, in order: the raw records that the suites then decode (v2
 * block parts and v1 lines alike, see decodePayload), turn into Lambda events
 * or compare with what was put.
 */
import {
  type _Record,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import type { Block } from '../../contract/block.js';
import { decodeBlock, isBlockRecord } from '../../contract/block-codec.js';
import { decodeRecord } from '../../contract/codec.js';
import type { Line } from '../../contract/wire.js';

/** One shard's records, oldest first. */
export interface ShardRecords {
  shardId: string;
  records: _Record[];
}

/** Every record of every shard, read until a shard is drained (at most 1,000 reads a shard). */
export async function readShardRecords(
  kinesis: KinesisClient,
  streamName: string,
): Promise<ShardRecords[]> {
  const shards = await kinesis.send(new ListShardsCommand({ StreamName: streamName }));
  const out: ShardRecords[] = [];
  for (const shard of shards.Shards ?? []) {
    const start = await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: streamName,
        ShardId: shard.ShardId!,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    );
    const records: _Record[] = [];
    let iterator = start.ShardIterator;
    for (let i = 0; i < 1000 && iterator; i++) {
      const page = await kinesis.send(
        new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }),
      );
      records.push(...(page.Records ?? []));
      // An empty page at the tip of the shard means it is drained.
      if ((page.Records ?? []).length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
      iterator = page.NextShardIterator;
    }
    out.push({ shardId: shard.ShardId!, records });
  }
  return out;
}

/** A record's payload decoded: a v2 block part, or v1 lines; `errors` says what did not decode. */
export interface DecodedPayload {
  block?: Block;
  lines: Line[];
  errors: string[];
}

/** Decodes a record's data as the aggregator would: v2 block when it has the magic, else v1 NDJSON. */
export function decodePayload(data: Uint8Array): DecodedPayload {
  if (isBlockRecord(data)) {
    const d = decodeBlock(data);
    return d.ok ? { block: d.block, lines: [], errors: [] } : { lines: [], errors: [d.reason] };
  }
  const v1 = decodeRecord(data);
  return { lines: v1.lines, errors: v1.errors.map((e) => `line ${e.line}: ${e.reason}`) };
}
