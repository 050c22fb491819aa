/**
 * SigV4 signing, checked against an independent implementation of the
 * algorithm written here from the AWS specification, on the request exactly
 * as a real HTTP server receives it. Nothing talks to AWS.
 */
import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../../cli/api-client.js';
import {
  createSigV4Fetch,
  needsSigning,
  regionFromHost,
  resolveRegion,
  signGet,
} from '../../../cli/sigv4-fetch.js';

const CREDENTIALS = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};
const DATE = new Date('2026-11-26T10:00:00Z');

const rfc3986 = (s: string) =>
  encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const hmac = (key: string | Buffer, s: string) => createHmac('sha256', key).update(s).digest();

/** Recomputes the signature of a received GET from the specification; returns what it should be. */
function expectedSignature(
  rawUrl: string,
  headers: IncomingHttpHeaders,
  secret: string,
): { signature: string; scope: string; signedHeaders: string } {
  const auth = String(headers.authorization);
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
  if (!m) throw new Error(`bad Authorization header: ${auth}`);
  const [, , day, region, service, signedHeaders] = m as unknown as string[];
  const [path, query = ''] = rawUrl.split('?') as [string, string?];
  // Non-S3 services sign the path URI-encoded once more than it is sent.
  const canonicalUri = path.split('/').map(rfc3986).join('/');
  const canonicalQuery = query
    .split('&')
    .filter(Boolean)
    .map((kv) => kv.split('=').map((x) => rfc3986(decodeURIComponent(x ?? ''))))
    .sort(([a, av], [b, bv]) => (a! < b! ? -1 : a! > b! ? 1 : av! < bv! ? -1 : 1))
    .map(([k, v]) => `${k}=${v ?? ''}`)
    .join('&');
  const names = signedHeaders!.split(';');
  const canonicalHeaders = names.map((n) => `${n}:${String(headers[n]).trim()}\n`).join('');
  const canonicalRequest = [
    'GET',
    canonicalUri,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders,
    sha256(''),
  ].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = [
    'AWS4-HMAC-SHA256',
    String(headers['x-amz-date']),
    scope,
    sha256(canonicalRequest),
  ].join('\n');
  let key = hmac(`AWS4${secret}`, day!);
  for (const part of [region!, service!, 'aws4_request']) key = hmac(key, part);
  return {
    signature: createHmac('sha256', key).update(toSign).digest('hex'),
    scope,
    signedHeaders: signedHeaders!,
  };
}

describe('signGet', () => {
  it('gives an Authorization header of the SigV4 shape for execute-api', async () => {
    const url = new URL(
      'https://abc123.execute-api.eu-west-1.amazonaws.com/v1/services?window=300',
    );
    const headers = await signGet(url, {
      region: 'eu-west-1',
      credentials: CREDENTIALS,
      signingDate: DATE,
    });
    expect(headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20261126\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=accept;host;x-amz-date, Signature=[0-9a-f]{64}$/,
    );
    expect(headers['x-amz-date']).toBe('20261126T100000Z');
    expect(headers.host).toBe('abc123.execute-api.eu-west-1.amazonaws.com');
  });

  it('is deterministic for fixed credentials and date, and changes with the request', async () => {
    const url = new URL(
      'https://abc123.execute-api.eu-west-1.amazonaws.com/v1/services/dns/clients?by=ip&limit=5',
    );
    const opts = { region: 'eu-west-1', credentials: CREDENTIALS, signingDate: DATE };
    const a = await signGet(url, opts);
    const b = await signGet(new URL(url.href), opts);
    expect(a).toEqual(b);
    const other = await signGet(new URL(`${url.href.replace('limit=5', 'limit=6')}`), opts);
    expect(other.authorization).not.toBe(a.authorization);
    const later = await signGet(url, { ...opts, signingDate: new Date(DATE.getTime() + 1000) });
    expect(later.authorization).not.toBe(a.authorization);
  });

  it('matches an independent implementation of the algorithm', async () => {
    const url = new URL(
      'https://abc123.execute-api.eu-west-1.amazonaws.com/v1/clients/2001%3Adb8%3A%3A1?window=60&limit=10',
    );
    const headers = await signGet(url, {
      region: 'eu-west-1',
      credentials: CREDENTIALS,
      signingDate: DATE,
    });
    const expected = expectedSignature(
      `${url.pathname}${url.search}`,
      headers,
      CREDENTIALS.secretAccessKey,
    );
    expect(headers.authorization).toContain(`Signature=${expected.signature}`);
  });

  it('signs the session token of temporary credentials', async () => {
    const url = new URL('https://abc123.execute-api.us-west-2.amazonaws.com/v1/agents');
    const headers = await signGet(url, {
      region: 'us-west-2',
      credentials: { ...CREDENTIALS, sessionToken: 'TOKEN123' },
      signingDate: DATE,
    });
    expect(headers['x-amz-security-token']).toBe('TOKEN123');
    expect(headers.authorization).toContain(
      'SignedHeaders=accept;host;x-amz-date;x-amz-security-token,',
    );
  });
});

describe('when and where to sign', () => {
  it('signs https to other machines only', () => {
    expect(needsSigning(new URL('https://abc.execute-api.eu-west-1.amazonaws.com/'))).toBe(true);
    expect(needsSigning(new URL('https://api.example.com/'))).toBe(true);
    expect(needsSigning(new URL('http://api.example.com/'))).toBe(false);
    expect(needsSigning(new URL('https://127.0.0.1:7787/'))).toBe(false);
    expect(needsSigning(new URL('https://localhost/'))).toBe(false);
    expect(needsSigning(new URL('https://[::1]:7787/'))).toBe(false);
  });

  it('finds the region in --region, then the hostname, then the environment', () => {
    const gw = new URL('https://a1b2c3.execute-api.ap-southeast-2.amazonaws.com/');
    const custom = new URL('https://udp.example.com/');
    expect(regionFromHost(gw.hostname)).toBe('ap-southeast-2');
    expect(regionFromHost('a1b2c3.execute-api.cn-north-1.amazonaws.com.cn')).toBe('cn-north-1');
    expect(regionFromHost(custom.hostname)).toBeUndefined();
    expect(resolveRegion(gw, 'eu-central-1', { AWS_REGION: 'us-east-1' })).toBe('eu-central-1');
    expect(resolveRegion(gw, undefined, { AWS_REGION: 'us-east-1' })).toBe('ap-southeast-2');
    expect(resolveRegion(custom, undefined, { AWS_REGION: 'us-east-1' })).toBe('us-east-1');
    expect(resolveRegion(custom, undefined, { AWS_DEFAULT_REGION: 'sa-east-1' })).toBe('sa-east-1');
    expect(resolveRegion(custom, undefined, {})).toBeUndefined();
  });
});

describe('createSigV4Fetch through a real HTTP server', () => {
  let server: Server;
  let base: string;
  const received: { url: string; headers: IncomingHttpHeaders }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      received.push({ url: req.url ?? '', headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ window: 300, since: 1, now: 2, services: [] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('sends requests whose signature verifies against what the server received', async () => {
    const signed = createSigV4Fetch({ region: 'eu-west-1', credentials: CREDENTIALS });
    const api = new ApiClient({ baseUrl: `${base}/prod`, fetch: signed });
    const answer = await api.services(120);
    expect(answer.data.services).toEqual([]);
    const got = received.at(-1)!;
    expect(got.url).toBe('/prod/v1/services?window=120');
    const expected = expectedSignature(got.url, got.headers, CREDENTIALS.secretAccessKey);
    expect(expected.scope).toMatch(/^\d{8}\/eu-west-1\/execute-api\/aws4_request$/);
    expect(got.headers.authorization).toContain(`Signature=${expected.signature}`);
    // A different secret must not verify: the check above is not vacuous.
    const forged = expectedSignature(got.url, got.headers, 'another-secret');
    expect(got.headers.authorization).not.toContain(`Signature=${forged.signature}`);
  });

  it('signs path parameters and cursors with characters that need encoding', async () => {
    const signed = createSigV4Fetch({ region: 'eu-west-1', credentials: CREDENTIALS });
    const api = new ApiClient({ baseUrl: base, fetch: signed });
    // The answer does not match the schema, which is fine: only the request matters here.
    await api.clients('my svc!', { cursor: 'a+b/c=', limit: 5 }).catch(() => undefined);
    const got = received.at(-1)!;
    expect(got.url).toBe('/v1/services/my%20svc%21/clients?limit=5&cursor=a%2Bb%2Fc%3D');
    const expected = expectedSignature(got.url, got.headers, CREDENTIALS.secretAccessKey);
    expect(got.headers.authorization).toContain(`Signature=${expected.signature}`);
  });

  it('reports missing credentials as a signing failure, not as an unreachable API', async () => {
    const signed = createSigV4Fetch({
      region: 'eu-west-1',
      credentials: async () => {
        throw new Error('Could not load credentials from any providers');
      },
    });
    const api = new ApiClient({ baseUrl: base, fetch: signed });
    await expect(api.agents()).rejects.toMatchObject({
      exitCode: 5,
      message: expect.stringMatching(
        /cannot sign the request with SigV4 .*Could not load credentials/s,
      ),
    });
  });
});
