/**
 * A local stand-in for Lambda's Kinesis event source mapping: reads every
 * shard in order, batches records, invokes the handler with exactly the
 * KinesisStreamEvent Lambda would build, honours the partial-batch-failure
 * response, and, as the deployed mapping does with bisect on, splits a batch
 * whose handler threw in two and retries each half on its own, so a poison
 * record ends up alone. As the deployed mapping is set up, a failing part is
 * retried until its oldest record is older than the maximum record age (or,
 * if set, a bounded number of retries); only then does it go to the
 * on-failure sink, and the shard moves on.
 */
import {
  ExpiredIteratorException,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  type _Record as KinesisRecord,
  ListShardsCommand,
  type ShardIteratorType,
} from '@aws-sdk/client-kinesis';
import type {
  Context,
  KinesisStreamBatchResponse,
  KinesisStreamEvent,
  KinesisStreamRecord,
} from 'aws-lambda';
import { AGGREGATE_EVENT_SOURCE, aggregateMaxRecordAgeSeconds } from '../contract/resources.js';
import { LOCAL_REGION } from './aws-clients.js';
import { LOCAL_ACCOUNT_ID, lambdaContext } from './lambda-context.js';

/** What a Kinesis handler may return; void matches aws-lambda's KinesisStreamHandler type. */
// biome-ignore lint/suspicious/noConfusingVoidType: the Lambda handler type returns void
export type KinesisHandlerResult = KinesisStreamBatchResponse | void | undefined;

export interface PollerOptions {
  kinesis: KinesisClient;
  streamName: string;
  handler: (event: KinesisStreamEvent, context: Context) => Promise<KinesisHandlerResult>;
  startingPosition?: 'TRIM_HORIZON' | 'LATEST'; // default TRIM_HORIZON
  batchSize?: number; // default AGGREGATE_EVENT_SOURCE.batchSize
  maxBatchingWindowMs?: number; // default 500 locally
  /** Retries after the first failed invocation; a negative value retries until maxRecordAgeSeconds. */
  retryAttempts?: number; // default AGGREGATE_EVENT_SOURCE.retryAttempts
  /** A failing part whose oldest record arrived longer ago than this goes to onFailure. */
  maxRecordAgeSeconds?: number; // default aggregateMaxRecordAgeSeconds(24)
  /** Split a batch whose handler threw in two before retrying (splits use no retry). */
  bisectBatchOnError?: boolean; // default AGGREGATE_EVENT_SOURCE.bisectBatchOnError
  pollIntervalMs?: number; // idle GetRecords interval, default 200
  onFailure?: (failure: PollerFailure) => void | Promise<void>; // on-failure sink
  region?: string;
  accountId?: string;
}

/** What the on-failure sink receives: the part of a batch that exhausted its retries. */
export interface PollerFailure {
  shardId: string;
  startSequenceNumber: string;
  endSequenceNumber: string;
  records: KinesisStreamRecord[];
  attempts: number;
  lastError: string;
}

export interface EventSourcePoller {
  /** Stops polling; an invocation in progress finishes first. */
  stop(): Promise<void>;
  /** Resolves once every record in the stream when called has been handled or sent to onFailure. */
  drain(timeoutMs?: number): Promise<void>;
  /**
   * batches: batches formed; records: records in them (each once); retries:
   * re-invocations of the same records; splits: failed parts halved;
   * failures: onFailure calls.
   */
  stats(): { batches: number; records: number; retries: number; splits: number; failures: number };
}

/** Name the local aggregate function goes by in contexts and ARNs. */
const FUNCTION_NAME = 'udpwatch-aggregate';
/** GetRecords takes at most this many records per call. */
const GET_RECORDS_MAX = 10_000;

interface ShardState {
  shardId: string;
  /** Highest sequence number fetched so far. */
  fetchedThrough?: bigint;
  /** Highest sequence number handled (successfully or sent to onFailure). */
  doneThrough?: bigint;
  /** The latest GetRecords that reached the end of the shard: when it started, and what had been fetched then. */
  tip?: { startedAt: bigint; through?: bigint };
  finished: boolean;
  lastError?: string;
}

/** The outcome of one invocation: -1 when all succeeded, else the index the retry resumes from. */
interface Invocation {
  failedFrom: number;
  error: string;
  /** The function itself failed (threw), rather than answering with failed items. */
  threw?: boolean;
}

const now = () => process.hrtime.bigint();

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** Small exponential backoff between retries, capped at one second. */
const backoffMs = (attempt: number) => Math.min(1000, 20 * 2 ** Math.max(0, attempt - 1));

const message = (err: unknown) =>
  err instanceof Error ? `${err.name}: ${err.message}` : String(err);

/** Starts polling every shard of the stream; returns at once, shards are discovered in the background. */
export function startEventSourcePoller(options: PollerOptions): EventSourcePoller {
  const { kinesis, streamName, handler } = options;
  const batchSize = options.batchSize ?? AGGREGATE_EVENT_SOURCE.batchSize;
  const windowMs = options.maxBatchingWindowMs ?? 500;
  const retryAttempts = options.retryAttempts ?? AGGREGATE_EVENT_SOURCE.retryAttempts;
  const bisect = options.bisectBatchOnError ?? AGGREGATE_EVENT_SOURCE.bisectBatchOnError;
  const maxRecordAgeMs = (options.maxRecordAgeSeconds ?? aggregateMaxRecordAgeSeconds(24)) * 1000;
  const pollIntervalMs = options.pollIntervalMs ?? 200;
  const region = options.region ?? LOCAL_REGION;
  const accountId = options.accountId ?? LOCAL_ACCOUNT_ID;
  const streamArn = `arn:aws:kinesis:${region}:${accountId}:stream/${streamName}`;
  const identityArn = `arn:aws:iam::${accountId}:role/${FUNCTION_NAME}-role`;
  if (!(batchSize >= 1 && batchSize <= GET_RECORDS_MAX)) {
    throw new Error(`batchSize must be 1..${GET_RECORDS_MAX}, got ${batchSize}`);
  }

  const abort = new AbortController();
  const signal = abort.signal;
  const shards = new Map<string, ShardState>();
  const counters = { batches: 0, records: 0, retries: 0, splits: 0, failures: 0 };
  let discoveryError: string | undefined;

  const toEventRecord = (shardId: string, r: KinesisRecord): KinesisStreamRecord => ({
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: r.PartitionKey ?? '',
      sequenceNumber: r.SequenceNumber ?? '',
      data: Buffer.from(r.Data ?? new Uint8Array()).toString('base64'),
      approximateArrivalTimestamp: (r.ApproximateArrivalTimestamp?.getTime() ?? Date.now()) / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `${shardId}:${r.SequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: identityArn,
    awsRegion: region,
    eventSourceARN: streamArn,
  });

  /** Invokes the handler once and reads its verdict the way Lambda does. */
  async function invoke(records: KinesisStreamRecord[]): Promise<Invocation> {
    let response: unknown;
    try {
      response = await handler(
        { Records: records },
        lambdaContext({ functionName: FUNCTION_NAME, region, accountId }),
      );
    } catch (err) {
      return { failedFrom: 0, error: `handler threw ${message(err)}`, threw: true };
    }
    const failures = (response as Partial<KinesisStreamBatchResponse> | undefined)
      ?.batchItemFailures;
    if (failures === undefined || failures === null) return { failedFrom: -1, error: '' };
    if (!Array.isArray(failures)) {
      return { failedFrom: 0, error: 'handler returned batchItemFailures that is not an array' };
    }
    if (failures.length === 0) return { failedFrom: -1, error: '' };
    let lowest = Number.POSITIVE_INFINITY;
    for (const failure of failures) {
      const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
      const index =
        typeof id === 'string' && id !== ''
          ? records.findIndex((r) => r.kinesis.sequenceNumber === id)
          : -1;
      // An empty or unknown identifier makes Lambda treat the whole batch as failed.
      if (index < 0) {
        return {
          failedFrom: 0,
          error: `batchItemFailures names unknown itemIdentifier ${JSON.stringify(id)}`,
        };
      }
      lowest = Math.min(lowest, index);
    }
    return {
      failedFrom: lowest,
      error: `handler reported ${failures.length} failed item(s), the first ${records[lowest]?.kinesis.sequenceNumber}`,
    };
  }

  /** Delivers one batch until it succeeds or its failed parts go to onFailure; false if stopped first. */
  async function deliver(state: ShardState, batch: KinesisStreamRecord[]): Promise<boolean> {
    counters.batches++;
    counters.records += batch.length;
    return deliverPart(state, batch);
  }

  /** Delivers records of one batch, in order, bisecting on a thrown error; false if stopped first. */
  async function deliverPart(state: ShardState, part: KinesisStreamRecord[]): Promise<boolean> {
    const markDone = (r: KinesisStreamRecord | undefined) => {
      if (r) state.doneThrough = BigInt(r.kinesis.sequenceNumber);
    };
    let pending = part;
    for (let attempts = 1; ; attempts++) {
      const outcome = await invoke(pending);
      if (outcome.failedFrom < 0) {
        markDone(pending.at(-1));
        return true;
      }
      // Records before the first reported failure are checkpointed, as Lambda
      // does; with bisect on, Lambda retries just the rest, not halves of it.
      markDone(pending[outcome.failedFrom - 1]);
      pending = pending.slice(outcome.failedFrom);
      if (bisect && outcome.threw && pending.length > 1) {
        // The halves go in order, each a fresh delivery, so the shard's order holds.
        if (signal.aborted) return false;
        counters.splits++;
        const half = Math.ceil(pending.length / 2);
        if (!(await deliverPart(state, pending.slice(0, half)))) return false;
        return deliverPart(state, pending.slice(half));
      }
      const oldest = pending[0]?.kinesis.approximateArrivalTimestamp ?? 0;
      const tooOld = Date.now() - oldest * 1000 > maxRecordAgeMs;
      if (tooOld || (retryAttempts >= 0 && attempts > retryAttempts)) {
        counters.failures++;
        const failure: PollerFailure = {
          shardId: state.shardId,
          startSequenceNumber: pending[0]?.kinesis.sequenceNumber ?? '',
          endSequenceNumber: pending.at(-1)?.kinesis.sequenceNumber ?? '',
          records: pending,
          attempts,
          lastError: outcome.error,
        };
        try {
          await options.onFailure?.(failure);
        } catch (err) {
          state.lastError = `onFailure sink threw ${message(err)}`;
        }
        markDone(pending.at(-1));
        return true;
      }
      if (signal.aborted) return false;
      counters.retries++;
      await sleep(backoffMs(attempts), signal);
      if (signal.aborted) return false;
    }
  }

  async function shardIterator(state: ShardState): Promise<string | undefined> {
    const after = state.fetchedThrough;
    const type: ShardIteratorType =
      after !== undefined ? 'AFTER_SEQUENCE_NUMBER' : (options.startingPosition ?? 'TRIM_HORIZON');
    const res = await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: streamName,
        ShardId: state.shardId,
        ShardIteratorType: type,
        ...(after !== undefined ? { StartingSequenceNumber: after.toString() } : {}),
      }),
      { abortSignal: signal },
    );
    return res.ShardIterator;
  }

  /** One shard, strictly sequential: fetch, batch, deliver, until stopped or the shard ends. */
  async function runShard(state: ShardState): Promise<void> {
    let iterator: string | undefined;
    let needIterator = true;
    let errorsInRow = 0;
    const buffer: KinesisStreamRecord[] = [];
    let windowStart = 0;
    while (!signal.aborted) {
      const windowOver = buffer.length > 0 && Date.now() - windowStart >= windowMs;
      const ended = !needIterator && iterator === undefined;
      if (buffer.length >= batchSize || windowOver || (ended && buffer.length > 0)) {
        if (!(await deliver(state, buffer.splice(0, batchSize)))) return;
        windowStart = Date.now();
        continue;
      }
      if (ended) {
        state.finished = true;
        return;
      }
      const startedAt = now();
      const limit = batchSize - buffer.length;
      try {
        if (needIterator) {
          iterator = await shardIterator(state);
          needIterator = false;
          continue;
        }
        const page = await kinesis.send(
          new GetRecordsCommand({ ShardIterator: iterator, Limit: limit }),
          {
            abortSignal: signal,
          },
        );
        errorsInRow = 0;
        const records = page.Records ?? [];
        if (records.length > 0 && buffer.length === 0) windowStart = Date.now();
        for (const r of records) {
          buffer.push(toEventRecord(state.shardId, r));
          state.fetchedThrough = BigInt(r.SequenceNumber ?? '0');
        }
        iterator = page.NextShardIterator;
        const caughtUp = records.length < limit && !((page.MillisBehindLatest ?? 0) > 0);
        if (caughtUp) {
          state.tip = { startedAt, through: state.fetchedThrough };
          const wait = buffer.length === 0 ? pollIntervalMs : windowMs - (Date.now() - windowStart);
          if (wait > 0 && iterator !== undefined)
            await sleep(Math.min(pollIntervalMs, wait), signal);
        }
      } catch (err) {
        if (signal.aborted) return;
        state.lastError = `shard ${state.shardId}: ${message(err)}`;
        // Resume after what was fetched; a new iterator also cures an expired one.
        if (err instanceof ExpiredIteratorException) needIterator = true;
        await sleep(backoffMs(++errorsInRow), signal);
      }
    }
  }

  async function discover(): Promise<Promise<void>[]> {
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        const ids: string[] = [];
        let token: string | undefined;
        do {
          const page = await kinesis.send(
            new ListShardsCommand(token ? { NextToken: token } : { StreamName: streamName }),
            { abortSignal: signal },
          );
          for (const s of page.Shards ?? []) if (s.ShardId) ids.push(s.ShardId);
          token = page.NextToken;
        } while (token);
        discoveryError = undefined;
        return ids.map((shardId) => {
          const state: ShardState = { shardId, finished: false };
          shards.set(shardId, state);
          return runShard(state);
        });
      } catch (err) {
        if (signal.aborted) break;
        discoveryError = `listing shards of ${streamName}: ${message(err)}`;
        await sleep(backoffMs(attempt), signal);
      }
    }
    return [];
  }

  const loops = discover();

  return {
    async stop() {
      abort.abort();
      await Promise.all(await loops);
    },

    async drain(timeoutMs = 30_000) {
      const calledAt = now();
      const deadline = Date.now() + timeoutMs;
      const targets = new Map<string, bigint | null>();
      for (;;) {
        const waiting: string[] = [];
        if (shards.size === 0) waiting.push(discoveryError ?? 'shards not listed yet');
        for (const state of shards.values()) {
          if (state.finished) continue;
          if (!targets.has(state.shardId) && state.tip && state.tip.startedAt >= calledAt) {
            targets.set(state.shardId, state.tip.through ?? null);
          }
          const target = targets.get(state.shardId);
          const done =
            target === null ||
            (target !== undefined &&
              state.doneThrough !== undefined &&
              state.doneThrough >= target);
          if (!done) {
            waiting.push(
              `${state.shardId} (handled through ${state.doneThrough ?? 'nothing'}, ` +
                `must reach ${target ?? 'the end of the shard'}${state.lastError ? `; last error ${state.lastError}` : ''})`,
            );
          }
        }
        if (waiting.length === 0) return;
        if (signal.aborted)
          throw new Error(`drain: poller stopped before draining ${waiting.join(', ')}`);
        if (Date.now() >= deadline) {
          throw new Error(`drain: not drained within ${timeoutMs} ms: ${waiting.join(', ')}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },

    stats() {
      return { ...counters };
    },
  };
}
