/**
 * A small HTTP server that stands in for an API Gateway HTTP API with one
 * `$default` route: each request becomes the payload format 2.0 event API
 * Gateway would send the function, and the function's result becomes the
 * response by the same rules (structured, or inferred from a bare value).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from 'aws-lambda';
import { PROBLEM_CONTENT_TYPE, problemBody } from '../contract/api-schemas.js';
import { LOCAL_REGION } from './aws-clients.js';
import { PortInUseError } from './emulators.js';
import { LOCAL_ACCOUNT_ID, lambdaContext } from './lambda-context.js';

/** A function behind the API, as API Gateway invokes it. */
export type ApiHandler = (event: APIGatewayProxyEventV2, context: Context) => Promise<unknown>;

export interface ApiServerOptions {
  handler: ApiHandler;
  host?: string;
  /** 0 (default) picks a free port; npm start uses 7787. */
  port?: number;
  stage?: string;
  /** Name the function goes by in its context (default udpwatch-query). */
  functionName?: string;
  region?: string;
  accountId?: string;
  /** Where a handler's thrown error is reported (default console.error). */
  onError?: (err: unknown, event: APIGatewayProxyEventV2) => void;
  /** Longest a handler may take before the request is answered 504 (default 30 s, API Gateway's limit). */
  timeoutMs?: number;
  /** Largest request body (default 6 MB, Lambda's payload limit). */
  maxBodyBytes?: number;
  /** The web view's HTML, answered at GET / (and /index.html) instead of the function. */
  page?: string;
}

export interface ApiServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** API Gateway refuses larger requests than Lambda accepts (6 MB payload). */
const MAX_BODY_BYTES = 6 * 1024 * 1024;
/** API Gateway gives an integration at most 30 s. */
const TIMEOUT_MS = 30_000;
/** The methods an HTTP API route can match; others never reach a function. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const API_ID = 'local';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** requestContext.time as API Gateway writes it: 12/Mar/2020:19:03:58 +0000. */
function gatewayTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** Content types API Gateway passes as text; anything else arrives base64-encoded. */
function isTextual(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return (
    type.startsWith('text/') ||
    type === 'application/json' ||
    type.endsWith('+json') ||
    type === 'application/xml' ||
    type.endsWith('+xml') ||
    type === 'application/javascript' ||
    type === 'application/x-www-form-urlencoded'
  );
}

/** Header names lowercased, repeated headers joined with commas; cookies split out as API Gateway does. */
function gatewayHeaders(req: IncomingMessage): {
  headers: Record<string, string>;
  cookies: string[];
} {
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = (req.rawHeaders[i] as string).toLowerCase();
    const value = req.rawHeaders[i + 1] as string;
    if (name === 'cookie') {
      for (const c of value.split(';')) if (c.trim()) cookies.push(c.trim());
      continue;
    }
    headers[name] = name in headers ? `${headers[name]},${value}` : value;
  }
  return { headers, cookies };
}

/**
 * queryStringParameters: decoded, repeated keys joined with commas. Built
 * without a prototype so that `__proto__` is kept as a key and `constructor`
 * or `toString` are not taken for repeats of inherited members.
 */
function queryParameters(raw: string): Record<string, string> | undefined {
  if (raw === '') return undefined;
  const out = Object.create(null) as Record<string, string>;
  for (const [key, value] of new URLSearchParams(raw)) {
    out[key] = Object.hasOwn(out, key) ? `${out[key]},${value}` : value;
  }
  return out;
}

/** Builds the payload 2.0 event for one request. */
export function toGatewayEvent(
  req: IncomingMessage,
  body: Buffer,
  options: { stage: string; accountId: string },
): APIGatewayProxyEventV2 {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQueryString = q < 0 ? '' : url.slice(q + 1);
  const { headers, cookies } = gatewayHeaders(req);
  const domainName = headers.host ?? 'localhost';
  const at = new Date();
  const text = isTextual(headers['content-type']);
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    ...(cookies.length > 0 ? { cookies } : {}),
    headers,
    requestContext: {
      accountId: options.accountId,
      apiId: API_ID,
      domainName,
      domainPrefix: domainName.split('.')[0] ?? domainName,
      http: {
        method: req.method ?? 'GET',
        path: rawPath,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: options.stage,
      time: gatewayTime(at),
      timeEpoch: at.getTime(),
    },
    isBase64Encoded: body.length > 0 && !text,
  };
  const query = queryParameters(rawQueryString);
  if (query) event.queryStringParameters = query;
  if (body.length > 0) event.body = text ? body.toString('utf8') : body.toString('base64');
  return event;
}

interface HttpAnswer {
  statusCode: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

const jsonAnswer = (statusCode: number, value: unknown): HttpAnswer => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: Buffer.from(JSON.stringify(value)),
});

/** An error the adapter answers itself, as the same problem document the query function sends. */
function problemAnswer(
  statusCode: number,
  title: string,
  detail: string,
  headers: Record<string, string> = {},
): HttpAnswer {
  return {
    statusCode,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store', ...headers },
    body: Buffer.from(JSON.stringify(problemBody(statusCode, title, detail))),
  };
}

/** Why a request cannot become an event, as the answer to send; undefined when it can. */
function refusal(req: IncomingMessage): HttpAnswer | undefined {
  const method = req.method ?? '';
  if (!METHODS.includes(method)) {
    return problemAnswer(
      405,
      'Method Not Allowed',
      `${method} is not a method an HTTP API routes; use one of ${METHODS.join(', ')}`,
      { allow: METHODS.join(', ') },
    );
  }
  // Absolute-form (`GET http://host/path`) and `*` targets have no path to route.
  if (!(req.url ?? '').startsWith('/')) {
    return problemAnswer(
      400,
      'Bad Request',
      `request target ${JSON.stringify((req.url ?? '').slice(0, 100))} is not a path starting with /`,
    );
  }
  return undefined;
}

/**
 * Turns a handler's result into a response. A result with a numeric statusCode
 * is taken as structured; anything else is inferred as API Gateway does:
 * status 200, JSON content type, and the value (a string as is) as the body.
 */
export function fromGatewayResult(result: unknown): HttpAnswer {
  if (typeof result === 'string') {
    return {
      statusCode: 200,
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(result),
    };
  }
  const shaped = result as Exclude<APIGatewayProxyResultV2, string> | null | undefined;
  if (shaped === null || typeof shaped !== 'object' || !('statusCode' in shaped)) {
    return jsonAnswer(200, result ?? null);
  }
  const statusCode = shaped.statusCode;
  if (
    typeof statusCode !== 'number' ||
    !Number.isInteger(statusCode) ||
    statusCode < 100 ||
    statusCode > 599
  ) {
    return problemAnswer(
      500,
      'Internal Server Error',
      `the function returned a malformed result: statusCode ${JSON.stringify(String(statusCode)).slice(0, 40)} is not an HTTP status`,
    );
  }
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(shaped.headers ?? {}))
    headers[name.toLowerCase()] = String(value);
  if (shaped.cookies && shaped.cookies.length > 0) headers['set-cookie'] = [...shaped.cookies];
  const raw = shaped.body ?? '';
  const body = shaped.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  return { statusCode, headers, body };
}

/** The request body, or undefined when it passes maxBytes (the rest is read and dropped). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= maxBytes) chunks.push(c);
    });
    req.on('end', () => resolve(size > maxBytes ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The handler's result, or `timedOut` when it takes longer than ms. */
function withTimeout<T>(work: Promise<T>, ms: number): Promise<T | typeof timedOut> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof timedOut>((resolve) => {
    timer = setTimeout(() => resolve(timedOut), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
const timedOut = Symbol('timed out');

/** Answers a request node:http could not parse, straight on the socket. */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const [status, title] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout']
        : [400, 'Bad Request'];
  const detail =
    status === 431
      ? 'the request header fields are larger than the server accepts'
      : status === 408
        ? 'the request did not arrive in time'
        : `malformed HTTP request (${err.code ?? 'unknown'}): ${err.message}`;
  const answer = problemAnswer(status, title, detail);
  const head = [
    `HTTP/1.1 ${status} ${title}`,
    ...Object.entries(answer.headers).map(([name, value]) => `${name}: ${value}`),
    `content-length: ${answer.body.length}`,
    'connection: close',
  ];
  socket.end(Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), answer.body]));
}

/** The web view for GET or HEAD of / or /index.html (any query: the page reads only its hash). */
function pageAnswer(req: IncomingMessage, html: string): HttpAnswer | undefined {
  const path = (req.url ?? '').split('?')[0];
  if ((req.method !== 'GET' && req.method !== 'HEAD') || (path !== '/' && path !== '/index.html')) {
    return undefined;
  }
  return {
    statusCode: 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
    },
    body: req.method === 'HEAD' ? Buffer.alloc(0) : Buffer.from(html),
  };
}

function send(res: ServerResponse, answer: HttpAnswer): void {
  res.writeHead(answer.statusCode, { ...answer.headers, 'content-length': answer.body.length });
  res.end(answer.body);
}

/** Starts the HTTP server; rejects with PortInUseError when the port is taken. */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const host = options.host ?? '127.0.0.1';
  const stage = options.stage ?? '$default';
  const accountId = options.accountId ?? LOCAL_ACCOUNT_ID;
  const region = options.region ?? LOCAL_REGION;
  const functionName = options.functionName ?? 'udpwatch-query';
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
  const maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const onError =
    options.onError ??
    ((err: unknown, event: APIGatewayProxyEventV2) => {
      console.error(`handler failed on ${event.requestContext.http.method} ${event.rawPath}:`, err);
    });

  const server: Server = createServer((req, res) => {
    readBody(req, maxBodyBytes)
      .then(async (body) => {
        const refused = refusal(req);
        if (refused) {
          send(res, refused);
          return;
        }
        const page = options.page !== undefined ? pageAnswer(req, options.page) : undefined;
        if (page) {
          send(res, page);
          return;
        }
        if (body === undefined) {
          send(
            res,
            problemAnswer(
              413,
              'Content Too Large',
              `the request body is larger than ${maxBodyBytes} bytes`,
            ),
          );
          return;
        }
        const event = toGatewayEvent(req, body, { stage, accountId });
        let result: unknown;
        try {
          // Through a promise so that a synchronous throw is caught like a rejection.
          const work = Promise.resolve().then(() =>
            options.handler(event, lambdaContext({ functionName, region, accountId })),
          );
          // A late failure is still reported; its answer is long gone.
          work.catch((err: unknown) => onError(err, event));
          result = await withTimeout(work, timeoutMs);
        } catch {
          send(
            res,
            problemAnswer(500, 'Internal Server Error', 'the function failed; see its log'),
          );
          return;
        }
        if (result === timedOut) {
          send(
            res,
            problemAnswer(
              504,
              'Gateway Timeout',
              `the function did not answer within ${timeoutMs} ms`,
            ),
          );
          return;
        }
        send(res, fromGatewayResult(result));
      })
      .catch((err: unknown) => {
        if (!res.headersSent) {
          send(
            res,
            problemAnswer(400, 'Bad Request', `the request could not be read: ${String(err)}`),
          );
        } else res.destroy();
      });
  });
  server.on('clientError', answerClientError);

  const port = await new Promise<number>((resolve, reject) => {
    const requested = options.port ?? 0;
    const onListenError = (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new PortInUseError('API', host, requested) : err);
    };
    server.once('error', onListenError);
    server.listen(requested, host, () => {
      server.off('error', onListenError);
      resolve((server.address() as AddressInfo).port);
    });
  });
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
