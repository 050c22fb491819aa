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
): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: {},
    queryStringParameters: query,
    requestContext: { http: { method, path } },
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
}

async function answer(path: string, query?: Record<string, string>, method?: string) {
  const res = await handleRequest(event(path, query, method), deps);
  return { status: res.statusCode, body: JSON.parse(String(res.body)), headers: res.headers };
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
});
