/**
 * `udpwatch ui`: serves the web view on this machine and forwards the page's
 * API requests (GET /v1/...) to the API through the CLI's transport, which
 * signs them with SigV4 for a deployed stack. Credentials stay in this
 * process; the browser only ever talks to localhost.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { PROBLEM_CONTENT_TYPE, problemBody } from '../contract/api-schemas.js';
import { UI_PAGE_DIR, UI_PAGE_FILE } from '../contract/ui-page.js';
import { ApiClient } from './api-client.js';
import { CliError, EXIT } from './cli-errors.js';
import type { FetchLike } from './sigv4-fetch.js';

/** Longest request target forwarded; API paths and queries are far shorter. */
const MAX_TARGET = 4096;
/** Largest API answer forwarded (a page of 1,000 clients is well under this). */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
/** Longest the API may take to answer one forwarded request. */
const UPSTREAM_TIMEOUT_MS = 30_000;
/** Characters an encoded API path may hold. */
const PATH_RE = /^\/v1\/[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*$/;

/**
 * Where the built page is: next to the bundled CLI in the package
 * (dist/ui/index.html beside dist/udpwatch.js), or in a checkout's dist/ after
 * `npm run build`.
 */
export function findUiPage(): string {
  const candidates = [
    new URL(`./${UI_PAGE_DIR}/${UI_PAGE_FILE}`, import.meta.url),
    new URL(`../dist/${UI_PAGE_DIR}/${UI_PAGE_FILE}`, import.meta.url),
  ].map((u) => fileURLToPath(u));
  const found = candidates.find((f) => existsSync(f));
  if (!found) {
    throw new CliError(
      `the web view is not built (looked for ${candidates.join(' and ')}).\n` +
        'In a checkout, run `npm run build` first; an installed package ships it.',
      EXIT.failed,
    );
  }
  return readFileSync(found, 'utf8');
}

/** What the server needs: the page, the API and the transport to reach it. */
export interface UiServerOptions {
  html: string;
  apiUrl: string;
  transport: FetchLike;
  host?: string;
  /** 0 picks a free port. */
  port: number;
}

/** A running `udpwatch ui` server. */
export interface UiServer {
  url: string;
  stop(): Promise<void>;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

function problem(status: number, title: string, detail: string, parameter?: string): Answer {
  return {
    status,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store' },
    body: Buffer.from(JSON.stringify(problemBody(status, title, detail, parameter))),
  };
}

/** Hosts a browser may name for this server: anything else is refused (DNS rebinding). */
function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
}

/** Forwards one GET of an API path to the API and returns its answer as is. */
async function forward(api: ApiClient, transport: FetchLike, target: string): Promise<Answer> {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (!PATH_RE.test(path)) {
    return problem(400, 'Bad Request', `not an API path: ${JSON.stringify(path.slice(0, 100))}`);
  }
  const query: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(q < 0 ? '' : target.slice(q + 1))) {
    // Kept as one value each so what is signed is what is sent; the API refuses repeats anyway.
    if (Object.hasOwn(query, key)) {
      return problem(400, 'Bad Request', `${key}: given more than once`, key);
    }
    query[key] = value;
  }
  const url = api.url(path, query);
  let res: Response;
  let body: Buffer;
  try {
    res = await transport(url, {
      method: 'GET',
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
    });
    body = Buffer.from(await res.arrayBuffer());
  } catch (err) {
    // fetch says only "fetch failed"; the cause has the code (ECONNREFUSED, ENOTFOUND).
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
    return problem(502, 'Bad Gateway', `udpwatch ui could not get ${url}: ${why}`);
  }
  if (body.length > MAX_ANSWER_BYTES) {
    return problem(502, 'Bad Gateway', `the API's answer is larger than ${MAX_ANSWER_BYTES} bytes`);
  }
  return {
    status: res.status,
    headers: {
      'content-type': res.headers.get('content-type') ?? 'application/json',
      'cache-control': 'no-store',
    },
    body,
  };
}

async function answer(
  req: IncomingMessage,
  options: UiServerOptions,
  api: ApiClient,
  hosts: Set<string>,
): Promise<Answer> {
  if (!hosts.has((req.headers.host ?? '').toLowerCase())) {
    return problem(
      403,
      'Forbidden',
      `udpwatch ui answers only requests for ${[...hosts].join(', ')}, not ${JSON.stringify(req.headers.host ?? '')}`,
    );
  }
  const target = req.url ?? '/';
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return { ...problem(405, 'Method Not Allowed', `${req.method} is not served; only GET`) };
  }
  if (target.length > MAX_TARGET) {
    return problem(414, 'URI Too Long', `the request target is longer than ${MAX_TARGET}`);
  }
  const path = target.split('?')[0];
  if (path === '/' || path === '/index.html') {
    return {
      status: 200,
      headers: {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'DENY',
      },
      body: Buffer.from(options.html),
    };
  }
  if (path?.startsWith('/v1/')) return forward(api, options.transport, target);
  return problem(
    404,
    'Not Found',
    `nothing at ${JSON.stringify(path?.slice(0, 100))}; the page is at /`,
  );
}

function send(res: ServerResponse, a: Answer, head: boolean): void {
  res.writeHead(a.status, { ...a.headers, 'content-length': a.body.length });
  res.end(head ? undefined : a.body);
}

/** Starts the server on 127.0.0.1 (or `host`); rejects naming the port when it is taken. */
export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  const host = options.host ?? '127.0.0.1';
  const api = new ApiClient({ baseUrl: options.apiUrl, fetch: options.transport });
  let hosts = new Set<string>();
  const server = createServer((req, res) => {
    answer(req, options, api, hosts).then(
      (a) => send(res, a, req.method === 'HEAD'),
      (err: unknown) => send(res, problem(500, 'Internal Server Error', String(err)), false),
    );
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new CliError(
              `port ${options.port} on ${host} is taken: pass another with --port (0 picks a free one)`,
              EXIT.failed,
            )
          : err,
      );
    });
    server.listen(options.port, host, () => resolve((server.address() as AddressInfo).port));
  });
  hosts = allowedHosts(port);
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
