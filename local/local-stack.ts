/**
 * The whole local AWS runtime in one call: emulators with the stream and
 * table, the event-source poller feeding the aggregate handler, the HTTP API
 * in front of the query handler, the summarize and roll-up schedules and the TTL sweeper,
 * with the environment the functions expect. Tests and `npm start` use it.
 */
import { ENV, ROLLUP_SCHEDULE_MINUTES, ROLLUP_TIMEOUT_MINUTES } from '../contract/resources.js';
import { type ApiHandler, type ApiServer, startApiServer } from './api-gateway-adapter.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './aws-clients.js';
import { type Emulators, startEmulators } from './emulators.js';
import {
  type EventSourcePoller,
  type PollerFailure,
  type PollerOptions,
  startEventSourcePoller,
} from './event-source-poller.js';
import { type Schedule, type ScheduledHandler, startSchedule } from './scheduled-invoker.js';
import { startTtlSweeper, type TtlSweeper } from './ttl-sweeper.js';

/** The aggregate function, as the event source mapping invokes it. */
export type AggregateHandler = PollerOptions['handler'];

/** Handlers the stack runs; any may be left out. */
export interface LocalHandlers {
  aggregate?: AggregateHandler;
  query?: ApiHandler;
  summarize?: ScheduledHandler;
  rollup?: ScheduledHandler;
}

export interface LocalStackOptions {
  host?: string;
  /** 0 or omitted picks a free port (tests); npm start passes 4567, 4568 and 7787. */
  ports?: { kinesis?: number; dynamodb?: number; api?: number };
  /** Keep emulator data on disk here instead of in memory. */
  dataDir?: string;
  shardCount?: number;
  aggregateHandler?: AggregateHandler;
  queryHandler?: ApiHandler;
  summarizeHandler?: ScheduledHandler;
  rollupHandler?: ScheduledHandler;
  /**
   * Loads handlers once the functions' environment is set. The real handlers
   * build their clients from that environment on first use, not at import;
   * loading this late also lets a test's handler read it while loading.
   */
  loadHandlers?: () => Promise<LocalHandlers>;
  /** Extra function environment (e.g. ENV.activeWindow); wins over the defaults. */
  functionEnv?: Record<string, string>;
  /** Event source settings (batch size, window, retries, starting position...). */
  poller?: Omit<PollerOptions, 'kinesis' | 'streamName' | 'handler'>;
  /** How often the summarize function runs (default 60 s, like its schedule rule). */
  summarizeIntervalMs?: number;
  /** Each summarize run's result. */
  onSummarize?: (result: unknown) => void;
  /** How often the roll-up function runs (default ROLLUP_SCHEDULE_MINUTES, like its schedule rule). */
  rollupIntervalMs?: number;
  /** How often expired items are swept (default 60 s). */
  sweepIntervalMs?: number;
  /** The web view's HTML, served at the API's root. */
  page?: string;
  /** Told each step as it starts, for progress output. */
  onProgress?: (step: string) => void;
}

/** A running local stack; parts whose handler was not given are absent. */
export interface LocalStack {
  emulators: Emulators;
  /** The environment given to the functions. */
  env: Record<string, string>;
  poller?: EventSourcePoller;
  api?: ApiServer;
  /** The summarize schedule; never two runs at once, as reserved concurrency 1 deploys it. */
  summarize?: Schedule;
  /** The roll-up schedule, one run at a time like the deployed function. */
  rollup?: Schedule;
  sweeper: TtlSweeper;
  /** The on-failure destination: batches the poller gave up on, oldest first. */
  failures: PollerFailure[];
  stop(): Promise<void>;
}

/**
 * Lambda runs concurrent shard batches in separate execution environments; a
 * handler module here is one instance with module-level state (Powertools
 * Metrics, the logger's request id), so its invocations are queued instead.
 */
export function oneAtATime<A extends unknown[], R>(fn: (...args: A) => Promise<R>) {
  let tail: Promise<unknown> = Promise.resolve();
  return (...args: A): Promise<R> => {
    const run = tail.then(() => fn(...args));
    tail = run.catch(() => {});
    return run;
  };
}

/** The environment the functions read, pointing at these emulators. */
export function functionEnvironment(
  emulators: Emulators,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    [ENV.table]: emulators.tableName,
    [ENV.stream]: emulators.streamName,
    [ENV.dynamodbEndpoint]: emulators.dynamodbEndpoint,
    // The functions' SDK clients use the default credential chain; the emulators accept any keys.
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    ...extra,
  };
}

/** Sets variables in process.env and returns a function that puts the old values back. */
function applyEnvironment(env: Record<string, string>): () => void {
  const previous = new Map<string, string | undefined>();
  for (const [name, value] of Object.entries(env)) {
    previous.set(name, process.env[name]);
    process.env[name] = value;
  }
  return () => {
    for (const [name, value] of previous) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

/** Starts the emulators and every part whose handler is given; on any failure stops what started. */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const host = options.host ?? '127.0.0.1';
  const ports = options.ports ?? {};
  const progress = options.onProgress ?? (() => {});
  progress('starting the Kinesis and DynamoDB emulators, creating the stream and table');
  const emulators = await startEmulators({
    host,
    kinesisPort: ports.kinesis ?? 0,
    dynamodbPort: ports.dynamodb ?? 0,
    dataDir: options.dataDir,
    shardCount: options.shardCount,
  });
  const env = functionEnvironment(emulators, options.functionEnv);
  const restoreEnv = applyEnvironment(env);
  const stoppers: (() => Promise<void>)[] = [
    async () => {
      await emulators.stop();
      restoreEnv();
    },
  ];
  const stopAll = async () => {
    // Reverse order: consumers before the emulators they talk to.
    for (const stop of stoppers.splice(0).reverse()) await stop();
  };

  try {
    if (options.loadHandlers) progress('loading the function handlers');
    const loaded = (await options.loadHandlers?.()) ?? {};
    const aggregate = options.aggregateHandler ?? loaded.aggregate;
    const query = options.queryHandler ?? loaded.query;
    const summarizeHandler = options.summarizeHandler ?? loaded.summarize;
    const rollupHandler = options.rollupHandler ?? loaded.rollup;
    const failures: PollerFailure[] = [];

    const sweeper = startTtlSweeper({
      dynamodb: emulators.dynamodb,
      tableName: emulators.tableName,
      intervalMs: options.sweepIntervalMs ?? 60_000,
    });
    stoppers.push(() => sweeper.stop());

    let poller: EventSourcePoller | undefined;
    if (aggregate) {
      const userSink = options.poller?.onFailure;
      progress('starting the Kinesis event source poller');
      const started = startEventSourcePoller({
        ...options.poller,
        kinesis: emulators.kinesis,
        streamName: emulators.streamName,
        handler: oneAtATime(aggregate),
        onFailure: async (failure) => {
          failures.push(failure);
          await userSink?.(failure);
        },
      });
      poller = started;
      stoppers.push(() => started.stop());
    }

    let api: ApiServer | undefined;
    if (query) {
      progress('starting the HTTP API');
      const started = await startApiServer({
        handler: query,
        host,
        port: ports.api ?? 0,
        ...(options.page !== undefined ? { page: options.page } : {}),
      });
      api = started;
      stoppers.push(() => started.stop());
    }

    let summarize: Schedule | undefined;
    if (summarizeHandler) {
      progress('starting the summarize schedule');
      const started = startSchedule({
        handler: summarizeHandler,
        intervalMs: options.summarizeIntervalMs ?? 60_000,
        functionName: 'udpwatch-summarize',
        onResult: options.onSummarize,
      });
      summarize = started;
      stoppers.push(() => started.stop());
    }

    let rollup: Schedule | undefined;
    if (rollupHandler) {
      progress('starting the roll-up schedule');
      const started = startSchedule({
        handler: rollupHandler,
        intervalMs: options.rollupIntervalMs ?? ROLLUP_SCHEDULE_MINUTES * 60_000,
        functionName: 'udpwatch-rollup',
        timeoutMs: ROLLUP_TIMEOUT_MINUTES * 60_000,
      });
      rollup = started;
      stoppers.push(() => started.stop());
    }

    return { emulators, env, poller, api, summarize, rollup, sweeper, failures, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
