/**
 * A stand-in for API Gateway's IAM auth in front of a local API: it checks
 * each request's SigV4 signature (execute-api) by signing the same request
 * again with the known credentials at the request's own x-amz-date, and
 * forwards only requests whose signature matches. Others get 403 with
 * API Gateway's `{"message": ...}` body.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';

/** What the proxy saw. */
export interface ProxyLog {
  verified: string[];
  refused: { target: string; why: string }[];
}

/** Parses `20261202T055400Z`. */
function amzDate(text: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  return new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
}

async function why(
  req: IncomingMessage,
  credentials: { accessKeyId: string; secretAccessKey: string },
  region: string,
): Promise<string | undefined> {
  const auth = req.headers.authorization;
  if (!auth) return 'Missing Authentication Token';
  const signed = /SignedHeaders=([^,]+)/.exec(auth)?.[1]?.split(';') ?? [];
  const date = amzDate(String(req.headers['x-amz-date'] ?? ''));
  if (!date) return 'no valid x-amz-date';
  const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const headers: Record<string, string> = {};
  for (const name of signed) headers[name] = String(req.headers[name] ?? '');
  const again = await new SignatureV4({
    service: 'execute-api',
    region,
    credentials,
    sha256: Sha256,
    applyChecksum: false,
  }).sign(
    new HttpRequest({
      method: req.method ?? 'GET',
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query,
      headers,
    }),
    { signingDate: date },
  );
  return again.headers.authorization === auth
    ? undefined
    : 'The request signature we calculated does not match the signature you provided.';
}

/** Starts the proxy on `host` (a loopback address other than 127.0.0.1 in the suite). */
export async function startSigV4CheckingProxy(options: {
  host: string;
  upstream: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
}): Promise<{ url: string; log: ProxyLog; stop(): Promise<void> }> {
  const log: ProxyLog = { verified: [], refused: [] };
  const server = createServer((req, res) => {
    void (async () => {
      const target = req.url ?? '/';
      const refusal = await why(req, options.credentials, options.region);
      if (refusal) {
        log.refused.push({ target, why: refusal });
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: refusal }));
        return;
      }
      log.verified.push(target);
      const upstream = await fetch(`${options.upstream}${target}`);
      const body = Buffer.from(await upstream.arrayBuffer());
      res.writeHead(upstream.status, {
        'content-type': upstream.headers.get('content-type') ?? 'application/json',
      });
      res.end(body);
    })().catch((err: unknown) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((r) => server.listen(0, options.host, r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host}:${port}`,
    log,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
