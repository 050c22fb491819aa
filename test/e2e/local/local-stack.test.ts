import { createServer } from 'node:net';
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { KinesisStreamEvent, ScheduledEvent } from 'aws-lambda';
import { afterEach, describe, expect, it } from 'vitest';
import { ENV } from '../../../contract/resources.js';
import { PortInUseError } from '../../../local/emulators.js';
import { type LocalStack, startLocalStack } from '../../../local/local-stack.js';

const stacks: LocalStack[] = [];
afterEach(async () => {
  for (const s of stacks.splice(0)) await s.stop();
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe('local stack', () => {
  it('wires poller, API, summarize schedule and sweeper to the emulators with the functions environment', async () => {
    const seenEnv: (string | undefined)[] = [];
    const events: KinesisStreamEvent[] = [];
    const scheduled: ScheduledEvent[] = [];
    const stack = await startLocalStack({
      shardCount: 2,
      poller: { maxBatchingWindowMs: 50, pollIntervalMs: 20 },
      summarizeIntervalMs: 40,
      // The handlers are "imported" only once the environment is in place.
      loadHandlers: async () => {
        const tableAtLoad = process.env[ENV.table];
        return {
          aggregate: async (event) => {
            events.push(event);
            seenEnv.push(process.env[ENV.dynamodbEndpoint]);
          },
          query: async (event) => ({ path: event.rawPath, tableAtLoad }),
          summarize: async (event) => {
            scheduled.push(event);
            return { ok: true };
          },
        };
      },
    });
    stacks.push(stack);
    const { emulators } = stack;
    expect(stack.env[ENV.table]).toBe(emulators.tableName);
    expect(stack.env[ENV.stream]).toBe(emulators.streamName);
    expect(process.env[ENV.dynamodbEndpoint]).toBe(emulators.dynamodbEndpoint);

    const put = await emulators.kinesis.send(
      new PutRecordsCommand({
        StreamName: emulators.streamName,
        Records: Array.from({ length: 20 }, (_, i) => ({
          PartitionKey: `k${i}`,
          Data: Buffer.from(`d${i}`),
        })),
      }),
    );
    await stack.poller?.drain(20_000);
    const delivered = events.flatMap((e) => e.Records.map((r) => r.kinesis.sequenceNumber)).sort();
    expect(delivered).toEqual((put.Records ?? []).map((r) => r.SequenceNumber).sort());
    expect(new Set(seenEnv)).toEqual(new Set([emulators.dynamodbEndpoint]));

    const res = await fetch(`${stack.api?.url}/v1/services`);
    expect(await res.json()).toEqual({ path: '/v1/services', tableAtLoad: emulators.tableName });

    for (let i = 0; i < 100 && scheduled.length < 2; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(scheduled.length).toBeGreaterThanOrEqual(2);
    expect(scheduled[0]).toMatchObject({ 'detail-type': 'Scheduled Event', source: 'aws.events' });
    expect(await stack.summarize?.runOnce()).toEqual({ ok: true });

    const key = { pk: { S: 'stack-ttl' }, sk: { S: 'x' } };
    await emulators.dynamodb.send(
      new PutItemCommand({ TableName: emulators.tableName, Item: { ...key, ttl: { N: '1000' } } }),
    );
    expect(await stack.sweeper.sweepOnce()).toBeGreaterThanOrEqual(1);
    const gone = await emulators.dynamodb.send(
      new GetItemCommand({ TableName: emulators.tableName, Key: key }),
    );
    expect(gone.Item).toBeUndefined();
  });

  it('collects batches the poller gave up on as the on-failure destination', async () => {
    const sink: string[] = [];
    const stack = await startLocalStack({
      shardCount: 1,
      aggregateHandler: async () => {
        throw new Error('cannot aggregate');
      },
      poller: {
        retryAttempts: 1,
        maxBatchingWindowMs: 20,
        pollIntervalMs: 20,
        onFailure: (f) => {
          sink.push(f.shardId);
        },
      },
    });
    stacks.push(stack);
    await stack.emulators.kinesis.send(
      new PutRecordsCommand({
        StreamName: stack.emulators.streamName,
        Records: [
          { PartitionKey: 'a', Data: Buffer.from('1') },
          { PartitionKey: 'a', Data: Buffer.from('2') },
        ],
      }),
    );
    await stack.poller?.drain(20_000);
    expect(stack.api).toBeUndefined();
    expect(
      stack.failures.flatMap((f) =>
        f.records.map((r) => Buffer.from(r.kinesis.data, 'base64').toString()),
      ),
    ).toEqual(['1', '2']);
    // Bisect on, as deployed: each record failed on its own.
    expect(stack.failures.map((f) => f.records.length)).toEqual([1, 1]);
    expect(stack.failures[0]?.lastError).toContain('cannot aggregate');
    expect(sink).toEqual(stack.failures.map((f) => f.shardId));
  });

  it('never runs two summarize invocations at once, like reserved concurrency 1', async () => {
    let running = 0;
    let most = 0;
    let runs = 0;
    const stack = await startLocalStack({
      summarizeIntervalMs: 10,
      summarizeHandler: async () => {
        running++;
        most = Math.max(most, running);
        // Far longer than the interval: the next tick must wait for this run.
        await new Promise((r) => setTimeout(r, 60));
        running--;
        return ++runs;
      },
    });
    stacks.push(stack);
    const manual = await Promise.all([stack.summarize?.runOnce(), stack.summarize?.runOnce()]);
    for (let i = 0; i < 100 && runs < 4; i++) await new Promise((r) => setTimeout(r, 20));
    expect(runs).toBeGreaterThanOrEqual(4);
    expect(most).toBe(1);
    expect(manual[1]).toBeGreaterThan(manual[0] as number);
  });

  it('stops everything and restores the environment', async () => {
    const before = process.env[ENV.table];
    const stack = await startLocalStack({ queryHandler: async () => 'hi' });
    const url = stack.api?.url;
    expect(await (await fetch(`${url}/`)).text()).toBe('hi');
    await stack.stop();
    await expect(fetch(`${url}/`)).rejects.toThrow();
    await expect(fetch(stack.emulators.kinesisEndpoint)).rejects.toThrow();
    expect(process.env[ENV.table]).toBe(before);
  });

  it('a taken API port fails with PortInUseError and leaves nothing listening', async () => {
    const kinesisPort = await freePort();
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const apiPort = (blocker.address() as { port: number }).port;
    try {
      const err = await startLocalStack({
        ports: { kinesis: kinesisPort, api: apiPort },
        queryHandler: async () => 'x',
      }).catch((e) => e);
      expect(err).toBeInstanceOf(PortInUseError);
      expect(err.port).toBe(apiPort);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    // The Kinesis port was released by the failed start.
    const stack = await startLocalStack({ ports: { kinesis: kinesisPort } });
    stacks.push(stack);
    expect(stack.emulators.kinesisEndpoint).toBe(`http://127.0.0.1:${kinesisPort}`);
  });
});
