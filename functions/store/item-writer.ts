/**
 * Writes folded batch changes to the table with conditional updates: client
 * items under the per-agent watermark (read and refold on a conflict),
 * service and agent entries as "newest wins".
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { agentKey, appliedOf, serviceKey, ttlFor } from '../../contract/table-keys.js';
import type { AgentFold, ClientFold, ServiceFold } from '../aggregate/fold.js';
import { agentGroups, buildUpdate, type ItemState, planWrite } from '../aggregate/write-plan.js';

/** Where and how the writer writes. */
export interface WriterOptions {
  doc: DynamoDBDocumentClient;
  table: string;
  retentionHours: number;
  /** Conflicts (read + refold) tolerated per item before giving up for this batch. */
  maxConflicts?: number;
}

/** Counts of what the writes did, for logs and metrics. */
export interface WriteStats {
  writes: number;
  conflicts: number;
  skipped: number;
}

function isConditionFailure(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err instanceof Error && err.name === 'ConditionalCheckFailedException')
  );
}

async function readState(options: WriterOptions, fold: ClientFold): Promise<ItemState> {
  const out = await options.doc.send(
    new GetCommand({ TableName: options.table, Key: fold.key, ConsistentRead: true }),
  );
  const item = out.Item ?? {};
  return {
    applied: appliedOf(item),
    firstSeen: typeof item.firstSeen === 'number' ? item.firstSeen : undefined,
    lastSeen: typeof item.lastSeen === 'number' ? item.lastSeen : undefined,
  };
}

/**
 * Applies one client item's fold exactly once: one conditional update per
 * group of agents; on a condition failure, reads the item, drops payloads at
 * or below its watermarks, and retries with the rest.
 */
export async function writeClientFold(
  options: WriterOptions,
  fold: ClientFold,
  stats: WriteStats,
): Promise<void> {
  const maxConflicts = options.maxConflicts ?? 5;
  for (const agents of agentGroups(fold)) {
    let known: ItemState | undefined;
    for (let conflicts = 0; ; conflicts++) {
      const plan = planWrite(fold, agents, known?.applied ?? {});
      if (!plan) {
        stats.skipped++;
        break;
      }
      try {
        await options.doc.send(
          new UpdateCommand({
            TableName: options.table,
            Key: fold.key,
            ...buildUpdate(plan, fold.key, fold.identity, options.retentionHours, known),
          }),
        );
        stats.writes++;
        break;
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
        stats.conflicts++;
        if (conflicts >= maxConflicts) {
          throw new Error(
            `item ${fold.key.pk}/${fold.key.sk}: still conflicting after ${maxConflicts} re-reads`,
          );
        }
        known = await readState(options, fold);
      }
    }
  }
}

/** Moves a service's lastSeen forward (never back); an older batch is a no-op. */
export async function writeServiceFold(
  options: WriterOptions,
  fold: ServiceFold,
  stats: WriteStats,
): Promise<void> {
  try {
    await options.doc.send(
      new UpdateCommand({
        TableName: options.table,
        Key: serviceKey(fold.service),
        UpdateExpression:
          'SET #kind = :kind, #service = :service, #lastSeen = :ls, #ttl = :ttl, #firstSeen = if_not_exists(#firstSeen, :fs)',
        ConditionExpression: 'attribute_not_exists(#lastSeen) OR #lastSeen < :ls',
        ExpressionAttributeNames: {
          '#kind': 'kind',
          '#service': 'service',
          '#lastSeen': 'lastSeen',
          '#firstSeen': 'firstSeen',
          '#ttl': 'ttl',
        },
        ExpressionAttributeValues: {
          ':kind': 'service',
          ':service': fold.service,
          ':ls': fold.lastSeen,
          ':fs': fold.firstSeen,
          ':ttl': ttlFor(fold.lastSeen, options.retentionHours),
        },
      }),
    );
    stats.writes++;
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    stats.skipped++;
  }
}

/** Stores an agent's heartbeat unless a newer one is already there. */
export async function writeAgentFold(
  options: WriterOptions,
  fold: AgentFold,
  stats: WriteStats,
): Promise<void> {
  const hb = fold.heartbeat;
  try {
    await options.doc.send(
      new UpdateCommand({
        TableName: options.table,
        Key: agentKey(hb.agentId),
        UpdateExpression:
          'SET #kind = :kind, #agentId = :agentId, #host = :host, #lastHeartbeat = :at, #lastSeen = :at, #flows = :flows, #dropped = :dropped, #spooled = :spooled, #sources = :sources, #ttl = :ttl',
        ConditionExpression: 'attribute_not_exists(#lastHeartbeat) OR #lastHeartbeat < :at',
        ExpressionAttributeNames: {
          '#kind': 'kind',
          '#agentId': 'agentId',
          '#host': 'host',
          '#lastHeartbeat': 'lastHeartbeat',
          '#lastSeen': 'lastSeen',
          '#flows': 'flows',
          '#dropped': 'dropped',
          '#spooled': 'spooled',
          '#sources': 'sources',
          '#ttl': 'ttl',
        },
        ExpressionAttributeValues: {
          ':kind': 'agent',
          ':agentId': hb.agentId,
          ':host': hb.host,
          ':at': hb.at,
          ':flows': hb.flows,
          ':dropped': hb.dropped,
          ':spooled': hb.spooled,
          // A list, not a set: an agent may read no sources, and sets cannot be empty.
          ':sources': hb.sources ?? [],
          ':ttl': ttlFor(hb.at, options.retentionHours),
        },
      }),
    );
    stats.writes++;
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    stats.skipped++;
  }
}
