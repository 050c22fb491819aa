import { createServer } from 'node:net';
import {
  ProvisionedThroughputExceededException as DynamoThrottled,
  GetItemCommand,
  ThrottlingException,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  type KinesisClient,
  ListShardsCommand,
  ProvisionedThroughputExceededException,
  PutRecordCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamodbClient, kinesisClient } from '../../../local/aws-clients.js';
import { type Emulators, PortInUseError, startEmulators } from '../../../local/emulators.js';
import { type FaultProxy, startFaultProxy } from '../../../local/fault-proxy.js';
import { readShardRecords } from '../../support/stream-records.js';

let emu: Emulators;
let kProxy: FaultProxy;
let dProxy: FaultProxy;
let kinesis: KinesisClient;
let dynamodb: ReturnType<typeof dynamodbClient>;

beforeAll(async () => {
  emu = await startEmulators({ shardCount: 2 });
  kProxy = await startFaultProxy({ target: emu.kinesisEndpoint });
  dProxy = await startFaultProxy({ target: emu.dynamodbEndpoint });
  kinesis = kinesisClient({ endpoint: kProxy.url, maxAttempts: 1 });
  dynamodb = dynamodbClient({ endpoint: dProxy.url, maxAttempts: 1 });
});

afterAll(async () => {
  kinesis?.destroy();
  dynamodb?.destroy();
  await kProxy?.stop();
  await dProxy?.stop();
  await emu?.stop();
});

const put = (data: string, key = 'k') =>
  kinesis.send(
    new PutRecordCommand({
      StreamName: emu.streamName,
      PartitionKey: key,
      Data: Buffer.from(data),
    }),
  );

/** Every record in the stream, read straight from the emulator (not through the proxy). */
async function readAll(): Promise<{ data: string; seq: string; key: string }[]> {
  return (await readShardRecords(emu.kinesis, emu.streamName)).flatMap(({ records }) =>
    records.map((r) => ({
      data: Buffer.from(r.Data ?? []).toString(),
      seq: r.SequenceNumber ?? '',
      key: r.PartitionKey ?? '',
    })),
  );
}

describe('fault proxy over kinesalite', () => {
  it('is transparent without rules and counts requests per operation', async () => {
    kProxy.clear();
    const before = kProxy.stats.requests;
    const res = await put('transparent-1');
    expect(res.SequenceNumber).toMatch(/^\d+$/);
    expect(kProxy.stats.requests).toBe(before + 1);
    expect(kProxy.stats.byOperation['Kinesis_20131202.PutRecord']).toBeGreaterThanOrEqual(1);
    const stored = await readAll();
    expect(stored.find((r) => r.data === 'transparent-1')?.seq).toBe(res.SequenceNumber);
  });

  it('answers http500 as an InternalFailure the SDK sees with status 500, then recovers', async () => {
    kProxy.setFaults([{ operation: 'Kinesis_20131202.PutRecord', kind: 'http500', count: 1 }]);
    const injected = kProxy.stats.injected;
    const err = await put('h500-lost').catch((e) => e);
    expect(err.name).toBe('InternalFailure');
    expect(err.$metadata.httpStatusCode).toBe(500);
    expect(kProxy.stats.injected).toBe(injected + 1);
    await expect(put('h500-ok')).resolves.toHaveProperty('SequenceNumber');
    const data = (await readAll()).map((r) => r.data);
    expect(data).toContain('h500-ok');
    expect(data).not.toContain('h500-lost');
  });

  it('throttles with ProvisionedThroughputExceededException', async () => {
    kProxy.setFaults([{ operation: 'PutRecord', kind: 'throttle', count: 1 }]);
    const err = await put('throttled').catch((e) => e);
    expect(err).toBeInstanceOf(ProvisionedThroughputExceededException);
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect((await readAll()).map((r) => r.data)).not.toContain('throttled');
  });

  it('skips, then fires count times, only on the named operation', async () => {
    kProxy.setFaults([{ operation: 'PutRecord', kind: 'throttle', skip: 2, count: 1 }]);
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) {
      outcomes.push(
        await put(`skip-${i}`).then(
          () => 'ok',
          (e: Error) => e.name,
        ),
      );
      // Another operation never matches the rule.
      await kinesis.send(new ListShardsCommand({ StreamName: emu.streamName }));
    }
    expect(outcomes).toEqual(['ok', 'ok', 'ProvisionedThroughputExceededException', 'ok']);
  });

  it('fires by seeded probability, reproducibly', async () => {
    const pattern = async () => {
      kProxy.setFaults([{ operation: 'ListShards', kind: 'throttle', probability: 0.5, seed: 42 }]);
      const out: boolean[] = [];
      for (let i = 0; i < 16; i++) {
        out.push(
          await kinesis.send(new ListShardsCommand({ StreamName: emu.streamName })).then(
            () => true,
            () => false,
          ),
        );
      }
      return out;
    };
    const first = await pattern();
    const second = await pattern();
    expect(second).toEqual(first);
    expect(first).toContain(true);
    expect(first).toContain(false);
  });

  it('resets the connection before forwarding: the SDK errors and nothing is stored', async () => {
    kProxy.setFaults([{ operation: 'PutRecord', kind: 'reset', count: 1 }]);
    const err = await put('reset-lost').catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.$metadata?.httpStatusCode).toBeUndefined();
    expect((await readAll()).map((r) => r.data)).not.toContain('reset-lost');
    await expect(put('reset-ok')).resolves.toHaveProperty('SequenceNumber');
  });

  it('delays a request by at least delayMs and then forwards it', async () => {
    kProxy.setFaults([{ operation: 'PutRecord', kind: 'delay', delayMs: 300, count: 1 }]);
    const t0 = Date.now();
    const res = await put('delayed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect((await readAll()).find((r) => r.data === 'delayed')?.seq).toBe(res.SequenceNumber);
  });

  it('partialPutRecords stores exactly the forwarded records and reports the rest as throttled', async () => {
    kProxy.setFaults([{ operation: 'PutRecords', kind: 'partialPutRecords', count: 1 }]);
    const records = Array.from({ length: 10 }, (_, i) => ({
      PartitionKey: `pk-${i}`,
      Data: Buffer.from(`partial-${i}`),
    }));
    const res = await kinesis.send(
      new PutRecordsCommand({ StreamName: emu.streamName, Records: records }),
    );
    expect(res.FailedRecordCount).toBe(5);
    const entries = res.Records ?? [];
    expect(entries).toHaveLength(10);
    entries.forEach((e, i) => {
      if (i % 2 === 1) {
        expect(e.ErrorCode).toBe('ProvisionedThroughputExceededException');
        expect(e.SequenceNumber).toBeUndefined();
      } else {
        expect(e.ErrorCode).toBeUndefined();
        expect(e.SequenceNumber).toMatch(/^\d+$/);
        expect(e.ShardId).toMatch(/^shardId-/);
      }
    });
    const stored = (await readAll()).filter((r) => r.data.startsWith('partial-'));
    const expected = entries.flatMap((e, i) =>
      e.SequenceNumber ? [{ data: `partial-${i}`, seq: e.SequenceNumber, key: `pk-${i}` }] : [],
    );
    const byData = (a: { data: string }, b: { data: string }) => a.data.localeCompare(b.data);
    expect(stored.sort(byData)).toEqual(expected.sort(byData));
  });

  it('partialPutRecords with a seeded failFraction fails the same records each time', async () => {
    const failedSet = async (tag: string) => {
      kProxy.setFaults([
        {
          operation: 'PutRecords',
          kind: 'partialPutRecords',
          failFraction: 0.3,
          seed: 7,
          count: 1,
        },
      ]);
      const res = await kinesis.send(
        new PutRecordsCommand({
          StreamName: emu.streamName,
          Records: Array.from({ length: 20 }, (_, i) => ({
            PartitionKey: `f-${i}`,
            Data: Buffer.from(`${tag}-${i}`),
          })),
        }),
      );
      const failed = (res.Records ?? []).flatMap((e, i) => (e.ErrorCode ? [i] : []));
      expect(res.FailedRecordCount).toBe(failed.length);
      const stored = (await readAll())
        .filter((r) => r.data.startsWith(`${tag}-`))
        .map((r) => r.data);
      expect(stored.sort()).toEqual(
        Array.from({ length: 20 }, (_, i) => i)
          .filter((i) => !failed.includes(i))
          .map((i) => `${tag}-${i}`)
          .sort(),
      );
      return failed;
    };
    const a = await failedSet('fracA');
    const b = await failedSet('fracB');
    expect(b).toEqual(a);
    expect(a.length).toBeGreaterThan(0);
    expect(a.length).toBeLessThan(20);
  });

  it('refuses connections while refusing, and serves again afterwards on the same URL', async () => {
    kProxy.clear();
    await kProxy.refuse(true);
    const err = await put('refused').catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.code ?? err.message)).toMatch(/ECONNREFUSED|ECONNRESET|socket hang up/);
    await kProxy.refuse(false);
    await expect(put('after-refuse')).resolves.toHaveProperty('SequenceNumber');
    expect((await readAll()).map((r) => r.data)).not.toContain('refused');
  });

  it('reports a taken port as PortInUseError', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    await expect(startFaultProxy({ target: emu.kinesisEndpoint, port })).rejects.toBeInstanceOf(
      PortInUseError,
    );
    await new Promise((r) => blocker.close(r));
  });
});

describe('fault proxy over dynalite', () => {
  const key = (id: string) => ({ pk: { S: `fault#${id}` }, sk: { S: 'x' } });
  const bump = (id: string) =>
    dynamodb.send(
      new UpdateItemCommand({
        TableName: emu.tableName,
        Key: key(id),
        UpdateExpression: 'ADD n :one',
        ExpressionAttributeValues: { ':one': { N: '1' } },
      }),
    );
  const count = async (id: string) => {
    const item = await emu.dynamodb.send(
      new GetItemCommand({ TableName: emu.tableName, Key: key(id) }),
    );
    return Number(item.Item?.n?.N ?? 0);
  };

  it('throttles UpdateItem as ProvisionedThroughputExceededException without applying it', async () => {
    dProxy.setFaults([{ operation: 'DynamoDB_20120810.UpdateItem', kind: 'throttle', count: 1 }]);
    const err = await bump('t1').catch((e) => e);
    expect(err).toBeInstanceOf(DynamoThrottled);
    expect(await count('t1')).toBe(0);
    await bump('t1');
    expect(await count('t1')).toBe(1);
  });

  it('throttles as ThrottlingException when asked', async () => {
    dProxy.setFaults([
      { operation: 'UpdateItem', kind: 'throttle', throttleType: 'ThrottlingException', count: 1 },
    ]);
    await expect(bump('t2')).rejects.toBeInstanceOf(ThrottlingException);
  });

  it('http500 after forwarding: the update is applied but the client sees a failure', async () => {
    dProxy.setFaults([{ operation: 'UpdateItem', kind: 'http500', phase: 'after', count: 1 }]);
    const err = await bump('after').catch((e) => e);
    expect(err.name).toBe('InternalServerError');
    expect(err.$metadata.httpStatusCode).toBe(500);
    expect(await count('after')).toBe(1);
  });

  it('reset after forwarding: applied, but the client gets no answer', async () => {
    dProxy.setFaults([{ operation: 'UpdateItem', kind: 'reset', phase: 'after', count: 1 }]);
    await expect(bump('reset-after')).rejects.toBeInstanceOf(Error);
    expect(await count('reset-after')).toBe(1);
  });
});
