import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ApiHandler,
  type ApiServer,
  startApiServer,
} from '../../../local/api-gateway-adapter.js';
import { PortInUseError } from '../../../local/emulators.js';

const BINARY = randomBytes(256);
const errors: unknown[] = [];

/** A tiny function behind the API: echoes the event or answers in each response style. */
const handler: ApiHandler = async (event) => {
  switch (event.rawPath) {
    case '/echo':
      return {
        statusCode: 200,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(event),
      };
    case '/string':
      return 'plain words';
    case '/object':
      return { services: ['dns', 'ntp'], count: 2 };
    case '/binary':
      return {
        statusCode: 201,
        headers: { 'content-type': 'application/octet-stream', 'x-size': BINARY.length },
        body: BINARY.toString('base64'),
        isBase64Encoded: true,
      };
    case '/cookies':
      return { statusCode: 204, cookies: ['a=1; Path=/', 'b=2'] };
    case '/throw':
      throw new Error('handler exploded');
    case '/bad-status':
      return { statusCode: 'abc', body: 'x' };
    default:
      return {
        statusCode: 404,
        headers: { 'content-type': 'application/json' },
        body: '{"message":"Not Found"}',
      };
  }
};

let api: ApiServer;
let staged: ApiServer;

beforeAll(async () => {
  api = await startApiServer({ handler, onError: (err) => errors.push(err) });
  staged = await startApiServer({ handler, stage: 'prod' });
});
afterAll(async () => {
  await api?.stop();
  await staged?.stop();
});

async function echo(
  path: string,
  init?: RequestInit,
  base = api.url,
): Promise<APIGatewayProxyEventV2> {
  const res = await fetch(`${base}${path}`, init);
  expect(res.status).toBe(200);
  return (await res.json()) as APIGatewayProxyEventV2;
}

/** A raw request through node:http, to send repeated header lines and a Cookie header. */
function rawGet(
  path: string,
  headers: Record<string, string | string[]>,
): Promise<APIGatewayProxyEventV2> {
  return new Promise((resolve, reject) => {
    const url = new URL(api.url);
    const req = request({ host: url.hostname, port: url.port, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('API Gateway HTTP API adapter', () => {
  it('builds the payload 2.0 event of a GET with a query string', async () => {
    const before = Date.now();
    const event = await echo('/echo?window=5m&by=ip&by=endpoint', {
      headers: { 'X-Custom-Header': 'Value', 'User-Agent': 'udpwatch-test/1' },
    });
    const after = Date.now();
    expect(event).toMatchObject({
      version: '2.0',
      routeKey: '$default',
      rawPath: '/echo',
      rawQueryString: 'window=5m&by=ip&by=endpoint',
      queryStringParameters: { window: '5m', by: 'ip,endpoint' },
      isBase64Encoded: false,
      requestContext: {
        accountId: '000000000000',
        apiId: 'local',
        domainName: `127.0.0.1:${api.port}`,
        http: {
          method: 'GET',
          path: '/echo',
          protocol: 'HTTP/1.1',
          sourceIp: '127.0.0.1',
          userAgent: 'udpwatch-test/1',
        },
        routeKey: '$default',
        stage: '$default',
      },
    });
    expect(event.headers['x-custom-header']).toBe('Value');
    expect(event.headers.host).toBe(`127.0.0.1:${api.port}`);
    expect(Object.keys(event.headers).every((k) => k === k.toLowerCase())).toBe(true);
    expect(event.body).toBeUndefined();
    expect(event.cookies).toBeUndefined();
    expect(event.requestContext.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(event.requestContext.timeEpoch).toBeGreaterThanOrEqual(before);
    expect(event.requestContext.timeEpoch).toBeLessThanOrEqual(after);
    expect(event.requestContext.time).toMatch(
      /^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/,
    );
  });

  it('keeps the raw query string and path but decodes parameters; no query = no parameters', async () => {
    const event = await echo('/echo?ip=%3A%3A1&q=a%20b&empty=');
    expect(event.rawQueryString).toBe('ip=%3A%3A1&q=a%20b&empty=');
    expect(event.queryStringParameters).toEqual({ ip: '::1', q: 'a b', empty: '' });
    const bare = await echo('/echo');
    expect(bare.rawQueryString).toBe('');
    expect(bare.queryStringParameters).toBeUndefined();
  });

  it('joins repeated headers with commas and moves cookies out of the headers', async () => {
    const event = await rawGet('/echo', { 'X-Multi': ['a', 'b'], Cookie: 'session=1; theme=dark' });
    expect(event.headers['x-multi']).toBe('a,b');
    expect(event.cookies).toEqual(['session=1', 'theme=dark']);
    expect(event.headers.cookie).toBeUndefined();
  });

  it('passes a text body as is and a binary body base64-encoded', async () => {
    const json = await echo('/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(json.requestContext.http.method).toBe('POST');
    expect(json.body).toBe('{"a":1}');
    expect(json.isBase64Encoded).toBe(false);
    const bin = await echo('/echo', {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: BINARY,
    });
    expect(bin.isBase64Encoded).toBe(true);
    expect(Buffer.from(bin.body ?? '', 'base64').equals(BINARY)).toBe(true);
  });

  it('sends a structured result with headers and a base64 body as exact bytes', async () => {
    const res = await fetch(`${api.url}/binary`);
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('x-size')).toBe(String(BINARY.length));
    expect(Buffer.from(await res.arrayBuffer()).equals(BINARY)).toBe(true);
  });

  it('turns result cookies into Set-Cookie headers', async () => {
    const res = await fetch(`${api.url}/cookies`);
    expect(res.status).toBe(204);
    expect(res.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2']);
  });

  it('infers a response from a bare string or object like format 2.0', async () => {
    const s = await fetch(`${api.url}/string`);
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toBe('application/json');
    expect(await s.text()).toBe('plain words');
    const o = await fetch(`${api.url}/object`);
    expect(o.status).toBe(200);
    expect(await o.json()).toEqual({ services: ['dns', 'ntp'], count: 2 });
  });

  it("passes the handler's 404 through for an unknown path", async () => {
    const res = await fetch(`${api.url}/no/such/path?x=1`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ message: 'Not Found' });
  });

  it('answers 500 Internal Server Error when the handler throws or returns a malformed result', async () => {
    const thrown = await fetch(`${api.url}/throw`);
    expect(thrown.status).toBe(500);
    expect(await thrown.json()).toEqual({ message: 'Internal Server Error' });
    expect(String(errors.at(-1))).toContain('handler exploded');
    const bad = await fetch(`${api.url}/bad-status`);
    expect(bad.status).toBe(500);
  });

  it('uses the configured stage', async () => {
    const event = await echo('/echo', undefined, staged.url);
    expect(event.requestContext.stage).toBe('prod');
  });

  it('reports a taken port as PortInUseError naming it', async () => {
    const err = await startApiServer({ handler, port: api.port }).catch((e) => e);
    expect(err).toBeInstanceOf(PortInUseError);
    expect(err.message).toContain(String(api.port));
  });
});
