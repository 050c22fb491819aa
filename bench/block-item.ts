/**
 * A block part as the store keeps it: the aggregate function's own item
 * (`blockPut`), typed for the benchmark's item-size arithmetic, so the
 * benchmark sizes and stores exactly what the aggregate function writes.
 */
import type { Block } from '../contract/block.js';
import { blockPut } from '../functions/store/item-writer.js';
import type { PlainAttribute } from './dynamodb-item-size.js';

/** The stored item of one encoded part. */
export function blockItem(
  block: Block,
  data: Uint8Array,
  retentionHours: number,
): Record<string, PlainAttribute> {
  return blockPut(data, block, retentionHours).item as Record<string, PlainAttribute>;
}
