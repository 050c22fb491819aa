/**
 * The query handler against dynalite, with data written by the aggregate
 * handler: sharded pagination newest first, windows, cursors that cannot be
 * forged or moved to another service, problem answers for bad requests, the
 * OpenAPI document, and one pass through the local HTTP adapter.
 */
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientShard, WRITE_SHARDS } from '../../../contract/table-keys.js';
import { createAggregateHandler } from '../../../functions/aggregate/handler.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { type ApiServer, startApiServer } from '../../../local/api-gateway-adapter.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
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

const T0 = 1_800_000_000_000;
const NOW = T0 + 100_000;

let emu: Emulators;
let query: ReturnType<typeof createQueryHandler>;
let api: ApiServer;
const big: FlowInput[] = [];

beforeAll(async () => {
  useLocalCredentials();
  emu = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  const table = await freshTable(emu.dynamodb);
  const aggregate = createAggregateHandler(localConfig(table, emu.dynamodbEndpoint));
  query = createQueryHandler(localConfig(table, emu.dynamodbEndpoint), { now: () => NOW });
  // 60 endpoints on 30 IPs of one service, last seen 1 s apart (some ties), spread over every shard.
  for (let i = 0; i < 60; i++) {
    big.push(
      flow({
        agentId: i % 2 ? 'agent-a' : 'agent-b',
        service: 'big',
        remoteIp: `198.51.100.${(i % 30) + 1}`,
        remotePort: 10_000 + i,
        firstSeen: T0,
        lastSeen: T0 + Math.floor(i / 2) * 1000 + 40_000,
        pktsIn: i,
      }),
    );
  }
  big.push(flow({ agentId: 'agent-a', service: 'small', remoteIp: '203.0.113.5', remotePort: 53 }));
  const seqs = { 'agent-a': new AgentSeq(), 'agent-b': new AgentSeq() };
  const records = (['agent-a', 'agent-b'] as const).flatMap((agentId) =>
    agentRecords(
      agentId,
      big.filter((l) => l.agentId === agentId),
      seqs[agentId],
    ),
  );
  const res = await aggregate(
    { Records: records.map((r, i) => rawRecord(r.data, String(1000 + i), r.partitionKey)) },
    ctx(),
  );
  expect(res).toEqual({ batchItemFailures: [] });
  api = await startApiServer({ handler: query, port: 0 });
});

afterAll(async () => {
  await api?.stop();
  await emu?.stop();
});

async function get(
  path: string,
  q: Record<string, string> = {},
): Promise<APIGatewayProxyStructuredResultV2> {
  return query(apiEvent(path, q), ctx());
}

async function allPages(service: string, by: string, limit: number, window = '300') {
  const pages: Record<string, unknown>[][] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 50; i++) {
    const res = await get(`/v1/services/${service}/clients`, {
      by,
      limit: String(limit),
      window,
      ...(cursor ? { cursor } : {}),
    });
    expect(res.statusCode).toBe(200);
    const b = body<{ clients: Record<string, unknown>[]; nextCursor: string | null }>(res);
    pages.push(b.clients);
    cursor = b.nextCursor;
    if (!cursor) break;
  }
  return pages;
}

describe('query API', () => {
  it('the test data really spreads over every shard', () => {
    const shards = new Set(
      big.filter((l) => l.service === 'big').map((l) => clientShard('big', l.remoteIp)),
    );
    expect(shards.size).toBe(WRITE_SHARDS);
  });

  it('pages through every active endpoint newest first, once each, across shards', async () => {
    const pages = await allPages('big', 'endpoint', 7);
    expect(pages.every((p) => p.length <= 7)).toBe(true);
    // Exactly newest first within a page; pages follow activity buckets (all
    // of this data shares one bucket: see activity-buckets.test.ts for more).
    for (const page of pages) {
      const lastSeen = page.map((c) => c.lastSeen as number);
      expect(lastSeen).toEqual([...lastSeen].sort((a, b) => b - a));
    }
    const all = pages.flat();
    const endpoints = all.map((c) => c.endpoint);
    expect(new Set(endpoints).size).toBe(60);
    expect(endpoints.sort()).toEqual(
      big
        .filter((l) => l.service === 'big')
        .map((l) => `${l.remoteIp}:${l.remotePort}`)
        .sort(),
    );
    const one = all.find((c) => c.endpoint === '198.51.100.4:10003')!;
    expect(one).toMatchObject({ pktsIn: 3, service: 'big', port: 10003, hosts: ['host-agent-a'] });
  });

  it('by=ip lists distinct IPs and a window leaves older clients out', async () => {
    const ips = (await allPages('big', 'ip', 1000)).flat();
    expect(ips).toHaveLength(30);
    // Window 40 s: since = T0 + 60 s; endpoints i with floor(i/2)*1000 + 40000 >= 60000 -> i >= 40.
    const recent = (await allPages('big', 'endpoint', 9, '40')).flat();
    expect(recent.map((c) => c.port).sort()).toEqual(
      Array.from({ length: 20 }, (_, k) => 10_040 + k),
    );
    const count = body(await get('/v1/services/big/count', { window: '40' }));
    expect(count).toMatchObject({ endpoints: 20, ips: 20, since: NOW - 40_000 });
  });

  it('an unknown service answers empty, not an error', async () => {
    const res = await get('/v1/services/nobody/clients');
    expect(res.statusCode).toBe(200);
    expect(body(res)).toMatchObject({ clients: [], nextCursor: null });
    expect(body(await get('/v1/services/nobody/count'))).toMatchObject({ endpoints: 0, ips: 0 });
  });

  it('a cursor cannot be forged, altered or used for another service, view or window', async () => {
    const first = body<{ nextCursor: string }>(
      await get('/v1/services/big/clients', { limit: '5' }),
    );
    const cursor = first.nextCursor;
    // Opaque but shaped: base64url payload, a dot, base64url signature.
    expect(cursor).toMatch(/^[\w-]+\.[\w-]+$/);
    const attempts: Record<string, string>[] = [
      { cursor: `${cursor.slice(0, 10)}${cursor[10] === 'A' ? 'B' : 'A'}${cursor.slice(11)}` },
      { cursor: 'eyJzIjoiY2xpZW50c3xzbWFsbHxlbmRwb2ludHwzMDAiLCJ0IjowLCJwIjpbXX0.AAAA' },
      { cursor: 'garbage' },
      { cursor, by: 'ip' },
      { cursor, window: '301' },
    ];
    for (const q of attempts) {
      const res = await get('/v1/services/big/clients', { limit: '5', ...q });
      expect(res.statusCode, JSON.stringify(q)).toBe(400);
      expect(body(res).parameter).toBe('cursor');
      expect(res.headers?.['content-type']).toBe('application/problem+json');
    }
    const other = await get('/v1/services/small/clients', { limit: '5', cursor });
    expect(other.statusCode).toBe(400);
    expect(String(body(other).detail)).toContain('different query');
    // The genuine cursor still works.
    expect((await get('/v1/services/big/clients', { limit: '5', cursor })).statusCode).toBe(200);
  });

  it("answers what an IP talks to, a host's clients, the services and 400s for bad parameters", async () => {
    const ip = body<{ services: Record<string, unknown>[] }>(await get('/v1/clients/198.51.100.4'));
    expect(ip.services.map((s) => s.service)).toEqual(['big']);
    expect(ip.services[0]!.pktsIn).toBe(3 + 33);
    const host = body<{ clients: Record<string, unknown>[] }>(
      await get('/v1/hosts/host-agent-a/clients', { limit: '1000' }),
    );
    // agent-a saw the odd endpoints (15 distinct IPs of "big") and one client of "small".
    expect(host.clients).toHaveLength(16);
    const services = body<{ services: Record<string, unknown>[] }>(await get('/v1/services'));
    expect(services.services.map((s) => s.service)).toEqual(['big', 'small']);

    const bad: [string, Record<string, string>, string][] = [
      ['/v1/services/big/clients', { window: '-5' }, 'window'],
      ['/v1/services/big/clients', { window: '99999999' }, 'window'],
      ['/v1/services/big/clients', { window: 'soon' }, 'window'],
      ['/v1/services/big/clients', { by: 'port' }, 'by'],
      ['/v1/services/big/clients', { limit: '0' }, 'limit'],
      ['/v1/services/big/clients', { limit: '5000' }, 'limit'],
      ['/v1/services/big/clients', { colour: 'red' }, 'colour'],
      ['/v1/services/big/count', { window: '0' }, 'window'],
      ['/v1/clients/999.1.1.1', {}, 'ip'],
      ['/v1/clients/not-an-ip', {}, 'ip'],
      ['/v1/hosts/a%20b/clients', {}, 'host'],
    ];
    for (const [path, q, parameter] of bad) {
      const res = await get(path, q);
      expect(res.statusCode, `${path} ${JSON.stringify(q)}`).toBe(400);
      const problem = body(res);
      expect(problem).toMatchObject({ status: 400, title: 'Bad Request', parameter });
      expect(String(problem.detail)).toContain(parameter);
    }
    expect((await get('/v1/nothing')).statusCode).toBe(404);
    expect((await query(apiEvent('/v1/services', {}, 'POST'), ctx())).statusCode).toBe(405);
  });

  it('serves an OpenAPI 3.1 document generated from the request schemas', async () => {
    const doc = body<{
      openapi: string;
      paths: Record<string, { get: { parameters?: Record<string, unknown>[] } }>;
    }>(await get('/v1/openapi.json'));
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/v1/agents',
        '/v1/clients/{ip}',
        '/v1/hosts/{host}/clients',
        '/v1/openapi.json',
        '/v1/services',
        '/v1/services/{service}/clients',
        '/v1/services/{service}/count',
      ].sort(),
    );
    const params = doc.paths['/v1/services/{service}/clients']!.get.parameters!;
    expect(params.map((p) => p.name)).toEqual(['service', 'window', 'by', 'limit', 'cursor']);
    const by = params.find((p) => p.name === 'by') as { schema: { enum: string[] } };
    expect(by.schema.enum).toEqual(['endpoint', 'ip']);
    const limit = params.find((p) => p.name === 'limit') as { schema: { maximum: number } };
    expect(limit.schema.maximum).toBe(1000);
  });

  it('answers through the local HTTP adapter as through API Gateway', async () => {
    const res = await fetch(`${api.url}/v1/services/big/count?window=40`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ service: 'big', endpoints: 20, ips: 20 });
    const bad = await fetch(`${api.url}/v1/clients/%5B%3A%3A1`);
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toBe('application/problem+json');
    expect(await bad.json()).toMatchObject({ parameter: 'ip' });
  });
});
