/**
 * Counts the active clients of every service and the agents reporting, and
 * stores the counts on the services list. Cost: two COUNT queries per shard
 * per active service, plus one read of the services and agents lists; it
 * grows with services x shards (and the active items counted), never with
 * every client ever seen.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { allShards, serviceActivityPartition, serviceKey } from '../../contract/table-keys.js';
import { countActive, type ReaderOptions, readAgents, readServices } from '../store/item-reader.js';

/** The counts of one service. */
export interface ServiceCounts {
  service: string;
  activeClients: number;
  activeClientIps: number;
}

/** What one run counted. */
export interface ActiveCounts {
  now: number;
  since: number;
  services: ServiceCounts[];
  agentsReporting: number;
}

/** Counts active endpoints and IPs per service (0 without a query for services idle past the window). */
export async function countAll(
  reader: ReaderOptions,
  now: number,
  windowSeconds: number,
): Promise<ActiveCounts> {
  const since = now - windowSeconds * 1000;
  const [services, agents] = await Promise.all([readServices(reader), readAgents(reader)]);
  const counted = await Promise.all(
    services.map(async (item): Promise<ServiceCounts & { stored: unknown[] }> => {
      const service = String(item.service);
      const stored = [item.activeClients, item.activeClientIps];
      if (typeof item.lastSeen !== 'number' || item.lastSeen < since) {
        return { service, activeClients: 0, activeClientIps: 0, stored };
      }
      const shards = allShards();
      const [activeClients, activeClientIps] = await Promise.all([
        countActive(
          reader,
          shards.map((s) => serviceActivityPartition('endpoint', service, s)),
          since,
        ),
        countActive(
          reader,
          shards.map((s) => serviceActivityPartition('ip', service, s)),
          since,
        ),
      ]);
      return { service, activeClients, activeClientIps, stored };
    }),
  );
  await Promise.all(
    counted
      // An unchanged count is not rewritten: idle services cost no writes.
      .filter((c) => c.stored[0] !== c.activeClients || c.stored[1] !== c.activeClientIps)
      .map((c) => storeCounts(reader, c, now)),
  );
  const agentsReporting = agents.filter(
    (a) => typeof a.lastHeartbeat === 'number' && a.lastHeartbeat >= since,
  ).length;
  return {
    now,
    since,
    services: counted.map(({ service, activeClients, activeClientIps }) => ({
      service,
      activeClients,
      activeClientIps,
    })),
    agentsReporting,
  };
}

/** Writes a service's counts onto its services-list item (never creating one TTL removed). */
async function storeCounts(
  reader: ReaderOptions,
  counts: ServiceCounts,
  now: number,
): Promise<void> {
  try {
    await reader.doc.send(
      new UpdateCommand({
        TableName: reader.table,
        Key: serviceKey(counts.service),
        UpdateExpression: 'SET activeClients = :c, activeClientIps = :i, countsAt = :at',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: {
          ':c': counts.activeClients,
          ':i': counts.activeClientIps,
          ':at': now,
        },
      }),
    );
  } catch (err) {
    if (!(err instanceof Error && err.name === 'ConditionalCheckFailedException')) throw err;
  }
}
