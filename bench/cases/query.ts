/**
 * Query: p50/p95 latency of the clients query (GET /v1/services/{s}/clients
 * through the local HTTP API adapter and the real query handler, dynalite in
 * another process), first page and a full walk with cursors, for a service
 * with N active clients, against a service with the same N active clients
 * plus 10×N expired-but-not-yet-deleted items in the same table. Requests to
 * the two services alternate, so both see the same machine.
 *
 * Items are written directly in the layout of contract/table-keys.ts.
 */
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  activityBucket,
  activityKey,
  clientShard,
  endpointKey,
  serviceActivityPartition,
  ttlFor,
} from '../../contract/table-keys.js';
import { startApiServer } from '../../local/api-gateway-adapter.js';
import { dynamodbClient } from '../../local/aws-clients.js';
import { type BenchCase, compared, plain } from '../harness.js';
import { percentile } from '../percentile.js';
import { prepareHandlerEnvironment, startStoreChild } from '../store-harness.js';
import { seededRandom } from '../synthetic-flows.js';

const AGENT = 'i-0bench0query000001';

/** An endpoint item of `service` as the aggregator writes it. */
function endpointItem(service: string, index: number, lastSeen: number, rand: () => number) {
  const ip = `${[198, 203, 100, 45][index % 4]}.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`;
  const port = 1024 + Math.floor(rand() * 64_000);
  const key = endpointKey(service, ip, port);
  const pkts = 1 + Math.floor(rand() * 5000);
  return {
    ...key,
    gsi1pk: serviceActivityPartition('endpoint', service, clientShard(service, ip)),
    kind: 'endpoint',
    service,
    ip,
    port,
    firstSeen: lastSeen - Math.floor(rand() * 3_600_000),
    lastSeen,
    activeBucket: activityBucket(lastSeen),
    activeKey: activityKey(activityBucket(lastSeen), key.pk, key.sk),
    pktsIn: pkts,
    bytesIn: pkts * 90,
    pktsOut: pkts,
    bytesOut: pkts * 600,
    hosts: new Set(['ip-10-0-17-42']),
    sources: new Set(['conntrack']),
    [`applied#${AGENT}`]: 1 + index,
    ttl: ttlFor(lastSeen, 24),
  };
}

async function writeAll(
  doc: DynamoDBDocumentClient,
  table: string,
  items: Record<string, unknown>[],
) {
  const chunks: Record<string, unknown>[][] = [];
  for (let i = 0; i < items.length; i += 25) chunks.push(items.slice(i, i + 25));
  let next = 0;
  const worker = async () => {
    while (next < chunks.length) {
      let pending = chunks[next++]!.map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 20) throw new Error('BatchWriteItem keeps returning unprocessed items');
        const out = await doc.send(new BatchWriteCommand({ RequestItems: { [table]: pending } }));
        pending = (out.UnprocessedItems?.[table] ?? []) as typeof pending;
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

export const query: BenchCase = {
  id: 'query',
  title: 'clients query latency with and without expired items',
  async run({ quick, log }) {
    prepareHandlerEnvironment();
    const active = quick ? 2_000 : 10_000;
    const expiredFactor = 10;
    const samples = quick ? 20 : 60;
    const walks = quick ? 3 : 7;
    const store = await startStoreChild();
    try {
      const table = store.endpoints.tableName;
      const doc = DynamoDBDocumentClient.from(
        dynamodbClient({ endpoint: store.endpoints.dynamodbEndpoint }),
      );
      const now = Date.now();
      const rand = seededRandom(5);
      const clean = 'bench-clean';
      const stale = 'bench-stale';
      const items: Record<string, unknown>[] = [];
      // Seen within the last minute: they stay inside the 300 s window for the
      // whole run (a walk expects every one of them).
      for (let i = 0; i < active; i++) {
        items.push(endpointItem(clean, i, now - Math.floor(rand() * 60_000), rand));
        items.push(endpointItem(stale, i, now - Math.floor(rand() * 60_000), rand));
      }
      // Expired for the API (older than the 300 s window), not yet deleted by TTL.
      for (let i = 0; i < active * expiredFactor; i++) {
        items.push(
          endpointItem(
            stale,
            active + i,
            now - 600_000 - Math.floor(rand() * 20 * 3_600_000),
            rand,
          ),
        );
      }
      const t0 = performance.now();
      await writeAll(doc, table, items);
      log(`loaded ${items.length} items in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

      const { createQueryHandler } = await import('../../functions/query/handler.js');
      const handler = createQueryHandler({
        table,
        activeWindowSeconds: 300,
        retentionHours: 24,
        cursorKey: 'bench-cursor-key',
        dynamodbEndpoint: store.endpoints.dynamodbEndpoint,
      });
      const api = await startApiServer({ handler: handler as never, onError: () => {} });
      try {
        const get = async (path: string) => {
          const t = performance.now();
          const res = await fetch(`${api.url}${path}`);
          const body = (await res.json()) as {
            clients?: unknown[];
            nextCursor?: string | null;
            detail?: string;
          };
          if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${body.detail ?? ''}`);
          return { ms: performance.now() - t, body };
        };
        const firstPage = (service: string) =>
          get(`/v1/services/${service}/clients?window=300&limit=100`);
        const walk = async (service: string) => {
          let ms = 0;
          let seen = 0;
          let pages = 0;
          let cursor: string | null | undefined;
          do {
            const q = `/v1/services/${service}/clients?window=300&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
            const r = await get(q);
            ms += r.ms;
            seen += r.body.clients?.length ?? 0;
            pages++;
            cursor = r.body.nextCursor;
            if (pages > active) throw new Error('cursor walk does not end');
          } while (cursor);
          if (seen !== active)
            throw new Error(`walk of ${service} saw ${seen} clients, expected ${active}`);
          return { ms, pages };
        };
        await firstPage(clean);
        await firstPage(stale);
        const firstClean: number[] = [];
        const firstStale: number[] = [];
        for (let i = 0; i < samples; i++) {
          if (i % 2 === 0) {
            firstClean.push((await firstPage(clean)).ms);
            firstStale.push((await firstPage(stale)).ms);
          } else {
            firstStale.push((await firstPage(stale)).ms);
            firstClean.push((await firstPage(clean)).ms);
          }
        }
        const walkClean: number[] = [];
        const walkStale: number[] = [];
        let pages = 0;
        for (let i = 0; i < walks; i++) {
          const a = i % 2 === 0 ? await walk(clean) : undefined;
          const b = await walk(stale);
          const c = a ?? (await walk(clean));
          walkClean.push(c.ms);
          walkStale.push(b.ms);
          pages = c.pages;
        }
        const label = `${active.toLocaleString('en-US')} active clients`;
        const note = `${(active * expiredFactor).toLocaleString('en-US')} expired items in the same service's partitions`;
        return [
          compared(
            `clients query, first page (100), p50, ${label}`,
            'ms',
            [percentile(firstStale, 50)],
            'no expired items',
            [percentile(firstClean, 50)],
            'lower',
            { goal: '≈ 1×', note },
          ),
          compared(
            `clients query, first page (100), p95, ${label}`,
            'ms',
            [percentile(firstStale, 95)],
            'no expired items',
            [percentile(firstClean, 95)],
            'lower',
            { goal: '≈ 1×', note },
          ),
          plain(`first page latency spread, with expired items`, 'ms', firstStale),
          compared(
            `full walk with cursors (${pages} pages of 1,000), p50`,
            'ms',
            [percentile(walkStale, 50)],
            'no expired items',
            [percentile(walkClean, 50)],
            'lower',
            { goal: '≈ 1×', note },
          ),
          compared(
            `full walk with cursors (${pages} pages of 1,000), p95`,
            'ms',
            [percentile(walkStale, 95)],
            'no expired items',
            [percentile(walkClean, 95)],
            'lower',
            { goal: '≈ 1×' },
          ),
        ];
      } finally {
        await api.stop();
      }
    } finally {
      await store.stop();
    }
  },
};
