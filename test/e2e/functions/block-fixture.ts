/**
 * Puts store items as the aggregate function lays them out: block parts by
 * content (the item from its blockPut), services-list, agents-list and
 * late-mark items. Lets the read side be tested without Kinesis.
 */
import { type DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { type Block, type BlockEndpoint, MINUTE_MS } from '../../../contract/block.js';
import {
  type BlockHead,
  blockHash,
  encodeBlock,
  sealParts,
} from '../../../contract/block-codec.js';
import { BLOCK_ATTRIBUTES } from '../../../contract/resources.js';
import { agentKey, blockKey, lateKey, serviceKey, ttlFor } from '../../../contract/table-keys.js';
import { blockPut, putBlock } from '../../../functions/store/item-writer.js';

/** Where fixture items go. */
export interface FixtureTarget {
  doc: DynamoDBDocumentClient;
  table: string;
  retentionHours?: number;
}

/** A client endpoint with defaults for what a test does not care about. */
export function endpoint(
  over: Partial<BlockEndpoint> & Pick<BlockEndpoint, 'ip' | 'port'>,
): BlockEndpoint {
  return {
    localIp: '192.0.2.1',
    localPort: 5000,
    pktsIn: 1,
    bytesIn: 100,
    pktsOut: 1,
    bytesOut: 50,
    firstSecond: 0,
    lastSecond: 0,
    source: 'hook',
    sampleRate: 1,
    ...over,
  };
}

/** Seals one agent's endpoints of one service-minute into parts, as the agent does. */
export function seal(head: BlockHead, endpoints: BlockEndpoint[]): Block[] {
  return sealParts(head, endpoints);
}

/** Latest packet of a part, epoch ms (start of the second). */
export function lastMsOf(block: Block): number {
  const last = Math.max(0, ...block.endpoints.map((e) => e.lastSecond));
  return block.minute * MINUTE_MS + last * 1000;
}

/** Puts one part by content, as the aggregate function does: 'stored', or 'conflict' (then kept aside). */
export function putPart(t: FixtureTarget, block: Block): Promise<'stored' | 'conflict'> {
  const retentionHours = t.retentionHours ?? 24;
  return putBlock(
    { doc: t.doc, table: t.table, retentionHours },
    blockPut(encodeBlock(block), block, retentionHours),
  );
}

/** Puts raw bytes under a block key (a corrupt or foreign part). */
export async function putRawPart(
  t: FixtureTarget,
  key: { service: string; minute: number; agentId: string; seq: number; part: number },
  data: Uint8Array,
): Promise<void> {
  await t.doc.send(
    new PutCommand({
      TableName: t.table,
      Item: {
        ...blockKey(key.service, key.minute, key.agentId, key.seq, key.part),
        [BLOCK_ATTRIBUTES.data]: data,
        [BLOCK_ATTRIBUTES.hash]: blockHash(data),
        service: key.service,
        agentId: key.agentId,
        minute: key.minute,
      },
    }),
  );
}

/** Puts (or refreshes) a services-list item. */
export async function putService(
  t: FixtureTarget,
  service: string,
  firstSeen: number,
  lastSeen: number,
): Promise<void> {
  await t.doc.send(
    new PutCommand({
      TableName: t.table,
      Item: {
        ...serviceKey(service),
        service,
        firstSeen,
        lastSeen,
        ttl: ttlFor(lastSeen, t.retentionHours ?? 24),
      },
    }),
  );
}

/** Puts an agents-list item as a heartbeat would leave it. */
export async function putAgent(
  t: FixtureTarget,
  agentId: string,
  host: string,
  lastHeartbeat: number,
  dropped = 0,
): Promise<void> {
  await t.doc.send(
    new PutCommand({
      TableName: t.table,
      Item: {
        ...agentKey(agentId),
        agentId,
        host,
        lastHeartbeat,
        flows: 0,
        dropped,
        spooled: 0,
        sources: ['hook'],
        ttl: ttlFor(lastHeartbeat, t.retentionHours ?? 24),
      },
    }),
  );
}

/** Puts the mark that a service-minute got a block after it was summarized. */
export async function putLateMark(
  t: FixtureTarget,
  service: string,
  minute: number,
  at: number,
): Promise<void> {
  await t.doc.send(
    new PutCommand({
      TableName: t.table,
      Item: { ...lateKey(service, minute), service, minute, at, ttl: ttlFor(at, 24) },
    }),
  );
}
