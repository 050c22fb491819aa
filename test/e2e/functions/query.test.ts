/**
 * The query handler against dynalite, on block items put exactly as the
 * store's layout says: every listing equals an in-memory oracle of what was
 * put (active set, last seen, totals, hosts), pages are newest first and
 * stable across pages (the cursor fixes the window), a corrupt stored part is
 * skipped without failing the answer, cursors cannot be forged or moved to
 * another query, bad requests get problem answers, and one pass goes through
 * the local HTTP adapter.
 */
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MINUTE_MS } from '../../../contract/block.js';
import { agentShard, allShards } from '../../../contract/table-keys.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { createDocumentClient } from '../../../functions/store/document-client.js';
import { type ApiServer, startApiServer } from '../../../local/api-gateway-adapter.js';
import { LocalCursorKeys } from '../../../local/cursor-keys.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { comparable, oracle, type Sighting } from './activity-oracle.js';
import {
  endpoint,
  type FixtureTarget,
  putAgent,
  putPart,
  putRawPart,
  putService,
  seal,
} from './block-fixture.js';
import { apiEvent, body, ctx, freshTable, localConfig, useLocalCredentials } from './harness.js';

const T0 = 1_800_000_000_000;
const M0 = T0 / MINUTE_MS;
/** Mid-second, so since (floored to the second) differs from now - window. */
const NOW = T0 + 6 * MINUTE_MS + 30_500;
const SINCE_300 = Math.floor((NOW - 300_000) / 1000) * 1000;

let emu: Emulators;
let query: ReturnType<typeof createQueryHandler>;
let api: ApiServer;
let target: FixtureTarget;
const sightings: Sighting[] = [];

/** Seals and puts one agent's endpoints of one service-minute, remembering them for the oracle. */
async function put(
  service: string,
  agentId: string,
  minute: number,
  seq: number,
  endpoints: ReturnType<typeof endpoint>[],
) {
  const host = `host-${agentId}`;
  for (const part of seal({ agentId, host, service, minute, seq }, endpoints)) {
    expect(await putPart(target, part)).toBe('stored');
    for (const e of part.endpoints) sightings.push({ service, agentId, host, minute, e });
  }
}

beforeAll(async () => {
  useLocalCredentials();
  emu = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  const table = await freshTable(emu.dynamodb);
  target = { doc: createDocumentClient({ endpoint: emu.dynamodbEndpoint }), table };
  query = createQueryHandler(localConfig(table, emu.dynamodbEndpoint), { now: () => NOW });
  // "big": 60 endpoints on 30 IPs over minutes M0..M0+6, seen by two agents
  // (some by both, in different minutes), last seconds spread so some fall
  // before since and several tie.
  let seq = 1;
  for (let m = 0; m <= 6; m++) {
    for (const agentId of ['agent-a', 'agent-b']) {
      const eps = [];
      for (let i = 0; i < 60; i++) {
        if ((i + m) % 4 !== (agentId === 'agent-a' ? 0 : 1) && i % 7 !== m) continue;
        if (i >= 50 && m > 0) continue; // seen in the first minute only
        const last = (i * 7 + m * 3) % 60;
        eps.push(
          endpoint({
            ip: `198.51.100.${(i % 30) + 1}`,
            port: 10_000 + i,
            pktsIn: i + m,
            bytesIn: 100 * (i + 1),
            pktsOut: i % 3,
            bytesOut: 10 * (i % 3),
            firstSecond: Math.floor(last / 2),
            lastSecond: last,
            ...(i % 10 === 0 ? { natFromIp: '203.0.113.7', natFromPort: 20_000 + i } : {}),
          }),
        );
      }
      await put('big', agentId, M0 + m, seq++, eps);
    }
  }
  await put('small', 'agent-a', M0 + 5, seq++, [
    endpoint({ ip: '198.51.100.4', port: 53, lastSecond: 10 }),
  ]);
  // A corrupt part inside the window: skipped, never fails an answer.
  await putRawPart(
    target,
    { service: 'big', minute: M0 + 5, agentId: 'agent-c', seq: 1, part: 0 },
    Buffer.from('UWB garbage'),
  );
  await putService(target, 'big', T0, NOW - 1000);
  await putService(target, 'small', T0, NOW - 60_000);
  await putAgent(target, 'agent-a', 'host-agent-a', NOW - 5000);
  await putAgent(target, 'agent-b', 'host-agent-b', NOW - 5000);
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

async function allPages(
  path: string,
  q: Record<string, string>,
  between?: (page: number) => Promise<void>,
) {
  const pages: Record<string, unknown>[][] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 200; i++) {
    const res = await get(path, { ...q, ...(cursor ? { cursor } : {}) });
    expect(res.statusCode, String(res.body)).toBe(200);
    const b = body<{ clients: Record<string, unknown>[]; nextCursor: string | null; now: number }>(
      res,
    );
    expect(b.now).toBe(NOW);
    pages.push(b.clients);
    cursor = b.nextCursor;
    if (!cursor) break;
    await between?.(i);
  }
  return pages;
}

const window = (since: number) => ({
  since,
  a: Math.floor(since / MINUTE_MS),
  b: Math.floor(NOW / MINUTE_MS),
});

describe('query API on sealed blocks', () => {
  it('the test data spreads over more than one block shard', () => {
    expect(new Set(['agent-a', 'agent-b'].map(agentShard)).size).toBeGreaterThan(1);
    expect(allShards().length).toBeGreaterThan(1);
  });

  it('pages through every active endpoint newest first, once each, equal to the oracle', async () => {
    const pages = await allPages('/v1/services/big/clients', { limit: '7' });
    expect(pages.every((p) => p.length <= 7)).toBe(true);
    const all = pages.flat();
    const want = oracle(
      sightings.filter((s) => s.service === 'big'),
      { by: 'endpoint', ...window(SINCE_300) },
    );
    expect(want.length).toBeGreaterThan(20);
    expect(want.length).toBeLessThan(60); // some went quiet before since
    expect(all.map(comparable)).toEqual(want);
    // Pre-NAT addresses come through.
    const natted = all.find((c) => c.port === 10_050);
    if (natted) expect(natted.natFrom).toEqual(['203.0.113.7:20050']);
    expect(all.every((c) => c.endpoint === `${c.ip}:${c.port}`)).toBe(true);
  });

  it('by=ip and shorter windows equal the oracle too; since is floored to the second', async () => {
    const ips = (await allPages('/v1/services/big/clients', { by: 'ip', limit: '1000' })).flat();
    expect(ips.map(comparable)).toEqual(
      oracle(
        sightings.filter((s) => s.service === 'big'),
        { by: 'ip', ...window(SINCE_300) },
      ),
    );
    const since40 = Math.floor((NOW - 40_000) / 1000) * 1000;
    const recent = (
      await allPages('/v1/services/big/clients', { window: '40', limit: '3' })
    ).flat();
    const want = oracle(
      sightings.filter((s) => s.service === 'big'),
      { by: 'endpoint', ...window(since40) },
    );
    expect(recent.map(comparable)).toEqual(want);
    const count = body(await get('/v1/services/big/count', { window: '40' }));
    expect(count).toMatchObject({
      since: since40,
      endpoints: want.length,
      ips: new Set(want.map((e) => e.ip)).size,
    });
  });

  it('pages stay stable while new blocks arrive: the cursor fixes since and now', async () => {
    const before = oracle(
      sightings.filter((s) => s.service === 'big'),
      { by: 'endpoint', ...window(SINCE_300) },
    );
    let added = false;
    const pages = await allPages('/v1/services/big/clients', { limit: '10' }, async () => {
      if (added) return;
      added = true;
      // A block of the next minute (after the fixed now) with new and known endpoints.
      const parts = seal(
        { agentId: 'agent-a', host: 'host-agent-a', service: 'big', minute: M0 + 7, seq: 999 },
        [
          endpoint({ ip: '198.51.100.200', port: 1, lastSecond: 5 }),
          endpoint({ ip: '198.51.100.1', port: 10_000, lastSecond: 5 }),
        ],
      );
      for (const p of parts) await putPart(target, p);
    });
    expect(added).toBe(true);
    expect(pages.flat().map(comparable)).toEqual(before);
  });

  it('counts exactly the union', async () => {
    const want = oracle(
      sightings.filter((s) => s.service === 'big'),
      { by: 'endpoint', ...window(SINCE_300) },
    );
    expect(body(await get('/v1/services/big/count'))).toMatchObject({
      service: 'big',
      since: SINCE_300,
      now: NOW,
      endpoints: want.length,
      ips: new Set(want.map((e) => e.ip)).size,
    });
  });

  it("answers what an IP talks to, per service, and a host's clients from its agents' blocks only", async () => {
    const ip = body<{ services: Record<string, unknown>[]; truncated: boolean }>(
      await get('/v1/clients/198.51.100.4'),
    );
    const wantIp = oracle(sightings, { by: 'ip', ip: '198.51.100.4', ...window(SINCE_300) });
    expect(wantIp.map((e) => e.service).sort()).toEqual(['big', 'small']);
    expect(ip.services.map(comparable)).toEqual(wantIp);
    const limited = body<{ services: unknown[]; truncated: boolean }>(
      await get('/v1/clients/198.51.100.4', { limit: '1' }),
    );
    expect(limited).toMatchObject({ truncated: true });
    expect(limited.services).toHaveLength(1);

    const host = (await allPages('/v1/hosts/host-agent-a/clients', { limit: '4' })).flat();
    const wantHost = oracle(sightings, { by: 'ip', host: 'host-agent-a', ...window(SINCE_300) });
    expect(host.map(comparable)).toEqual(wantHost);
    expect(
      host.every(
        (c) => c.host === 'host-agent-a' && (c.hosts as string[]).join() === 'host-agent-a',
      ),
    ).toBe(true);
  });

  it('lists services (no summary yet) and agents', async () => {
    const services = body<{ services: Record<string, unknown>[] }>(await get('/v1/services'));
    expect(services.services.map((s) => [s.service, s.active, s.activeClients, s.summary])).toEqual(
      [
        ['big', true, null, null],
        ['small', true, null, null],
      ],
    );
    const agents = body<{ agents: Record<string, unknown>[] }>(await get('/v1/agents'));
    expect(agents.agents.map((a) => [a.agentId, a.host, a.reporting])).toEqual([
      ['agent-a', 'host-agent-a', true],
      ['agent-b', 'host-agent-b', true],
    ]);
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

  it('pages across a key rotation, and answers an expired cursor with a 400 problem naming the fix', async () => {
    const keys = new LocalCursorKeys();
    const clock = { t: NOW };
    const rotating = createQueryHandler(localConfig(target.table, emu.dynamodbEndpoint), {
      now: () => clock.t,
      cursorKeys: keys,
    });
    const ask = (cursor?: string) =>
      rotating(
        apiEvent('/v1/services/big/clients', { limit: '5', ...(cursor ? { cursor } : {}) }),
        ctx(),
      );
    const first = body<{ nextCursor: string; clients: unknown[] }>(await ask());
    keys.rotate();
    // Signed before the rotation, verified by the previous key after it.
    const second = await ask(first.nextCursor);
    expect(second.statusCode).toBe(200);
    const next = body<{ nextCursor: string; clients: unknown[] }>(second);
    expect(next.clients).toHaveLength(5);
    // A second rotation retires the first key: its cursors are refused with the reason.
    keys.rotate();
    const retired = await ask(first.nextCursor);
    expect(retired.statusCode).toBe(400);
    expect(String(body(retired).detail)).toMatch(/no longer valid/);
    // An hour and a second after it was issued, a cursor has expired.
    clock.t = NOW + 3_601_000;
    const expired = await ask(next.nextCursor);
    expect(expired.statusCode).toBe(400);
    expect(expired.headers?.['content-type']).toBe('application/problem+json');
    expect(body(expired).parameter).toBe('cursor');
    expect(String(body(expired).detail)).toMatch(
      /cursor expired: issued at .*, and a cursor is valid for 3600 s; request the first page again \(without cursor\)/,
    );
  });

  it('answers 503 problem+json when no cursor keys can be read, and recovers once they can', async () => {
    let failing = true;
    const flaky = createQueryHandler(localConfig(target.table, emu.dynamodbEndpoint), {
      now: () => NOW,
      cursorKeys: {
        keys: async () => {
          if (failing) throw new Error('AccessDeniedException: not authorized');
          return { current: 'recovered-key', previous: [] };
        },
      },
    });
    const down = await flaky(apiEvent('/v1/services/big/clients', { limit: '5' }), ctx());
    expect(down.statusCode).toBe(503);
    expect(down.headers?.['content-type']).toBe('application/problem+json');
    expect(String(body(down).detail)).toMatch(/cursor keys cannot be read/);
    failing = false;
    const up = await flaky(apiEvent('/v1/services/big/clients', { limit: '5' }), ctx());
    expect(up.statusCode).toBe(200);
  });

  it('answers 400 for bad parameters, 404 and 405', async () => {
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
        '/v1/alarms',
        '/v1/clients/{ip}',
        '/v1/hosts/{host}/clients',
        '/v1/openapi.json',
        '/v1/services',
        '/v1/services/{service}/clients',
        '/v1/services/{service}/count',
        '/v1/services/{service}/history',
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
    const direct = body(await get('/v1/services/big/count', { window: '40' }));
    expect(await res.json()).toEqual(direct);
    const bad = await fetch(`${api.url}/v1/clients/%5B%3A%3A1`);
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toBe('application/problem+json');
    expect(await bad.json()).toMatchObject({ parameter: 'ip' });
  });
});
