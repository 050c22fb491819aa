/**
 * The bucketed, keys-only indexes against dynalite, with data written by the
 * aggregate handler: a client last seen just before `since` but in the same
 * bucket is neither listed nor counted, pagination over several buckets and
 * every shard lists each active client once, listings carry the full items
 * (fetched by BatchGetItem, since the index holds keys only), unprocessed
 * BatchGetItem keys are retried, and an item's bucket follows its lastSeen.
 */
import { GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE } from '../../../contract/resources.js';
import {
  ACTIVITY_BUCKET_MS,
  activityBucket,
  activityKey,
  clientShard,
  endpointKey,
  serviceActivityPartition,
  WRITE_SHARDS,
} from '../../../contract/table-keys.js';
import { createAggregateHandler } from '../../../functions/aggregate/handler.js';
import { countAll } from '../../../functions/metrics/active-counts.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { createDocumentClient } from '../../../functions/store/document-client.js';
import { getItems } from '../../../functions/store/item-reader.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { type FaultProxy, startFaultProxy } from '../../../local/fault-proxy.js';
import {
  AgentSeq,
  agentRecords,
  apiEvent,
  body,
  ctx,
  type FlowInput,
  flow,
  freshTable,
  localConfig,
  rawRecord,
  useLocalCredentials,
} from './harness.js';

const B = ACTIVITY_BUCKET_MS;
const T0 = 1_800_000_000_000; // a bucket start
const NOW = T0 + 10 * B + 100_000;
const WINDOW = 300;
const SINCE = NOW - WINDOW * 1000; // T0 + 9B + 100 s: inside bucket T0 + 9B
const SERVICE = 'edge';

let emu: Emulators;
let table: string;
let query: ReturnType<typeof createQueryHandler>;
let aggregate: ReturnType<typeof createAggregateHandler>;
const lines: FlowInput[] = [];
const seq = new AgentSeq();

function ipOf(i: number): string {
  return `198.51.100.${i + 1}`;
}

/** Sends lines through the aggregate handler as one batch of agent `agentId`. */
async function ingest(agentId: string, batch: FlowInput[], s = seq): Promise<void> {
  const records = agentRecords(agentId, batch, s);
  const res = await aggregate(
    { Records: records.map((r, i) => rawRecord(r.data, String(i + 1), r.partitionKey)) },
    ctx(),
  );
  expect(res).toEqual({ batchItemFailures: [] });
}

beforeAll(async () => {
  useLocalCredentials();
  emu = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  table = await freshTable(emu.dynamodb);
  aggregate = createAggregateHandler(localConfig(table, emu.dynamodbEndpoint));
  query = createQueryHandler(localConfig(table, emu.dynamodbEndpoint), { now: () => NOW });
  const at = (i: number, lastSeen: number) =>
    flow({
      agentId: 'agent-a',
      service: SERVICE,
      remoteIp: ipOf(i),
      remotePort: 20_000 + i,
      firstSeen: T0,
      lastSeen,
      pktsIn: 1000 + i,
      bytesIn: 7 * i,
    });
  // i 0..39: the bucket holding `since`, 5 s apart from its start; 0..19 went
  // quiet before `since`, 20 is seen exactly at `since`, 21..39 after it.
  for (let i = 0; i < 40; i++) lines.push(at(i, T0 + 9 * B + i * 5000));
  // i 40..59: the current bucket.
  for (let i = 40; i < 60; i++) lines.push(at(i, T0 + 10 * B + (i - 40) * 5000));
  // i 60: 1 ms before `since`; i 61: a bucket earlier than `since`'s.
  lines.push(at(60, SINCE - 1), at(61, T0 + 8 * B + 250_000));
  await ingest('agent-a', lines);
});

afterAll(async () => {
  await emu?.stop();
});

const activeIndexes = () => [...Array.from({ length: 40 }, (_, k) => 20 + k)];

async function allPages(path: string, limit: number, extra: Record<string, string> = {}) {
  const pages: Record<string, unknown>[][] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 100; i++) {
    const res: Awaited<ReturnType<typeof query>> = await query(
      apiEvent(path, {
        ...extra,
        limit: String(limit),
        window: String(WINDOW),
        ...(cursor ? { cursor } : {}),
      }),
      ctx(),
    );
    expect(res.statusCode).toBe(200);
    const b: { clients: Record<string, unknown>[]; nextCursor: string | null } = body<{
      clients: Record<string, unknown>[];
      nextCursor: string | null;
    }>(res);
    pages.push(b.clients);
    cursor = b.nextCursor;
    if (!cursor) return pages;
  }
  throw new Error('pagination did not end');
}

describe('bucketed keys-only indexes', () => {
  it('the data spans three buckets and every shard', () => {
    const buckets = new Set(lines.map((l) => activityBucket(l.lastSeen)));
    expect([...buckets].sort()).toEqual([T0 + 8 * B, T0 + 9 * B, T0 + 10 * B]);
    expect(activityBucket(SINCE)).toBe(activityBucket(SINCE - 1));
    expect(new Set(lines.map((l) => clientShard(SERVICE, l.remoteIp))).size).toBe(WRITE_SHARDS);
  });

  it('the index holds keys only; listings return the whole item, counters included', async () => {
    const doc = createDocumentClient({ endpoint: emu.dynamodbEndpoint });
    const shard = clientShard(SERVICE, ipOf(45));
    const out = await doc.send(
      new QueryCommand({
        TableName: table,
        IndexName: TABLE.indexes[0].name,
        KeyConditionExpression: '#p = :p',
        ExpressionAttributeNames: { '#p': TABLE.indexes[0].partitionKey.name },
        ExpressionAttributeValues: { ':p': serviceActivityPartition('endpoint', SERVICE, shard) },
      }),
    );
    expect(out.Items!.length).toBeGreaterThan(0);
    for (const entry of out.Items!) {
      expect(Object.keys(entry).sort()).toEqual(['activeKey', 'gsi1pk', 'pk', 'sk']);
    }
    const listed = (await allPages(`/v1/services/${SERVICE}/clients`, 1000)).flat();
    const one = listed.find((c) => c.port === 20_045);
    expect(one).toMatchObject({
      ip: ipOf(45),
      pktsIn: 1045,
      bytesIn: 7 * 45,
      firstSeen: T0,
      lastSeen: T0 + 10 * B + 25_000,
      hosts: ['host-agent-a'],
      sources: ['hook'],
    });
  });

  it('lists each active endpoint once over pages across buckets and shards, never one seen before since', async () => {
    const pages = await allPages(`/v1/services/${SERVICE}/clients`, 7);
    expect(pages.every((p) => p.length <= 7)).toBe(true);
    const all = pages.flat();
    expect(all.map((c) => c.port).sort()).toEqual(activeIndexes().map((i) => 20_000 + i));
    expect(all.every((c) => (c.lastSeen as number) >= SINCE)).toBe(true);
    // Within a page exactly newest first; a page's oldest bucket is not older
    // than the next page's newest.
    for (const [k, page] of pages.entries()) {
      const seen = page.map((c) => c.lastSeen as number);
      expect(seen).toEqual([...seen].sort((a, b) => b - a));
      const next = pages[k + 1];
      if (page.length > 0 && next && next.length > 0) {
        expect(activityBucket(Math.min(...seen))).toBeGreaterThanOrEqual(
          activityBucket(Math.max(...next.map((c) => c.lastSeen as number))),
        );
      }
    }
    // The current bucket's 20 clients come first, the older bucket's after.
    expect(
      all.slice(0, 20).every((c) => activityBucket(c.lastSeen as number) === T0 + 10 * B),
    ).toBe(true);
  });

  it('spreads a page over the shards instead of draining one shard first', async () => {
    const [first] = await allPages(`/v1/services/${SERVICE}/clients`, 8);
    const shards = new Set(first!.map((c) => clientShard(SERVICE, c.ip as string)));
    expect(first).toHaveLength(8);
    expect(shards.size).toBeGreaterThanOrEqual(4);
  });

  it("by IP and a host's clients: the same active set", async () => {
    const ips = (await allPages(`/v1/services/${SERVICE}/clients`, 6, { by: 'ip' })).flat();
    const byIp = ips.map((c) => c.ip as string).sort();
    expect(byIp).toEqual(activeIndexes().map(ipOf).sort());
    const host = (await allPages('/v1/hosts/host-agent-a/clients', 9)).flat();
    expect(host.map((c) => c.ip as string).sort()).toEqual(activeIndexes().map(ipOf).sort());
  });

  it('counts exactly: the count endpoint and the metrics function leave out the boundary bucket’s quiet clients', async () => {
    const count = body(
      await query(apiEvent(`/v1/services/${SERVICE}/count`, { window: String(WINDOW) }), ctx()),
    );
    expect(count).toMatchObject({ endpoints: 40, ips: 40, since: SINCE });
    // `since` on a bucket start: the whole bucket counts on the index alone.
    const aligned = body(
      await query(apiEvent(`/v1/services/${SERVICE}/count`, { window: String(400) }), ctx()),
    );
    // since = T0 + 9B + 0: i 0..59 (60) are active, 60 too (T0 + 9B + 99.999 s), 61 is not.
    expect(NOW - 400_000).toBe(T0 + 9 * B);
    expect(aligned).toMatchObject({ endpoints: 61, ips: 61 });
    const metrics = await countAll(
      { doc: createDocumentClient({ endpoint: emu.dynamodbEndpoint }), table },
      NOW,
      WINDOW,
    );
    expect(metrics.services.find((s) => s.service === SERVICE)).toEqual({
      service: SERVICE,
      activeClients: 40,
      activeClientIps: 40,
    });
  });

  it('GET /v1/clients/{ip}: a client quiet since 1 ms before since is not listed; an active one is, whole', async () => {
    const quiet = body<{ services: unknown[] }>(
      await query(apiEvent(`/v1/clients/${ipOf(60)}`, { window: String(WINDOW) }), ctx()),
    );
    expect(quiet.services).toEqual([]);
    const active = body<{ services: Record<string, unknown>[] }>(
      await query(apiEvent(`/v1/clients/${ipOf(20)}`, { window: String(WINDOW) }), ctx()),
    );
    expect(active.services).toEqual([
      expect.objectContaining({ service: SERVICE, lastSeen: SINCE, pktsIn: 1020 }),
    ]);
  });

  it('retries BatchGetItem keys left unprocessed, and fails clearly when they never are', async () => {
    const proxy: FaultProxy = await startFaultProxy({ target: emu.dynamodbEndpoint });
    try {
      const doc = createDocumentClient({ endpoint: proxy.url, maxAttempts: 1 });
      const reader = { doc, table, retryDelayMs: 1 };
      const keys = lines.map((l) => endpointKey(SERVICE, l.remoteIp, l.remotePort));
      proxy.setFaults([{ operation: 'BatchGetItem', kind: 'partialBatchGetItem', count: 3 }]);
      const found = await getItems(reader, keys);
      expect(found.size).toBe(lines.length);
      expect(proxy.stats.injected).toBe(3);
      expect(proxy.stats.byOperation['DynamoDB_20120810.BatchGetItem']).toBeGreaterThan(3);
      proxy.setFaults([
        { operation: 'BatchGetItem', kind: 'partialBatchGetItem', failFraction: 1 },
      ]);
      await expect(getItems(reader, keys.slice(0, 5))).rejects.toThrow(
        /5 keys still unprocessed after 8 attempts/,
      );
    } finally {
      await proxy.stop();
    }
  });

  it('an item’s bucket moves with its lastSeen, only forward, and only when the bucket changes', async () => {
    const doc = createDocumentClient({ endpoint: emu.dynamodbEndpoint });
    const key = endpointKey('moving', '203.0.113.9', 4000);
    const line = (agentId: string, lastSeen: number) =>
      flow({ agentId, service: 'moving', remoteIp: '203.0.113.9', remotePort: 4000, lastSeen });
    const read = async () =>
      (await doc.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))).Item!;
    const s = new AgentSeq();
    const steps: [string, number, number, number][] = [
      // agent, lastSeen sent, lastSeen expected, bucket expected
      ['m1', T0 + 10_000, T0 + 10_000, T0],
      ['m1', T0 + 200_000, T0 + 200_000, T0],
      ['m1', T0 + B - 1, T0 + B - 1, T0],
      ['m1', T0 + B, T0 + B, T0 + B],
      // Another agent's older report moves neither lastSeen nor the bucket back.
      ['m2', T0 + 5_000, T0 + B, T0 + B],
      ['m1', T0 + 2 * B + 1, T0 + 2 * B + 1, T0 + 2 * B],
    ];
    for (const [agentId, sent, lastSeen, bucket] of steps) {
      await ingest(agentId, [line(agentId, sent)], agentId === 'm1' ? s : new AgentSeq());
      const item = await read();
      expect({
        lastSeen: item.lastSeen,
        activeBucket: item.activeBucket,
        activeKey: item.activeKey,
      }).toEqual({
        lastSeen,
        activeBucket: bucket,
        activeKey: activityKey(bucket, item.pk, item.sk),
      });
    }
    expect((await read()).pktsIn).toBe(steps.length);
  });
});
