/**
 * What the pipeline suites share: the local stack with the real functions,
 * the real agent and daemons as processes (optionally inside a network
 * namespace), UDP clients with a known plan, bounded polling of the HTTP API,
 * and the counts a correct pipeline must report for a plan.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { ENV } from '../../../contract/resources.js';
import { createAggregateHandler } from '../../../functions/aggregate/handler.js';
import { configFromEnv } from '../../../functions/store/config.js';
import { type FaultProxy, startFaultProxy } from '../../../local/fault-proxy.js';
import {
  type AggregateHandler,
  type LocalStack,
  startLocalStack,
} from '../../../local/local-stack.js';
import { loadFunctionHandlers } from '../../../local/start.js';
import { readShardRecords } from '../../support/stream-records.js';

const run = promisify(execFile);

const REPO = resolve(import.meta.dirname, '../../..');
const HOOK = join(REPO, 'agent/hook/register.mjs');
const AGENT_BIN = join(REPO, 'bin/udpwatch-agent.js');
const ACK_DAEMON = join(import.meta.dirname, 'ack-daemon.mjs');
const UDP_CLIENTS = join(import.meta.dirname, 'udp-clients.mjs');

/** Waits `ms` milliseconds. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Calls `probe` every `intervalMs` until it returns something other than
 * undefined, at most `timeoutMs`; on timeout throws naming `what` and the
 * last thing seen, so a failure says what never happened.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs?: number; intervalMs?: number; describe?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  const interval = options.intervalMs ?? 200;
  let last: unknown;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(interval);
  }
  const extra = options.describe?.() ?? '';
  throw new Error(
    `timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}${extra ? `\n${extra}` : ''}`,
  );
}

/** An HTTP answer of the local API. */
export interface ApiAnswer<T = unknown> {
  status: number;
  contentType: string;
  body: T;
}

/** The local stack with the real functions, and what the tests drive it with. */
export interface Pipeline {
  stack: LocalStack;
  /** Base URL of the HTTP API. */
  apiUrl: string;
  /** Where agents ship: the Kinesis proxy (faults on demand). */
  kinesisProxy: FaultProxy;
  /** Present when asked for: the proxy between the aggregate function and DynamoDB. */
  dynamodbProxy?: FaultProxy;
  /** GET on the API, parsed as JSON. */
  get<T = unknown>(path: string): Promise<ApiAnswer<T>>;
  stop(): Promise<void>;
}

export interface PipelineOptions {
  /** Route the aggregate function's DynamoDB calls through a fault proxy (one SDK attempt per call, so faults reach the handler). */
  dynamodbProxy?: boolean;
  /** Wraps the real aggregate handler (e.g. to make it crash). */
  wrapAggregate?: (real: AggregateHandler) => AggregateHandler;
  /** Print the functions' EMF metrics (off by default: only warnings are printed). */
  metrics?: boolean;
}

/** Starts the local stack on free ports with the real handlers and a fast event source. */
export async function startPipeline(options: PipelineOptions = {}): Promise<Pipeline> {
  let dynamodbProxy: FaultProxy | undefined;
  const stack = await startLocalStack({
    ports: { kinesis: 0, dynamodb: 0, api: 0 },
    // Retries as deployed: until a record is about to leave the stream.
    poller: { maxBatchingWindowMs: 50, pollIntervalMs: 50 },
    // Quiet functions: warnings and errors only, metrics only where a suite reads them.
    functionEnv: {
      [ENV.cursorKey]: 'udpwatch-e2e-cursor-key',
      POWERTOOLS_LOG_LEVEL: 'WARN',
      POWERTOOLS_METRICS_DISABLED: options.metrics ? 'false' : 'true',
    },
    // No scheduled metrics runs: these suites read the API, not CloudWatch.
    loadHandlers: async () => {
      const real = await loadFunctionHandlers();
      let aggregate = real.aggregate;
      if (options.dynamodbProxy) {
        const target = process.env[ENV.dynamodbEndpoint];
        if (!target) throw new Error(`${ENV.dynamodbEndpoint} is not set by the local stack`);
        dynamodbProxy = await startFaultProxy({ target });
        aggregate = createAggregateHandler(
          { ...configFromEnv(), dynamodbEndpoint: dynamodbProxy.url },
          { maxAttempts: 1 },
        ) as AggregateHandler;
      }
      if (aggregate && options.wrapAggregate) aggregate = options.wrapAggregate(aggregate);
      return { aggregate, query: real.query };
    },
  });
  const kinesisProxy = await startFaultProxy({ target: stack.emulators.kinesisEndpoint });
  const apiUrl = stack.api?.url;
  if (!apiUrl) throw new Error('the local stack started no HTTP API');
  return {
    stack,
    apiUrl,
    kinesisProxy,
    dynamodbProxy,
    async get<T>(path: string): Promise<ApiAnswer<T>> {
      const res = await fetch(`${apiUrl}${path}`);
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Left as text: the assertion will show it.
      }
      return {
        status: res.status,
        contentType: res.headers.get('content-type') ?? '',
        body: body as T,
      };
    },
    async stop() {
      await kinesisProxy.stop();
      await dynamodbProxy?.stop();
      await stack.stop();
    },
  };
}

/** A record as it sits in the stream. */
export interface StoredRecord {
  partitionKey: string;
  data: Buffer;
}

/** Every record the stream holds now, shard by shard in order (bounded reads). */
export async function readAllRecords(
  kinesis: KinesisClient,
  streamName: string,
): Promise<StoredRecord[]> {
  return (await readShardRecords(kinesis, streamName)).flatMap(({ records }) =>
    records.map((r) => ({ partitionKey: r.PartitionKey ?? '', data: Buffer.from(r.Data ?? []) })),
  );
}

/** Spawns a process, in a namespace when `ns` is given; output is piped. */
function spawnIn(ns: string | undefined, cmd: string, args: string[], env: NodeJS.ProcessEnv) {
  const [file, argv] = ns ? ['ip', ['netns', 'exec', ns, cmd, ...args]] : [cmd, args];
  return spawn(file, argv, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Agent settings the tests vary; written as the agent's JSON config file. */
export interface AgentSettings {
  host: string;
  services: { name: string; port?: number; process?: string; timeoutSeconds?: number }[];
  sources: { hook: boolean; ebpf?: boolean; conntrack: boolean; proc: boolean };
  /** Other config fields (e.g. heartbeatSeconds), over the suite's defaults. */
  tuning?: Record<string, unknown>;
}

/** A running `udpwatch-agent run` process. */
export interface AgentProcess {
  child: ChildProcess;
  /** Everything it wrote to stderr so far. */
  log(): string;
  /** Waits until its log matches `times` times (default once). */
  waitForLog(pattern: RegExp, options?: { timeoutMs?: number; times?: number }): Promise<void>;
  /** Sends a signal and resolves with the exit code (null when killed by the signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the real agent CLI (`node bin/udpwatch-agent.js run`) with short
 * intervals and waits for its start line (its first cycle has run by then,
 * so conntrack's baseline is taken).
 */
export async function startAgent(options: {
  ns?: string;
  stream: string;
  endpoint: string;
  stateDir: string;
  hookSocket: string;
  configPath: string;
  settings: AgentSettings;
}): Promise<AgentProcess> {
  writeFileSync(
    options.configPath,
    JSON.stringify({
      host: options.settings.host,
      heartbeatSeconds: 1,
      // Seal every second: the suites check what arrives within seconds, not a minute.
      sealIntervalSeconds: 1,
      retryMaxSeconds: 0.3,
      // eBPF (on by default) only when a suite asks: these suites check which source counted.
      sources: { ebpf: false, ...options.settings.sources },
      services: options.settings.services,
      ...options.settings.tuning,
    }),
  );
  const child = spawnIn(
    options.ns,
    process.execPath,
    [
      AGENT_BIN,
      'run',
      '--stream',
      options.stream,
      '--endpoint',
      options.endpoint,
      '--state-dir',
      options.stateDir,
      '--hook-socket',
      options.hookSocket,
      '--config',
      options.configPath,
      '--interval',
      '0.2',
    ],
    process.env,
  );
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  child.stdout?.resume();
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const agent: AgentProcess = {
    child,
    log: () => err,
    async waitForLog(pattern, { timeoutMs = 20_000, times = 1 } = {}) {
      const global = new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`);
      await waitFor(
        `agent log to match ${pattern} ${times} time(s)`,
        () => {
          if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}: ${err}`);
          return (err.match(global)?.length ?? 0) >= times ? true : undefined;
        },
        { timeoutMs, intervalMs: 50, describe: () => `agent log:\n${err}` },
      );
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
  await agent.waitForLog(/started: agent /);
  return agent;
}

/** A daemon process and the port it listens on. */
export interface DaemonProcess {
  child: ChildProcess;
  port: number;
  pid: number;
}

/** Reads the first line a child prints on stdout (bounded by `timeoutMs`). */
function firstLine(child: ChildProcess, what: string, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolveLine, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(
      () => reject(new Error(`${what}: no output in ${timeoutMs} ms: ${err}`)),
      timeoutMs,
    );
    child.stderr?.on('data', (d) => {
      err += d;
    });
    child.stdout?.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolveLine(out.slice(0, nl));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited ${code}: ${err}`));
    });
  });
}

/** Starts the ack daemon under the dgram hook, reporting to `hookSocket`. */
export async function startHookedDaemon(options: {
  ns?: string;
  ip: string;
  port?: number;
  hookSocket: string;
}): Promise<DaemonProcess> {
  const child = spawnIn(
    options.ns,
    process.execPath,
    ['--import', HOOK, ACK_DAEMON, options.ip, String(options.port ?? 0)],
    { ...process.env, UDPWATCH_HOOK_SOCKET: options.hookSocket, UDPWATCH_HOOK_INTERVAL_MS: '100' },
  );
  const line = await firstLine(child, 'ack daemon');
  const { port, pid } = JSON.parse(line) as { port: number; pid: number };
  return { child, port, pid };
}

/** One client of a plan: a socket sending one datagram per size to target:port. */
export interface ClientPlan {
  target: string;
  port: number;
  sport?: number;
  sizes: number[];
}

/** What one client saw: its local port and the answers it got. */
export interface ClientResult {
  sport: number;
  answered: number;
  bytesBack: number;
}

/** Runs a plan of clients (one process, clients one after another), in a namespace when given. */
export async function runClients(plan: ClientPlan[], ns?: string): Promise<ClientResult[]> {
  const argv = [UDP_CLIENTS, JSON.stringify(plan)];
  const { stdout } = ns
    ? await run('ip', ['netns', 'exec', ns, process.execPath, ...argv])
    : await run(process.execPath, argv);
  const results = JSON.parse(stdout) as ClientResult[];
  // Every datagram must have been answered, or the expected counts are wrong.
  plan.forEach((p, i) => {
    if (results[i]?.answered !== p.sizes.length) {
      throw new Error(`client ${i} got ${results[i]?.answered} of ${p.sizes.length} answers`);
    }
  });
  return results;
}

/** Packet and byte counters as the API reports them. */
export interface Counters {
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** What the hook must count for datagrams of these sizes answered by the ack daemon. */
export function ackDaemonCounters(sizes: number[]): Counters {
  return {
    pktsIn: sizes.length,
    bytesIn: sum(sizes),
    pktsOut: sizes.length,
    bytesOut: sum(sizes.map((s) => Math.floor(s / 2) + 1)),
  };
}

/** What conntrack must count for datagrams of these sizes echoed back whole: payload bytes, as every source. */
export function echoedConntrackCounters(sizes: number[]): Counters {
  const bytes = sum(sizes);
  return { pktsIn: sizes.length, bytesIn: bytes, pktsOut: sizes.length, bytesOut: bytes };
}

/** Adds counters. */
export function addCounters(...cs: Counters[]): Counters {
  return {
    pktsIn: sum(cs.map((c) => c.pktsIn)),
    bytesIn: sum(cs.map((c) => c.bytesIn)),
    pktsOut: sum(cs.map((c) => c.pktsOut)),
    bytesOut: sum(cs.map((c) => c.bytesOut)),
  };
}

/** The counters of an API entry, without the rest. */
export function countersOf(e: Counters): Counters {
  return { pktsIn: e.pktsIn, bytesIn: e.bytesIn, pktsOut: e.pktsOut, bytesOut: e.bytesOut };
}
