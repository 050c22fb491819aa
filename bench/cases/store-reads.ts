/**
 * Store reads: read units per answer of the real query routes (clients,
 * count, services, client/{ip}, host/{host}) over a 5-minute window, for a
 * service with N active endpoints, from sealed blocks put into dynalite in
 * the layout the aggregate function writes (agents of 1,000 endpoints, one
 * main part per agent-minute). Units are what dynalite meters for each Query
 * (ReturnConsumedCapacity, metered like DynamoDB), summed by the reader.
 * The largest fleet is extrapolated linearly from the largest measured one.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { AGENT_BLOCK_QUALITY, encodeBlock, sealParts } from '../../contract/block-codec.js';
import { DEFAULTS, RESOURCE_NAMES } from '../../contract/resources.js';
import { agentKey, serviceKey, ttlFor } from '../../contract/table-keys.js';
import { CursorCodec } from '../../functions/query/cursor.js';
import { handleRequest } from '../../functions/query/query.js';
import type { ReadCost } from '../../functions/store/block-reader.js';
import { blockItem } from '../block-item.js';
import { type BenchCase, type Figure, plain } from '../harness.js';
import { documentClient, prepareHandlerEnvironment, startStoreChild } from '../store-harness.js';
import { syntheticHostMinute } from '../synthetic-flows.js';

const ENDPOINTS_PER_AGENT = 1_000;
const WINDOW_MINUTES = DEFAULTS.activeWindowSeconds / 60;

async function putAll(
  doc: DynamoDBDocumentClient,
  table: string,
  items: Record<string, unknown>[],
) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const chunk = items.slice(next, next + 25);
      next += 25;
      let pending = chunk.map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 20) throw new Error('BatchWriteItem keeps returning unprocessed items');
        const out = await doc.send(new BatchWriteCommand({ RequestItems: { [table]: pending } }));
        pending = (out.UnprocessedItems?.[table] ?? []) as typeof pending;
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

/** Blocks of `service` for `agents` agents over the window's minutes ending at `lastMinute`. */
function serviceItems(service: string, agents: number, lastMinute: number) {
  const items: Record<string, unknown>[] = [];
  const firstIp: string[] = [];
  for (let a = 0; a < agents; a++) {
    const agentId = `i-0bench${service}${String(a).padStart(6, '0')}`;
    const host = `ip-10-1-${a >> 8}-${a & 255}.${service}`;
    for (let m = lastMinute - WINDOW_MINUTES + 1; m <= lastMinute; m++) {
      const h = syntheticHostMinute({ endpoints: ENDPOINTS_PER_AGENT, minute: m, seed: 1000 + a });
      const endpoints = [...h.byService.values()].flat();
      if (m === lastMinute && a === 0) firstIp.push(endpoints[0]!.ip);
      for (const part of sealParts({ agentId, host, service, minute: m, seq: m * 10 }, endpoints)) {
        items.push(
          blockItem(part, encodeBlock(part, AGENT_BLOCK_QUALITY), DEFAULTS.retentionHours),
        );
      }
    }
    const now = lastMinute * 60_000 + 59_000;
    items.push({
      ...agentKey(agentId),
      agentId,
      host,
      lastHeartbeat: now,
      flows: ENDPOINTS_PER_AGENT,
      dropped: 0,
      spooled: 0,
      ttl: ttlFor(now, DEFAULTS.retentionHours),
    });
  }
  const last = lastMinute * 60_000 + 59_000;
  items.push({
    ...serviceKey(service),
    service,
    firstSeen: last - 3_600_000,
    lastSeen: last,
    ttl: ttlFor(last, DEFAULTS.retentionHours),
  });
  return {
    items,
    ip: firstIp[0]!,
    host: `ip-10-1-0-0.${service}`,
  };
}

export const storeReads: BenchCase = {
  id: 'store-reads',
  title: 'read units per query type on the block store',
  async run({ quick, log }) {
    prepareHandlerEnvironment();
    const sizes = quick ? [1_000, 10_000] : [1_000, 100_000];
    const store = await startStoreChild();
    try {
      const table = store.endpoints.tableName;
      const doc = documentClient(store.endpoints.dynamodbEndpoint);
      const lastMinute = Math.floor(Date.now() / 60_000);
      const now = lastMinute * 60_000 + 59_500;
      let costs: { path: string; cost: ReadCost }[] = [];
      const deps = {
        reader: { doc, table },
        cursors: new CursorCodec('bench-cursor-key'),
        activeWindowSeconds: DEFAULTS.activeWindowSeconds,
        logger: new Logger({ serviceName: RESOURCE_NAMES.powertoolsService, logLevel: 'ERROR' }),
        now: () => now,
        onCost: (path: string, cost: ReadCost) => costs.push({ path, cost: { ...cost } }),
      };
      const get = async (rawPath: string, query: Record<string, string> = {}) => {
        costs = [];
        const event = {
          version: '2.0',
          rawPath,
          rawQueryString: new URLSearchParams(query).toString(),
          queryStringParameters: query,
          headers: {},
          requestContext: { http: { method: 'GET', path: rawPath } },
        } as unknown as APIGatewayProxyEventV2;
        const res = await handleRequest(event, deps);
        if (res.statusCode !== 200)
          throw new Error(`GET ${rawPath}: ${res.statusCode} ${res.body}`);
        const units = costs.reduce((s, c) => s + c.cost.readUnits, 0);
        return { units, body: JSON.parse(String(res.body)) as Record<string, unknown> };
      };
      const figures: Figure[] = [];
      const perEndpoint: Record<string, number> = {};
      for (const n of sizes) {
        const service = `svc${n}`;
        const agents = Math.max(1, Math.round(n / ENDPOINTS_PER_AGENT));
        const { items, ip, host } = serviceItems(service, agents, lastMinute);
        const t0 = performance.now();
        await putAll(doc, table, items);
        log(
          `${service}: ${items.length} items in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
        );
        const label = `${n.toLocaleString('en-US')}-endpoint service (${agents} agent${agents === 1 ? '' : 's'})`;
        const count = await get(`/v1/services/${service}/count`);
        const clients = await get(`/v1/services/${service}/clients`, { limit: '100' });
        const services = await get('/v1/services');
        const client = await get(`/v1/clients/${encodeURIComponent(ip)}`);
        const hostAnswer = await get(`/v1/hosts/${encodeURIComponent(host)}/clients`, {
          limit: '100',
        });
        const note = `${WINDOW_MINUTES} minutes x ${agents} agents' main parts; eventually consistent Queries, units metered by dynalite`;
        for (const [name, r] of [
          ['count', count],
          ['clients (first page of 100)', clients],
          ['services', services],
          ['client/{ip}', client],
          ['host/{host}', hostAnswer],
        ] as const) {
          figures.push(plain(`read units, ${name}, ${label}`, 'RRU', [r.units], { note }));
          if (n === sizes[sizes.length - 1]) perEndpoint[name] = r.units / n;
        }
        log(`${label}: count answered ${JSON.stringify(count.body).slice(0, 120)}`);
      }
      // 1M endpoints: linear in the bytes read, from the largest measured service.
      const big = sizes[sizes.length - 1]!;
      for (const name of ['count', 'clients (first page of 100)', 'client/{ip}'] as const) {
        figures.push(
          plain(
            `read units, ${name}, 1,000,000-endpoint service (1,000 agents)`,
            'RRU',
            [perEndpoint[name]! * 1_000_000],
            {
              note: `EXTRAPOLATED linearly from the measured ${big.toLocaleString('en-US')}-endpoint service (the window's parts are read whole, so units follow bytes); not measured`,
            },
          ),
        );
      }
      return figures;
    } finally {
      await store.stop();
    }
  },
};
