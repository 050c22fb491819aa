/**
 * An HTTP proxy in front of kinesalite or dynalite that injects the faults a
 * real emulator cannot produce (5xx, throttling, partial PutRecords failures,
 * BatchGetItem keys left unprocessed, connection resets, slow answers, an outage), speaking the AWS JSON protocol
 * so the SDK v3 clients see them exactly as they would see the real service's.
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { PortInUseError } from './emulators.js';

/** What a matching rule does to a request. */
export type FaultKind =
  | 'http500'
  | 'throttle'
  | 'partialPutRecords'
  | 'partialBatchGetItem'
  | 'reset'
  | 'delay';

/** One fault rule; the first rule that matches and fires decides a request's fate. */
export interface FaultRule {
  /** X-Amz-Target, e.g. 'Kinesis_20131202.PutRecords', or just 'PutRecords'; omitted = every operation. */
  operation?: string;
  kind: FaultKind;
  /** Let this many matching requests through untouched before the rule starts firing. */
  skip?: number;
  /** Fire at most this many times; omitted = unlimited. */
  count?: number;
  /** Fire with this probability (0..1), drawn from a generator seeded with `seed`; omitted = always. */
  probability?: number;
  /** Seed of this rule's generator, so a run is reproducible (default 1). */
  seed?: number;
  /**
   * For 'http500' and 'reset': 'before' (default) answers without forwarding;
   * 'after' forwards first, so the emulator applies the request but the client
   * sees a failure (the case that makes clients retry work already done).
   */
  phase?: 'before' | 'after';
  /** For 'throttle' on DynamoDB: which throttling error (default ProvisionedThroughputExceededException). */
  throttleType?: 'ProvisionedThroughputExceededException' | 'ThrottlingException';
  /**
   * For 'partialPutRecords' (and 'partialBatchGetItem', per key): the fraction of records to fail, each chosen by the
   * rule's seeded generator; omitted = every other record (indexes 1, 3, 5 ...).
   */
  failFraction?: number;
  /** For 'delay': milliseconds to wait before forwarding (default 1000). */
  delayMs?: number;
}

/** Counters of what the proxy has seen and done. */
export interface FaultProxyStats {
  requests: number;
  injected: number;
  /** Requests per X-Amz-Target. */
  byOperation: Record<string, number>;
}

/** A running fault proxy. */
export interface FaultProxy {
  /** Base URL to give a client as its endpoint. */
  url: string;
  port: number;
  /** Replaces the rules (counts and generators start afresh). */
  setFaults(rules: FaultRule[]): void;
  /** Removes every rule: requests pass untouched. */
  clear(): void;
  /** While on, the proxy stops listening and drops open connections (an outage); off listens again on the same port. */
  refuse(on: boolean): Promise<void>;
  /** Live counters. */
  stats: FaultProxyStats;
  stop(): Promise<void>;
}

export interface FaultProxyOptions {
  /** The emulator, e.g. http://127.0.0.1:4567. */
  target: string;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
}

interface ActiveRule {
  rule: FaultRule;
  seen: number;
  fired: number;
  random: () => number;
}

/** A small deterministic generator (mulberry32), so injected faults repeat run to run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function matches(rule: FaultRule, target: string): boolean {
  if (rule.operation === undefined) return true;
  return target === rule.operation || target.endsWith(`.${rule.operation}`);
}

/** Picks the rule that fires for this request, if any, advancing its counters. */
function choose(rules: ActiveRule[], target: string): ActiveRule | undefined {
  for (const active of rules) {
    const { rule } = active;
    if (!matches(rule, target)) continue;
    active.seen++;
    if (active.seen <= (rule.skip ?? 0)) continue;
    if (rule.count !== undefined && active.fired >= rule.count) continue;
    if (rule.probability !== undefined && active.random() >= rule.probability) continue;
    active.fired++;
    return active;
  }
  return undefined;
}

const isDynamo = (target: string) => target.startsWith('DynamoDB_');

/** Writes an AWS JSON-protocol error the way the service does (`__type` body and header). */
function sendAwsError(
  res: ServerResponse,
  target: string,
  status: number,
  type: string,
  message: string,
): void {
  const dynamo = isDynamo(target);
  // DynamoDB qualifies error types with a namespace; the SDK keeps what follows '#'.
  const qualified = dynamo
    ? type === 'ThrottlingException'
      ? `com.amazon.coral.availability#${type}`
      : `com.amazonaws.dynamodb.v20120810#${type}`
    : type;
  const body = JSON.stringify({ __type: qualified, message });
  res.writeHead(status, {
    'content-type': dynamo ? 'application/x-amz-json-1.0' : 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(body),
    'x-amzn-requestid': `fault-${Date.now().toString(36)}`,
  });
  res.end(body);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

interface Upstream {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** Sends the (possibly rewritten) request to the emulator and buffers its answer. */
function forward(target: URL, req: IncomingMessage, body: Buffer): Promise<Upstream> {
  return new Promise((resolve, reject) => {
    const headers = { ...req.headers, 'content-length': String(body.length) };
    const upstream = httpRequest(
      {
        host: target.hostname.replace(/^\[|\]$/g, ''),
        port: target.port,
        method: req.method,
        path: req.url,
        headers,
      },
      (res) => {
        readBody(res).then(
          (b) => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: b }),
          reject,
        );
      },
    );
    upstream.on('error', reject);
    upstream.end(body);
  });
}

function relay(res: ServerResponse, up: Upstream, body: Buffer = up.body): void {
  const headers = { ...up.headers, 'content-length': String(body.length) };
  // The answer is re-sent whole, so hop-by-hop framing of the upstream must not leak.
  delete headers['transfer-encoding'];
  res.writeHead(up.status, headers);
  res.end(body);
}

interface PutRecordsRequest {
  StreamName?: string;
  StreamARN?: string;
  Records: unknown[];
}

interface PutRecordsResultEntry {
  SequenceNumber?: string;
  ShardId?: string;
  ErrorCode?: string;
  ErrorMessage?: string;
}

/** Indexes of the records a partialPutRecords rule fails. */
function failedIndexes(active: ActiveRule, count: number): Set<number> {
  const failed = new Set<number>();
  for (let i = 0; i < count; i++) {
    const fraction = active.rule.failFraction;
    if (fraction === undefined ? i % 2 === 1 : active.random() < fraction) failed.add(i);
  }
  return failed;
}

/**
 * Forwards only some records of a PutRecords call and answers as Kinesis does
 * when a shard throttles part of a batch: the others carry ErrorCode
 * ProvisionedThroughputExceededException and are counted in FailedRecordCount.
 */
async function partialPutRecords(
  active: ActiveRule,
  target: URL,
  req: IncomingMessage,
  body: Buffer,
  res: ServerResponse,
): Promise<void> {
  const parsed = JSON.parse(body.toString('utf8')) as PutRecordsRequest;
  const failed = failedIndexes(active, parsed.Records.length);
  const kept = parsed.Records.filter((_, i) => !failed.has(i));
  let forwarded: PutRecordsResultEntry[] = [];
  let realFailures = 0;
  let encryption: unknown;
  if (kept.length > 0) {
    const up = await forward(
      target,
      req,
      Buffer.from(JSON.stringify({ ...parsed, Records: kept })),
    );
    if (up.status !== 200) {
      relay(res, up);
      return;
    }
    const answer = JSON.parse(up.body.toString('utf8')) as {
      FailedRecordCount?: number;
      Records: PutRecordsResultEntry[];
      EncryptionType?: unknown;
    };
    forwarded = answer.Records;
    realFailures = answer.FailedRecordCount ?? 0;
    encryption = answer.EncryptionType;
  }
  const stream = parsed.StreamName ?? parsed.StreamARN ?? 'stream';
  const records: PutRecordsResultEntry[] = [];
  let next = 0;
  for (let i = 0; i < parsed.Records.length; i++) {
    if (failed.has(i)) {
      records.push({
        ErrorCode: 'ProvisionedThroughputExceededException',
        ErrorMessage: `Rate exceeded for shard in stream ${stream} (injected).`,
      });
    } else {
      records.push(forwarded[next++] ?? {});
    }
  }
  const out = Buffer.from(
    JSON.stringify({
      FailedRecordCount: realFailures + failed.size,
      Records: records,
      ...(encryption !== undefined ? { EncryptionType: encryption } : {}),
    }),
  );
  res.writeHead(200, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': out.length,
    'x-amzn-requestid': `fault-${Date.now().toString(36)}`,
  });
  res.end(out);
}

interface BatchGetRequest {
  RequestItems: Record<string, { Keys: unknown[] } & Record<string, unknown>>;
}

/**
 * Forwards only some keys of a BatchGetItem call and answers as DynamoDB does
 * when it cannot read them all (throttling, size): the rest come back in
 * UnprocessedKeys with the table's other request parameters.
 */
async function partialBatchGetItem(
  active: ActiveRule,
  target: URL,
  req: IncomingMessage,
  body: Buffer,
  res: ServerResponse,
): Promise<void> {
  const parsed = JSON.parse(body.toString('utf8')) as BatchGetRequest;
  const kept: BatchGetRequest['RequestItems'] = {};
  const unprocessed: BatchGetRequest['RequestItems'] = {};
  for (const [table, request] of Object.entries(parsed.RequestItems)) {
    const failed = failedIndexes(active, request.Keys.length);
    const keep = request.Keys.filter((_, i) => !failed.has(i));
    const left = request.Keys.filter((_, i) => failed.has(i));
    if (keep.length > 0) kept[table] = { ...request, Keys: keep };
    if (left.length > 0) unprocessed[table] = { ...request, Keys: left };
  }
  let answer: { Responses?: Record<string, unknown[]>; UnprocessedKeys?: object } = {
    Responses: {},
  };
  if (Object.keys(kept).length > 0) {
    const up = await forward(
      target,
      req,
      Buffer.from(JSON.stringify({ ...parsed, RequestItems: kept })),
    );
    if (up.status !== 200) {
      relay(res, up);
      return;
    }
    answer = JSON.parse(up.body.toString('utf8'));
  }
  const out = Buffer.from(JSON.stringify({ ...answer, UnprocessedKeys: unprocessed }));
  res.writeHead(200, {
    'content-type': 'application/x-amz-json-1.0',
    'content-length': out.length,
    'x-amzn-requestid': `fault-${Date.now().toString(36)}`,
  });
  res.end(out);
}

/** Applies the chosen rule (or none) to one request. */
async function handle(
  active: ActiveRule | undefined,
  targetName: string,
  target: URL,
  req: IncomingMessage,
  body: Buffer,
  res: ServerResponse,
): Promise<void> {
  const rule = active?.rule;
  if (rule === undefined || active === undefined) {
    relay(res, await forward(target, req, body));
    return;
  }
  const after = rule.phase === 'after';
  switch (rule.kind) {
    case 'delay':
      await new Promise((r) => setTimeout(r, rule.delayMs ?? 1000));
      relay(res, await forward(target, req, body));
      return;
    case 'reset':
      if (after) await forward(target, req, body);
      req.socket.destroy();
      return;
    case 'http500':
      if (after) await forward(target, req, body);
      sendAwsError(
        res,
        targetName,
        500,
        isDynamo(targetName) ? 'InternalServerError' : 'InternalFailure',
        'Internal service error (injected).',
      );
      return;
    case 'throttle': {
      const type = isDynamo(targetName)
        ? (rule.throttleType ?? 'ProvisionedThroughputExceededException')
        : 'ProvisionedThroughputExceededException';
      sendAwsError(res, targetName, 400, type, 'Rate exceeded (injected).');
      return;
    }
    case 'partialPutRecords':
      if (!targetName.endsWith('.PutRecords')) {
        relay(res, await forward(target, req, body));
        return;
      }
      await partialPutRecords(active, target, req, body, res);
      return;
    case 'partialBatchGetItem':
      if (!targetName.endsWith('.BatchGetItem')) {
        relay(res, await forward(target, req, body));
        return;
      }
      await partialBatchGetItem(active, target, req, body, res);
      return;
  }
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new PortInUseError('Fault proxy', host, port) : err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Starts a fault-injecting proxy in front of an emulator; with no rules it is transparent. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const host = options.host ?? '127.0.0.1';
  let rules: ActiveRule[] = [];
  const stats: FaultProxyStats = { requests: 0, injected: 0, byOperation: {} };
  const sockets = new Set<Socket>();

  const server = createServer((req, res) => {
    const targetName = String(req.headers['x-amz-target'] ?? '');
    stats.requests++;
    stats.byOperation[targetName] = (stats.byOperation[targetName] ?? 0) + 1;
    readBody(req)
      .then((body) => {
        const active = choose(rules, targetName);
        if (active) stats.injected++;
        return handle(active, targetName, target, req, body, res);
      })
      .catch((err: Error) => {
        // The emulator itself is unreachable or answered garbage: say so as a 502.
        if (!res.headersSent) {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(`fault proxy: upstream ${options.target}: ${err.message}`);
        } else {
          res.destroy();
        }
      });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  const port = await listen(server, host, options.port ?? 0);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let refusing = false;

  const closeServer = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      if (!server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
    });

  return {
    url: `http://${urlHost}:${port}`,
    port,
    stats,
    setFaults(next) {
      rules = next.map((rule) => ({
        rule,
        seen: 0,
        fired: 0,
        random: seededRandom(rule.seed ?? 1),
      }));
    },
    clear() {
      rules = [];
    },
    async refuse(on) {
      if (on === refusing) return;
      refusing = on;
      if (on) await closeServer();
      else await listen(server, host, port);
    },
    async stop() {
      await closeServer();
    },
  };
}
