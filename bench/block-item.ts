/**
 * A block part as the store keeps it (SPEC: block part item): its key and
 * attributes, built from the contract's key and attribute names, so the
 * benchmark sizes and stores exactly what the aggregate function writes.
 */
import type { Block } from '../contract/block.js';
import { blockHash } from '../contract/block-codec.js';
import { BLOCK_ATTRIBUTES } from '../contract/resources.js';
import { blockKey, ttlFor } from '../contract/table-keys.js';
import type { PlainAttribute } from './dynamodb-item-size.js';

/** The stored item of one encoded part. */
export function blockItem(
  block: Block,
  data: Uint8Array,
  retentionHours: number,
): Record<string, PlainAttribute> {
  let lastSecond = 0;
  for (const e of block.endpoints) lastSecond = Math.max(lastSecond, e.lastSecond);
  const lastMs = block.minute * 60_000 + lastSecond * 1000 + 999;
  return {
    ...blockKey(block.service, block.minute, block.agentId, block.seq, block.part),
    [BLOCK_ATTRIBUTES.data]: data,
    [BLOCK_ATTRIBUTES.hash]: blockHash(data),
    service: block.service,
    agentId: block.agentId,
    host: block.host,
    minute: block.minute,
    n: block.endpoints.length,
    lastMs,
    ttl: ttlFor(lastMs, retentionHours),
  };
}
