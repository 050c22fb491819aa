import { randomBytes } from 'node:crypto';
import { DeleteStreamCommand, PutRecordCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { kinesisClient } from '../../../local/aws-clients.js';
import { createStream, type Emulators, startEmulators } from '../../../local/emulators.js';
import {
  type EventSourcePoller,
  type PollerFailure,
  type PollerOptions,
  startEventSourcePoller,
} from '../../../local/event-source-poller.js';
import { startFaultProxy } from '../../../local/fault-proxy.js';

let emu: Emulators;
let streams = 0;
const pollers: EventSourcePoller[] = [];
const created: string[] = [];

beforeAll(async () => {
  emu = await startEmulators({ shardCount: 1 });
});
afterEach(async () => {
  await Promise.all(pollers.splice(0).map((p) => p.stop()));
  // kinesalite allows 10 shards per account: remove each test's stream.
  for (const name of created.splice(0)) {
    await emu.kinesis.send(new DeleteStreamCommand({ StreamName: name }));
  }
});
afterAll(async () => {
  await emu?.stop();
});

/** A fresh stream per test, so pollers never see each other's records. */
async function newStream(shardCount: number): Promise<string> {
  const name = `poller-test-${process.pid}-${++streams}`;
  await createStream(emu.kinesis, name, shardCount);
  created.push(name);
  return name;
}

interface Put {
  data: Buffer;
  key: string;
  seq: string;
  shardId: string;
}

async function putMany(stream: string, items: { key: string; data: Buffer }[]): Promise<Put[]> {
  const out: Put[] = [];
  for (let i = 0; i < items.length; i += 100) {
    const chunk = items.slice(i, i + 100);
    const res = await emu.kinesis.send(
      new PutRecordsCommand({
        StreamName: stream,
        Records: chunk.map((r) => ({ PartitionKey: r.key, Data: r.data })),
      }),
    );
    expect(res.FailedRecordCount ?? 0).toBe(0);
    (res.Records ?? []).forEach((e, j) => {
      const item = chunk[j] as { key: string; data: Buffer };
      out.push({ ...item, seq: e.SequenceNumber ?? '', shardId: e.ShardId ?? '' });
    });
  }
  return out;
}

/** Puts n records, one PutRecords call, single partition key (so one shard), data "r<i>". */
const putNumbered = (stream: string, n: number) =>
  putMany(
    stream,
    Array.from({ length: n }, (_, i) => ({ key: 'one', data: Buffer.from(`r${i}`) })),
  );

type Reply = KinesisStreamBatchResponse | undefined;

/** A handler that records every invocation and answers with `decide`. */
function recorder(
  decide: (event: KinesisStreamEvent, call: number) => Reply | Promise<Reply> = () => undefined,
) {
  const calls: { event: KinesisStreamEvent; context: Context }[] = [];
  const handler: PollerOptions['handler'] = async (event, context) => {
    calls.push({ event, context });
    return decide(event, calls.length);
  };
  const dataOf = (call: number) =>
    (calls[call]?.event.Records ?? []).map((r) => Buffer.from(r.kinesis.data, 'base64').toString());
  return { calls, handler, dataOf };
}

function start(options: PollerOptions): EventSourcePoller {
  const poller = startEventSourcePoller({
    maxBatchingWindowMs: 50,
    pollIntervalMs: 20,
    ...options,
  });
  pollers.push(poller);
  return poller;
}

describe('event source poller', () => {
  it('delivers every record once, in order per shard and per partition key, over 2 shards', async () => {
    const stream = await newStream(2);
    const items = Array.from({ length: 300 }, (_, i) => ({
      key: `agent-${i % 40}`,
      data: Buffer.from(`agent-${i % 40}:${i}`),
    }));
    const puts = await putMany(stream, items);
    expect(new Set(puts.map((p) => p.shardId)).size).toBe(2);
    const rec = recorder();
    const poller = start({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: rec.handler,
      batchSize: 50,
    });
    await poller.drain(20_000);

    const delivered = rec.calls.flatMap((c) => c.event.Records);
    expect(delivered).toHaveLength(300);
    for (const c of rec.calls) {
      expect(c.event.Records.length).toBeGreaterThan(0);
      expect(c.event.Records.length).toBeLessThanOrEqual(50);
      // A batch never mixes shards.
      expect(new Set(c.event.Records.map((r) => r.eventID.split(':')[0])).size).toBe(1);
    }
    for (const shardId of new Set(puts.map((p) => p.shardId))) {
      const got = delivered
        .filter((r) => r.eventID.startsWith(`${shardId}:`))
        .map((r) => r.kinesis.sequenceNumber);
      const expected = puts.filter((p) => p.shardId === shardId).map((p) => p.seq);
      expect(got).toEqual(expected);
    }
    for (let k = 0; k < 40; k++) {
      const key = `agent-${k}`;
      const got = delivered
        .filter((r) => r.kinesis.partitionKey === key)
        .map((r) => Buffer.from(r.kinesis.data, 'base64').toString());
      expect(got).toEqual(items.filter((i) => i.key === key).map((i) => i.data.toString()));
    }
    expect(poller.stats()).toEqual({
      batches: rec.calls.length,
      records: 300,
      retries: 0,
      splits: 0,
      failures: 0,
    });
  });

  it('builds exactly the Lambda event for records put with PutRecord and PutRecords', async () => {
    const stream = await newStream(2);
    const before = Date.now();
    const binary = randomBytes(300); // not valid UTF-8: must survive byte for byte
    const single = await emu.kinesis.send(
      new PutRecordCommand({ StreamName: stream, PartitionKey: 'bin', Data: binary }),
    );
    const many = await putMany(stream, [
      { key: 'a', data: Buffer.from('{"v":1}\n') },
      { key: 'b', data: Buffer.from([0, 255, 10]) },
      { key: 'c', data: randomBytes(5000) },
    ]);
    const after = Date.now();
    const rec = recorder();
    const poller = start({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: rec.handler,
      region: 'eu-west-1',
      accountId: '123456789012',
    });
    await poller.drain(20_000);

    const expected = [
      { data: binary, key: 'bin', seq: single.SequenceNumber, shardId: single.ShardId },
      ...many,
    ];
    const delivered = rec.calls.flatMap((c) => c.event.Records);
    expect(delivered).toHaveLength(expected.length);
    for (const e of expected) {
      const r = delivered.find((d) => d.kinesis.sequenceNumber === e.seq);
      expect(r).toBeDefined();
      if (!r) continue;
      expect(Buffer.from(r.kinesis.data, 'base64').equals(e.data)).toBe(true);
      expect(r).toEqual({
        kinesis: {
          kinesisSchemaVersion: '1.0',
          partitionKey: e.key,
          sequenceNumber: e.seq,
          data: e.data.toString('base64'),
          approximateArrivalTimestamp: r.kinesis.approximateArrivalTimestamp,
        },
        eventSource: 'aws:kinesis',
        eventVersion: '1.0',
        eventID: `${e.shardId}:${e.seq}`,
        eventName: 'aws:kinesis:record',
        invokeIdentityArn: 'arn:aws:iam::123456789012:role/udpwatch-aggregate-role',
        awsRegion: 'eu-west-1',
        eventSourceARN: `arn:aws:kinesis:eu-west-1:123456789012:stream/${stream}`,
      });
      // Seconds since the epoch as a float, like Lambda (kinesalite keeps whole seconds).
      expect(r.kinesis.approximateArrivalTimestamp).toBeGreaterThanOrEqual(
        Math.floor(before / 1000) - 1,
      );
      expect(r.kinesis.approximateArrivalTimestamp).toBeLessThanOrEqual(after / 1000 + 1);
    }
    const ctx = rec.calls[0]?.context as Context;
    expect(ctx.functionName).toBe('udpwatch-aggregate');
    expect(ctx.invokedFunctionArn).toBe(
      'arn:aws:lambda:eu-west-1:123456789012:function:udpwatch-aggregate',
    );
    expect(ctx.getRemainingTimeInMillis()).toBeGreaterThan(0);
    const ids = rec.calls.map((c) => c.context.awsRequestId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('resumes from the lowest reported batchItemFailure: exactly the rest is re-delivered', async () => {
    const stream = await newStream(1);
    const puts = await putNumbered(stream, 10);
    const rec = recorder((event, call) =>
      call === 1
        ? {
            batchItemFailures: [
              { itemIdentifier: event.Records[7]?.kinesis.sequenceNumber ?? '' },
              { itemIdentifier: event.Records[4]?.kinesis.sequenceNumber ?? '' },
            ],
          }
        : undefined,
    );
    const poller = start({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: rec.handler,
      batchSize: 10,
    });
    await poller.drain(20_000);
    expect(rec.calls).toHaveLength(2);
    expect(rec.dataOf(0)).toEqual(puts.map((_, i) => `r${i}`));
    expect(rec.dataOf(1)).toEqual(['r4', 'r5', 'r6', 'r7', 'r8', 'r9']);
    // A reported item failure is retried from there, never bisected.
    expect(poller.stats()).toEqual({ batches: 1, records: 10, retries: 1, splits: 0, failures: 0 });
  });

  it('treats an empty or unknown itemIdentifier as a whole-batch failure', async () => {
    const stream = await newStream(1);
    await putNumbered(stream, 6);
    const rec = recorder((_, call) =>
      call === 1
        ? { batchItemFailures: [{ itemIdentifier: '' }] }
        : call === 2
          ? { batchItemFailures: [{ itemIdentifier: '12345' }] }
          : { batchItemFailures: [] },
    );
    const poller = start({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: rec.handler,
      batchSize: 6,
    });
    await poller.drain(20_000);
    const all = ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'];
    expect(rec.calls.map((_, i) => rec.dataOf(i))).toEqual([all, all, all]);
  });

  it('with bisect off, retries a batch whose handler throws, with the same records, until it succeeds', async () => {
    const stream = await newStream(1);
    await putNumbered(stream, 5);
    const rec = recorder((_, call) => {
      if (call <= 2) throw new Error(`boom ${call}`);
      return undefined;
    });
    const failures: PollerFailure[] = [];
    const poller = start({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: rec.handler,
      batchSize: 5,
      bisectBatchOnError: false,
      onFailure: (f) => {
        failures.push(f);
      },
    });
    await poller.drain(20_000);
    const batch = ['r0', 'r1', 'r2', 'r3', 'r4'];
    expect(rec.calls.map((_, i) => rec.dataOf(i))).toEqual([batch, batch, batch]);
    expect(failures).toEqual([]);
    expect(poller.stats()).toMatchObject({ batches: 1, retries: 2, failures: 0 });
  });

  it('by default retries a failing part until it is maxRecordAge old, not a fixed number of times', async () => {
    const stream = await newStream(1);
    const puts = await putNumbered(stream, 3);
    // Always fails r1: only its age can end the retries.
    const rec = recorder((event) => {
      const r1 = event.Records.find((r) => r.kinesis.sequenceNumber === puts[1]?.seq);
      return r1
        ? { batchItemFailures: [{ itemIdentifier: r1.kinesis.sequenceNumber }] }
        : undefined;
    });
    const failures: PollerFailure[] = [];
    const startedAt = Date.now();
    const poller = start({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: rec.handler,
      batchSize: 3,
      maxRecordAgeSeconds: 3,
      onFailure: (f) => {
        failures.push(f);
      },
    });
    await poller.drain(20_000);
    // It kept retrying until r1 was 3 s old, then gave the rest of the batch up once.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(2_500);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.startSequenceNumber).toBe(puts[1]?.seq);
    expect(failures[0]!.endSequenceNumber).toBe(puts[2]?.seq);
    expect(failures[0]!.attempts).toBeGreaterThan(3);
    expect(poller.stats().failures).toBe(1);
  });

  it('after retryAttempts hands the failed part to onFailure and moves on', async () => {
    const stream = await newStream(1);
    const puts = await putNumbered(stream, 10);
    // The first batch (r0..r4) always reports r2 as failed; the second batch (r5..r9) succeeds.
    const rec = recorder((event) => {
      const r2 = event.Records.find((r) => r.kinesis.sequenceNumber === puts[2]?.seq);
      return r2
        ? { batchItemFailures: [{ itemIdentifier: r2.kinesis.sequenceNumber }] }
        : undefined;
    });
    const failures: PollerFailure[] = [];
    const poller = start({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: rec.handler,
      batchSize: 5,
      retryAttempts: 2,
      onFailure: (f) => {
        failures.push(f);
      },
    });
    await poller.drain(20_000);
    expect(rec.calls.map((_, i) => rec.dataOf(i))).toEqual([
      ['r0', 'r1', 'r2', 'r3', 'r4'],
      ['r2', 'r3', 'r4'],
      ['r2', 'r3', 'r4'],
      ['r5', 'r6', 'r7', 'r8', 'r9'],
    ]);
    expect(failures).toHaveLength(1);
    const f = failures[0] as PollerFailure;
    expect(f.shardId).toBe(puts[0]?.shardId);
    expect(f.attempts).toBe(3);
    expect(f.startSequenceNumber).toBe(puts[2]?.seq);
    expect(f.endSequenceNumber).toBe(puts[4]?.seq);
    expect(f.records.map((r) => Buffer.from(r.kinesis.data, 'base64').toString())).toEqual([
      'r2',
      'r3',
      'r4',
    ]);
    expect(f.lastError).toContain(puts[2]?.seq);
    expect(poller.stats()).toEqual({ batches: 2, records: 10, retries: 2, splits: 0, failures: 1 });
  });

  it('by default (bisect on, as deployed) isolates a poison record: only it reaches onFailure', async () => {
    const stream = await newStream(1);
    await putNumbered(stream, 8);
    // r5 makes the handler throw whenever it is in the batch.
    const rec = recorder((event) => {
      const data = event.Records.map((r) => Buffer.from(r.kinesis.data, 'base64').toString());
      if (data.includes('r5')) throw new Error('poison r5');
      return undefined;
    });
    const failures: PollerFailure[] = [];
    const poller = start({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: rec.handler,
      batchSize: 8,
      retryAttempts: 2,
      onFailure: (f) => {
        failures.push(f);
      },
    });
    await poller.drain(20_000);
    expect(rec.calls.map((_, i) => rec.dataOf(i))).toEqual([
      ['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7'],
      ['r0', 'r1', 'r2', 'r3'],
      ['r4', 'r5', 'r6', 'r7'],
      ['r4', 'r5'],
      ['r4'],
      ['r5'],
      ['r5'],
      ['r5'],
      ['r6', 'r7'],
    ]);
    expect(failures).toHaveLength(1);
    expect(
      failures[0]?.records.map((r) => Buffer.from(r.kinesis.data, 'base64').toString()),
    ).toEqual(['r5']);
    expect(failures[0]).toMatchObject({ attempts: 3 });
    expect(failures[0]?.lastError).toContain('poison r5');
    expect(poller.stats()).toEqual({ batches: 1, records: 8, retries: 2, splits: 3, failures: 1 });
  });

  it('with bisect off, a thrown error exhausting its retries sends the whole batch to onFailure', async () => {
    const stream = await newStream(1);
    await putNumbered(stream, 4);
    const rec = recorder(() => {
      throw new Error('always broken');
    });
    const failures: PollerFailure[] = [];
    const poller = start({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: rec.handler,
      batchSize: 4,
      retryAttempts: 1,
      bisectBatchOnError: false,
      onFailure: (f) => {
        failures.push(f);
      },
    });
    await poller.drain(20_000);
    expect(rec.calls).toHaveLength(2);
    expect(failures.map((f) => f.records.length)).toEqual([4]);
    expect(failures[0]?.lastError).toContain('always broken');
  });

  it('from LATEST delivers only records put after it started', async () => {
    const stream = await newStream(2);
    await putMany(stream, [{ key: 'old', data: Buffer.from('old') }]);
    const rec = recorder();
    const poller = start({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: rec.handler,
      startingPosition: 'LATEST',
    });
    await poller.drain(20_000);
    await putMany(stream, [
      { key: 'new-1', data: Buffer.from('new-1') },
      { key: 'new-2', data: Buffer.from('new-2') },
    ]);
    await poller.drain(20_000);
    const got = rec.calls.flatMap((_, i) => rec.dataOf(i)).sort();
    expect(got).toEqual(['new-1', 'new-2']);
  });

  it('stop() ends polling: records put afterwards are not delivered', async () => {
    const stream = await newStream(1);
    await putNumbered(stream, 2);
    const rec = recorder();
    const poller = start({ kinesis: emu.kinesis, streamName: stream, handler: rec.handler });
    await poller.drain(20_000);
    await poller.stop();
    await putNumbered(stream, 3);
    await new Promise((r) => setTimeout(r, 150));
    expect(rec.calls.flatMap((_, i) => rec.dataOf(i))).toEqual(['r0', 'r1']);
    await expect(poller.drain(100)).rejects.toThrow(/stopped/);
  });

  it('rides out throttled, failing and reset Kinesis reads without losing or repeating records', async () => {
    const stream = await newStream(2);
    const proxy = await startFaultProxy({ target: emu.kinesisEndpoint });
    const kinesis = kinesisClient({ endpoint: proxy.url, maxAttempts: 1 });
    try {
      proxy.setFaults([
        { operation: 'GetShardIterator', kind: 'http500', count: 1 },
        { operation: 'GetRecords', kind: 'throttle', probability: 0.3, seed: 3, count: 10 },
        { operation: 'GetRecords', kind: 'reset', skip: 4, count: 1 },
      ]);
      const puts = await putMany(
        stream,
        Array.from({ length: 120 }, (_, i) => ({ key: `k${i % 9}`, data: Buffer.from(`x${i}`) })),
      );
      const rec = recorder();
      const poller = start({ kinesis, streamName: stream, handler: rec.handler, batchSize: 7 });
      await poller.drain(20_000);
      await poller.stop();
      const seqs = rec.calls.flatMap((c) => c.event.Records.map((r) => r.kinesis.sequenceNumber));
      expect(seqs.sort()).toEqual(puts.map((p) => p.seq).sort());
      expect(proxy.stats.injected).toBeGreaterThanOrEqual(3);
    } finally {
      kinesis.destroy();
      await proxy.stop();
    }
  });
});
