/**
 * The aggregate function's writes. Block parts are immutable items put by
 * content: the condition `attribute_not_exists(pk) OR h = :h` lets a retry,
 * replay or re-send overwrite identical bytes and nothing else, so no write
 * needs to know what was written before. The small list items (agents,
 * services) and late marks are "newest wins" or idempotent.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { type Block, MINUTE_MS } from '../../contract/block.js';
import { blockHash } from '../../contract/block-codec.js';
import { BLOCK_ATTRIBUTES } from '../../contract/resources.js';
import {
  agentKey,
  blockKey,
  conflictKey,
  type ItemKey,
  lateKey,
  serviceKey,
  ttlFor,
} from '../../contract/table-keys.js';
import type { HeartbeatLine } from '../../contract/wire.js';

/** Where and how the writer writes. */
export interface WriterOptions {
  doc: DynamoDBDocumentClient;
  table: string;
  retentionHours: number;
}

/** A block part ready to put: its key, its attributes and what the batch needs to know about it. */
export interface BlockPut {
  key: ItemKey;
  item: Record<string, unknown>;
  hash: string;
  service: string;
  minute: number;
  /** Epoch ms of the first and last packet in the part (second resolution). */
  firstMs: number;
  lastMs: number;
}

/** The stored item of one block part whose record bytes are `data` (kept exactly as received). */
export function blockPut(data: Uint8Array, block: Block, retentionHours: number): BlockPut {
  const key = blockKey(block.service, block.minute, block.agentId, block.seq, block.part);
  const start = block.minute * MINUTE_MS;
  let first = 59;
  let last = 0;
  for (const e of block.endpoints) {
    first = Math.min(first, e.firstSecond);
    last = Math.max(last, e.lastSecond);
  }
  if (block.endpoints.length === 0) first = 0;
  const lastMs = start + last * 1000;
  const hash = blockHash(data);
  return {
    key,
    hash,
    service: block.service,
    minute: block.minute,
    firstMs: start + first * 1000,
    lastMs,
    item: {
      ...key,
      [BLOCK_ATTRIBUTES.data]: data,
      [BLOCK_ATTRIBUTES.hash]: hash,
      service: block.service,
      agentId: block.agentId,
      host: block.host,
      minute: block.minute,
      n: block.endpoints.length,
      lastMs,
      ttl: ttlFor(lastMs, retentionHours),
    },
  };
}

function isConditionFailure(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err instanceof Error && err.name === 'ConditionalCheckFailedException')
  );
}

/**
 * Puts a block part by content. Returns 'stored' when the key is new or
 * already holds these bytes, 'conflict' when it holds other bytes: then the
 * part is kept under its conflict key instead, never overwriting the first.
 */
export async function putBlock(
  options: WriterOptions,
  put: BlockPut,
): Promise<'stored' | 'conflict'> {
  try {
    await options.doc.send(
      new PutCommand({
        TableName: options.table,
        Item: put.item,
        ConditionExpression: 'attribute_not_exists(pk) OR #h = :h',
        ExpressionAttributeNames: { '#h': BLOCK_ATTRIBUTES.hash },
        ExpressionAttributeValues: { ':h': put.hash },
      }),
    );
    return 'stored';
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
  }
  // The hash is part of the conflict key, so this put is idempotent as it stands.
  await options.doc.send(
    new PutCommand({
      TableName: options.table,
      Item: { ...put.item, ...conflictKey(put.key, put.service, put.minute, put.hash) },
    }),
  );
  return 'conflict';
}

/**
 * Marks a service-minute as having got a block after it was probably
 * summarized. `at` (the record's approximate arrival, epoch ms) and `block`
 * (the late part's sort key) make a re-put by another late block differ from
 * the mark the summarizer read, so its conditional delete leaves it.
 */
export async function putLateMark(
  options: WriterOptions,
  late: { service: string; minute: number; at: number; block: string },
): Promise<void> {
  await options.doc.send(
    new PutCommand({
      TableName: options.table,
      Item: {
        ...lateKey(late.service, late.minute),
        service: late.service,
        minute: late.minute,
        at: late.at,
        block: late.block,
        ttl: ttlFor((late.minute + 1) * MINUTE_MS, options.retentionHours),
      },
    }),
  );
}

/** Stores an agent's heartbeat (its claimed time already clamped) unless a newer one is there; false when older. */
export async function putAgentHeartbeat(
  options: WriterOptions,
  hb: HeartbeatLine,
): Promise<boolean> {
  try {
    await options.doc.send(
      new PutCommand({
        TableName: options.table,
        Item: {
          ...agentKey(hb.agentId),
          agentId: hb.agentId,
          host: hb.host,
          lastHeartbeat: hb.at,
          flows: hb.flows,
          dropped: hb.dropped,
          spooled: hb.spooled,
          // A list, not a set: an agent may read no sources, and sets cannot be empty.
          sources: hb.sources ?? [],
          sourceStates: hb.sourceStates ?? [],
          unobserved: hb.unobserved ?? [],
          hookUnmatched: hb.hookUnmatched ?? 0,
          ttl: ttlFor(hb.at, options.retentionHours),
        },
        ConditionExpression: 'attribute_not_exists(pk) OR lastHeartbeat <= :at',
        ExpressionAttributeValues: { ':at': hb.at },
      }),
    );
    return true;
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    return false;
  }
}

/** Moves a service's lastSeen in the services list forward (never back); false when it was already later. */
export async function refreshService(
  options: WriterOptions,
  service: string,
  firstSeen: number,
  lastSeen: number,
): Promise<boolean> {
  try {
    await options.doc.send(
      new UpdateCommand({
        TableName: options.table,
        Key: serviceKey(service),
        UpdateExpression:
          'SET #service = :service, #lastSeen = :ls, #ttl = :ttl, #firstSeen = if_not_exists(#firstSeen, :fs)',
        ConditionExpression: 'attribute_not_exists(#lastSeen) OR #lastSeen < :ls',
        ExpressionAttributeNames: {
          '#service': 'service',
          '#lastSeen': 'lastSeen',
          '#firstSeen': 'firstSeen',
          '#ttl': 'ttl',
        },
        ExpressionAttributeValues: {
          ':service': service,
          ':ls': lastSeen,
          ':fs': firstSeen,
          ':ttl': ttlFor(lastSeen, options.retentionHours),
        },
      }),
    );
    return true;
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    return false;
  }
}
