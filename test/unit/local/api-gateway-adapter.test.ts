import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { Logger } from '@aws-lambda-powertools/logger';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Problem } from '../../../contract/api-schemas.js';
import { CursorCodec } from '../../../functions/query/cursor.js';
import { handleRequest } from '../../../functions/query/query.js';
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
    case '/hang':
      return new Promise(() => {});
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
let strict: ApiServer;

beforeAll(async () => {
  api = await startApiServer({ handler, onError: (err) => errors.push(err) });
  staged = await startApiServer({ handler, stage: 'prod' });
  // Small limits, so the tests need neither 6 MB bodies nor 30 s waits.
  strict = await startApiServer({
    handler,
    onError: (err) => errors.push(err),
    timeoutMs: 200,
    maxBodyBytes: 1024,
  });
});
afterAll(async () => {
  await api?.stop();
  await staged?.stop();
  await strict?.stop();
});

/** Expects a problem+json answer of this status whose body is exactly the Problem shape. */
async function expectProblem(res: Response, status: number, detail: RegExp) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  const body = (await res.json()) as Problem;
  expect(Object.keys(body).sort()).toEqual(['detail', 'status', 'title', 'type']);
  expect(Problem.parse(body)).toMatchObject({ type: 'about:blank', status });
  expect(body.title.length).toBeGreaterThan(0);
  expect(body.detail).toMatch(detail);
  return body;
}

/** Sends raw bytes on a loopback socket; resolves with the status, headers and body of the answer. */
function rawExchange(
  base: string,
  bytes: string,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const socket = connect(Number(url.port), url.hostname, () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length'] ?? text.length);
      const body = Buffer.from(text.slice(split + 4))
        .subarray(0, length)
        .toString('utf8');
      resolve({ status: Number(statusLine?.split(' ')[1]), headers, body });
    });
  });
}

/** Checks a raw answer is the problem document of this status. */
function expectRawProblem(
  answer: Awaited<ReturnType<typeof rawExchange>>,
  status: number,
  detail: RegExp,
) {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toBe('application/problem+json');
  const body = JSON.parse(answer.body);
  expect(Object.keys(body).sort()).toEqual(['detail', 'status', 'title', 'type']);
  expect(Problem.parse(body)).toMatchObject({ type: 'about:blank', status });
  expect(body.detail).toMatch(detail);
}

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

  it('keeps prototype member names as query parameters and joins only real repeats', async () => {
    const event = await echo(
      '/echo?__proto__=1&constructor=2&toString=3&toString=4&hasOwnProperty=',
    );
    const query = event.queryStringParameters ?? {};
    expect(Object.keys(query)).toEqual(['__proto__', 'constructor', 'toString', 'hasOwnProperty']);
    expect(Object.entries(query)).toEqual([
      ['__proto__', '1'],
      ['constructor', '2'],
      ['toString', '3,4'],
      ['hasOwnProperty', ''],
    ]);
  });

  it('with the query function behind it, refuses __proto__ and constructor alike', async () => {
    const logger = new Logger({ logLevel: 'SILENT' });
    const noStore = {
      send: async () => {
        throw new Error('no store in this test');
      },
    } as unknown as DynamoDBDocumentClient;
    const deps = {
      reader: { doc: noStore, table: 't' },
      cursors: new CursorCodec('k'),
      activeWindowSeconds: 300,
      logger,
    };
    const query = await startApiServer({ handler: (event) => handleRequest(event, deps) });
    try {
      for (const name of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']) {
        const res = await fetch(`${query.url}/v1/services?${name}=1`);
        expect(res.status, name).toBe(400);
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        expect(await res.json()).toMatchObject({
          parameter: name,
          detail: `unknown query parameter: ${name}`,
        });
      }
      const twice = await fetch(`${query.url}/v1/services?window=5&window=6`);
      expect(await twice.json()).toMatchObject({
        parameter: 'window',
        detail: 'window: given more than once',
      });
      const hex = await fetch(`${query.url}/v1/services?window=0x10`);
      expect(await hex.json()).toMatchObject({
        parameter: 'window',
        detail: 'window: "0x10" is not a decimal number of seconds',
      });
    } finally {
      await query.stop();
    }
  });

  it('answers 500 problem+json when the handler throws or returns a malformed result', async () => {
    const thrown = await fetch(`${api.url}/throw`);
    const body = await expectProblem(thrown, 500, /the function failed/);
    expect(body.title).toBe('Internal Server Error');
    expect(JSON.stringify(body)).not.toContain('handler exploded');
    expect(String(errors.at(-1))).toContain('handler exploded');
    const bad = await fetch(`${api.url}/bad-status`);
    await expectProblem(bad, 500, /malformed result: statusCode "abc"/);
  });

  it('answers 504 problem+json when the handler does not answer in time, and keeps serving', async () => {
    const res = await fetch(`${strict.url}/hang`);
    const body = await expectProblem(res, 504, /did not answer within 200 ms/);
    expect(body.title).toBe('Gateway Timeout');
    const next = await fetch(`${strict.url}/object`);
    expect(next.status).toBe(200);
  });

  it('answers 413 problem+json for a body over the limit, and passes one at the limit', async () => {
    const over = await fetch(`${strict.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'x'.repeat(1025),
    });
    const body = await expectProblem(over, 413, /larger than 1024 bytes/);
    expect(body.title).toBe('Content Too Large');
    const at = await echo(
      '/echo',
      { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x'.repeat(1024) },
      strict.url,
    );
    expect(at.body).toBe('x'.repeat(1024));
  });

  it('answers 405 problem+json with Allow for a method an HTTP API does not route', async () => {
    for (const method of ['TRACE', 'PROPFIND']) {
      const answer = await rawExchange(
        api.url,
        `${method} /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      expectRawProblem(answer, 405, new RegExp(`${method} is not a method an HTTP API routes`));
      expect(answer.headers.allow).toBe('GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS');
    }
  });

  it('answers 400 problem+json for a request target that is not a path', async () => {
    for (const target of ['http://elsewhere.example/echo', '*']) {
      const answer = await rawExchange(
        api.url,
        `OPTIONS ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      expectRawProblem(answer, 400, /is not a path starting with \//);
    }
  });

  it('answers problem+json for requests node:http cannot parse', async () => {
    const junk = await rawExchange(api.url, 'FOO /echo HTTP/1.1\r\nHost: x\r\n\r\n');
    expectRawProblem(junk, 400, /malformed HTTP request \(HPE_/);
    const garbage = await rawExchange(api.url, 'not http at all\r\n\r\n');
    expectRawProblem(garbage, 400, /malformed HTTP request/);
    const big = await rawExchange(
      api.url,
      `GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`,
    );
    expectRawProblem(big, 431, /header fields are larger/);
    // The server still answers.
    expect((await fetch(`${api.url}/object`)).status).toBe(200);
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
