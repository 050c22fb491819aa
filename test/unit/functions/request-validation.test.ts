/**
 * Request routing and validation of the query function, without a table: a
 * bad request is answered 400 before any read (the store here refuses every
 * call), and the OpenAPI document matches the schemas that validate.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { ClientsQuery } from '../../../contract/api-schemas.js';
import { CursorCodec } from '../../../functions/query/cursor.js';
import { handleRequest } from '../../../functions/query/query.js';
import { matchPath } from '../../../functions/query/routes.js';

let reads = 0;
const noStore = {
  send: async () => {
    reads++;
    throw new Error('store unavailable');
  },
} as unknown as DynamoDBDocumentClient;

const deps = {
  reader: { doc: noStore, table: 't' },
  cursors: new CursorCodec('k'),
  activeWindowSeconds: 300,
  logger: new Logger({ logLevel: 'SILENT' }),
  now: () => 1_800_000_000_000,
};

function event(
  path: string,
  query?: Record<string, string>,
  method = 'GET',
  rawQueryString = '',
): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString,
    headers: {},
    queryStringParameters: query,
    requestContext: { http: { method, path } },
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
}

async function answer(
  path: string,
  query?: Record<string, string>,
  method?: string,
  rawQueryString?: string,
) {
  const res = await handleRequest(event(path, query, method, rawQueryString), deps);
  return { status: res.statusCode, body: JSON.parse(String(res.body)), headers: res.headers };
}

/** queryStringParameters as the Lambda runtime hands them over: parsed from JSON, own keys only. */
function runtimeQuery(pairs: [string, string][]): Record<string, string> {
  return JSON.parse(
    `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`,
  );
}

/** Expects a 400 problem document naming `parameter`, with exactly this detail, and no store read. */
async function expectBadRequest(
  res: Awaited<ReturnType<typeof answer>>,
  parameter: string,
  detail: string,
) {
  expect(res.status, detail).toBe(400);
  expect(res.headers?.['content-type']).toBe('application/problem+json');
  expect(res.body).toEqual({
    type: 'about:blank',
    title: 'Bad Request',
    status: 400,
    detail,
    parameter,
  });
}

describe('request validation', () => {
  it('answers 400 naming the parameter, before touching the store', async () => {
    const cases: [string, Record<string, string> | undefined, string, RegExp][] = [
      ['/v1/services/dns/clients', { window: '-1' }, 'window', /window/],
      ['/v1/services/dns/clients', { window: '1.5' }, 'window', /window/],
      ['/v1/services/dns/clients', { window: '604801' }, 'window', /window/],
      ['/v1/services/dns/clients', { by: 'mac' }, 'by', /by/],
      ['/v1/services/dns/clients', { limit: '1001' }, 'limit', /limit/],
      ['/v1/services/dns/clients', { cursor: 'x.y' }, 'cursor', /signature|malformed/],
      ['/v1/services/dns/clients', { windw: '5' }, 'windw', /unknown query parameter: windw/],
      ['/v1/services/dns/count', { limit: '5' }, 'limit', /unknown/],
      ['/v1/clients/300.1.2.3', undefined, 'ip', /not an IPv4 or IPv6 address/],
      ['/v1/clients/%E0%A4%A', undefined, 'ip', /percent-encoding/],
      ['/v1/hosts/a%09b/clients', undefined, 'host', /host/],
    ];
    reads = 0;
    for (const [path, query, parameter, detail] of cases) {
      const res = await answer(path, query);
      expect(res.status, `${path} ${JSON.stringify(query)}`).toBe(400);
      expect(res.headers?.['content-type']).toBe('application/problem+json');
      expect(res.body.parameter).toBe(parameter);
      expect(res.body.detail).toMatch(detail);
    }
    expect(reads).toBe(0);
  });

  it('refuses every unknown parameter, prototype member names included, by name', async () => {
    reads = 0;
    for (const name of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']) {
      const query = runtimeQuery([[name, '1']]);
      expect(Object.keys(query)).toEqual([name]);
      for (const path of ['/v1/services', '/v1/services/dns/clients', '/v1/clients/::1']) {
        const res = await answer(path, query, 'GET', `${name}=1`);
        await expectBadRequest(res, name, `unknown query parameter: ${name}`);
      }
      // Next to valid parameters too.
      const mixed = runtimeQuery([
        ['window', '5'],
        [name, 'x'],
      ]);
      const res = await answer('/v1/services/dns/count', mixed, 'GET', `window=5&${name}=x`);
      await expectBadRequest(res, name, `unknown query parameter: ${name}`);
    }
    expect(reads).toBe(0);
  });

  it('sees __proto__ as a key of the strict query schema when the object has no prototype', () => {
    const query = Object.create(null) as Record<string, string>;
    const name = '__proto__';
    query[name] = '1';
    expect(Object.keys(query)).toEqual(['__proto__']);
    const parsed = ClientsQuery.safeParse(query);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({
      code: 'unrecognized_keys',
      keys: ['__proto__'],
    });
  });

  it('quotes an odd unknown name, cut short, and counts the names past the fifth', async () => {
    const long = 'x'.repeat(300);
    const one = await answer('/v1/agents', runtimeQuery([[long, '1']]));
    expect(one.status).toBe(400);
    expect(one.body.parameter).toBe('x'.repeat(64));
    expect(one.body.detail).toBe(`unknown query parameter: "${'x'.repeat(40)}…"`);
    const blank = await answer('/v1/agents', runtimeQuery([['', '1']]));
    await expectBadRequest(blank, '', 'unknown query parameter: ""');
    const many = await answer(
      '/v1/agents',
      runtimeQuery(['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((k) => [k, '1'])),
    );
    await expectBadRequest(many, 'a', 'unknown query parameter: a, b, c, d, e and 2 more');
  });

  it('takes numbers only as plain decimal digits', async () => {
    reads = 0;
    for (const text of [
      '0x10',
      '1e3',
      '+5',
      ' 5',
      '5 ',
      '5.0',
      '05',
      '00',
      '-1',
      '',
      '1_000',
      'Infinity',
      '５',
    ]) {
      const res = await answer('/v1/services/dns/clients', { window: text });
      await expectBadRequest(
        res,
        'window',
        `window: ${JSON.stringify(text)} is not a decimal number of seconds`,
      );
      const lim = await answer('/v1/hosts/h/clients', { limit: text });
      await expectBadRequest(
        lim,
        'limit',
        `limit: ${JSON.stringify(text)} is not a decimal number of entries`,
      );
    }
    const huge = await answer('/v1/agents', { window: '9'.repeat(100) });
    await expectBadRequest(
      huge,
      'window',
      `window: "${'9'.repeat(40)}…" is not a decimal number of seconds`,
    );
    await expectBadRequest(
      await answer('/v1/agents', { window: '0' }),
      'window',
      'window: 0 is out of range: 1 to 604800 seconds',
    );
    await expectBadRequest(
      await answer('/v1/clients/::1', { limit: '1001' }),
      'limit',
      'limit: 1001 is out of range: 1 to 1000 entries',
    );
    expect(reads).toBe(0);
    expect(ClientsQuery.parse({ window: '1', limit: '1000' })).toMatchObject({
      window: 1,
      limit: 1000,
    });
    expect(ClientsQuery.parse({ window: '604800', limit: '10' })).toMatchObject({
      window: 604800,
      limit: 10,
    });
    // A valid number reaches the store (which fails here).
    expect((await answer('/v1/services/dns/count', { window: '60' })).status).toBe(500);
    expect(reads).toBeGreaterThan(0);
  });

  it('refuses a parameter given more than once', async () => {
    reads = 0;
    // API Gateway joins repeats with commas; the raw query string shows them.
    const twice = await answer(
      '/v1/services/dns/clients',
      { window: '5,6' },
      'GET',
      'window=5&window=6',
    );
    await expectBadRequest(twice, 'window', 'window: given more than once');
    const by = await answer('/v1/services/dns/clients', { by: 'ip,ip' }, 'GET', 'by=ip&by=ip');
    await expectBadRequest(by, 'by', 'by: given more than once');
    const ctor = await answer(
      '/v1/agents',
      runtimeQuery([['constructor', '1,2']]),
      'GET',
      'constructor=1&constructor=2',
    );
    await expectBadRequest(ctor, 'constructor', 'constructor: given more than once');
    // Without the raw string (or with an encoded comma), the comma alone refuses it.
    const joined = await answer('/v1/services/dns/clients', { cursor: 'a,b' });
    await expectBadRequest(
      joined,
      'cursor',
      'cursor: "a,b" holds a comma: give the parameter once, with one value',
    );
    const encoded = await answer(
      '/v1/services/dns/clients',
      { by: 'ip,endpoint' },
      'GET',
      'by=ip%2Cendpoint',
    );
    await expectBadRequest(
      encoded,
      'by',
      'by: "ip,endpoint" holds a comma: give the parameter once, with one value',
    );
    expect(reads).toBe(0);
  });

  it('routes valid requests to the store and hides store errors behind a 500 problem', async () => {
    reads = 0;
    const res = await answer('/v1/services/dns/clients', { window: '60', by: 'ip', limit: '10' });
    expect(res.status).toBe(500);
    expect(res.body).toMatchObject({ status: 500, title: 'Internal Server Error' });
    expect(JSON.stringify(res.body)).not.toContain('store unavailable');
    expect(reads).toBeGreaterThan(0);
  });

  it('answers 404 for unknown paths and 405 for other methods', async () => {
    expect((await answer('/v1/servicez')).status).toBe(404);
    expect((await answer('/v1/services/dns/clients/extra')).status).toBe(404);
    const post = await answer('/v1/agents', undefined, 'DELETE');
    expect(post.status).toBe(405);
    expect(post.headers?.allow).toBe('GET');
  });

  it('matches path templates segment by segment', () => {
    expect(matchPath('/v1/services/{service}/clients', '/v1/services/web%2Fapi/clients')).toEqual({
      service: 'web%2Fapi',
    });
    expect(matchPath('/v1/services/{service}/clients', '/v1/services//clients')).toBeNull();
    expect(matchPath('/v1/services', '/v1/services/')).toEqual({});
  });

  it('describes each query parameter in OpenAPI as its zod schema validates it', async () => {
    const doc = (await answer('/v1/openapi.json')).body;
    const params = doc.paths['/v1/services/{service}/clients'].get.parameters as {
      name: string;
      in: string;
      required: boolean;
      schema: { minimum?: number; maximum?: number; enum?: string[] };
    }[];
    expect(params.filter((p) => p.in === 'query').map((p) => p.name)).toEqual(
      Object.keys(ClientsQuery.shape),
    );
    const window = params.find((p) => p.name === 'window')!;
    expect(window).toMatchObject({ required: false, schema: { minimum: 1, maximum: 604800 } });
    // What the document promises, the validator enforces.
    expect(ClientsQuery.safeParse({ window: String(window.schema.maximum) }).success).toBe(true);
    expect(ClientsQuery.safeParse({ window: String(window.schema.maximum! + 1) }).success).toBe(
      false,
    );
    expect(params.find((p) => p.name === 'service')).toMatchObject({ in: 'path', required: true });
    expect(doc.components.schemas.Problem.properties.parameter).toBeDefined();
  });

  it('validates the history and alarms parameters like the others, before any read', async () => {
    reads = 0;
    await expectBadRequest(
      await answer('/v1/services/dns/history', { minutes: '0' }),
      'minutes',
      'minutes: 0 is out of range: 1 to 1440 minutes',
    );
    await expectBadRequest(
      await answer('/v1/services/dns/history', { minutes: '1441' }),
      'minutes',
      'minutes: 1441 is out of range: 1 to 1440 minutes',
    );
    await expectBadRequest(
      await answer('/v1/services/dns/history', { minutes: '1h' }),
      'minutes',
      'minutes: "1h" is not a decimal number of minutes',
    );
    await expectBadRequest(
      await answer('/v1/services/dns/history', { window: '60' }),
      'window',
      'unknown query parameter: window',
    );
    await expectBadRequest(
      await answer('/v1/alarms', { service: 'has space' }),
      'service',
      'service: must have no spaces or control characters',
    );
    expect(reads).toBe(0);
    // A valid history request reads the store (and fails here with it).
    expect((await answer('/v1/services/dns/history', { minutes: '1440' })).status).toBe(500);
    expect(reads).toBe(1);
  });

  it('answers GET /v1/alarms without alarms configured as an empty list from no source', async () => {
    const res = await answer('/v1/alarms');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      now: 1_800_000_000_000,
      source: 'none',
      readAt: 1_800_000_000_000,
      alarms: [],
      truncated: false,
    });
  });

  it('describes the history and alarms routes in the OpenAPI document', async () => {
    const doc = (await answer('/v1/openapi.json')).body;
    const history = doc.paths['/v1/services/{service}/history'].get;
    expect(history.parameters.find((p: { name: string }) => p.name === 'minutes')).toMatchObject({
      in: 'query',
      required: false,
      schema: { minimum: 1, maximum: 1440 },
    });
    expect(
      Object.keys(history.responses['200'].content['application/json'].schema.properties),
    ).toEqual(['service', 'minutes', 'from', 'until', 'now', 'points', 'skipped']);
    const alarms = doc.paths['/v1/alarms'].get;
    expect(alarms.parameters.map((p: { name: string }) => p.name)).toEqual(['service']);
    const entry =
      alarms.responses['200'].content['application/json'].schema.properties.alarms.items;
    expect(entry.properties.state.enum).toEqual(['OK', 'ALARM', 'INSUFFICIENT_DATA']);
  });
});
