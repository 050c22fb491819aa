import {
  type AttributeValue,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dynamodbClient } from '../../../local/aws-clients.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { startFaultProxy } from '../../../local/fault-proxy.js';
import { startTtlSweeper } from '../../../local/ttl-sweeper.js';

let emu: Emulators;
let test = 0;
const NOW_MS = 1_800_000_000_000;
const NOW_S = NOW_MS / 1000;

beforeAll(async () => {
  emu = await startEmulators();
});
afterAll(async () => {
  await emu?.stop();
});
beforeEach(() => {
  test++;
});

const put = (sk: string, ttl?: AttributeValue) =>
  emu.dynamodb.send(
    new PutItemCommand({
      TableName: emu.tableName,
      Item: { pk: { S: `ttl-test-${test}` }, sk: { S: sk }, ...(ttl ? { ttl } : {}) },
    }),
  );

/** Sort keys of this test's items still in the table. */
async function remaining(): Promise<string[]> {
  const out: string[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await emu.dynamodb.send(
      new ScanCommand({
        TableName: emu.tableName,
        FilterExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': { S: `ttl-test-${test}` } },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) out.push(item.sk?.S ?? '');
    start = page.LastEvaluatedKey;
  } while (start);
  return out.sort();
}

describe('TTL sweeper', () => {
  it('deletes exactly the items whose numeric ttl is in the past, over many Scan pages', async () => {
    for (let i = 0; i < 25; i++)
      await put(`expired-${String(i).padStart(2, '0')}`, { N: String(NOW_S - 1 - i) });
    await put('future', { N: String(NOW_S + 60) });
    await put('exactly-now', { N: String(NOW_S) });
    await put('no-ttl');
    await put('string-ttl', { S: '1' });
    const sweeper = startTtlSweeper({
      dynamodb: emu.dynamodb,
      tableName: emu.tableName,
      intervalMs: 3_600_000,
      now: () => NOW_MS,
      pageSize: 4,
    });
    try {
      expect(await sweeper.sweepOnce()).toBe(25);
      expect(await remaining()).toEqual(['exactly-now', 'future', 'no-ttl', 'string-ttl']);
      expect(await sweeper.sweepOnce()).toBe(0);
    } finally {
      await sweeper.stop();
    }
  });

  it('sweeps by itself every interval', async () => {
    await put('old', { N: String(Math.floor(Date.now() / 1000) - 5) });
    // Far enough ahead that the pinned clocks of the other tests keep it too.
    await put('fresh', { N: String(NOW_S + 10_000_000) });
    const sweeper = startTtlSweeper({
      dynamodb: emu.dynamodb,
      tableName: emu.tableName,
      intervalMs: 30,
    });
    try {
      let left = await remaining();
      for (let i = 0; i < 100 && left.includes('old'); i++) {
        await new Promise((r) => setTimeout(r, 30));
        left = await remaining();
      }
      expect(left).toEqual(['fresh']);
    } finally {
      await sweeper.stop();
    }
  });

  it('keeps an item whose ttl was extended between the Scan and the delete', async () => {
    await put('extended', { N: String(NOW_S - 10) });
    const proxy = await startFaultProxy({ target: emu.dynamodbEndpoint });
    const dynamodb = dynamodbClient({ endpoint: proxy.url, maxAttempts: 1 });
    try {
      proxy.setFaults([{ operation: 'DeleteItem', kind: 'delay', delayMs: 300 }]);
      const sweeper = startTtlSweeper({
        dynamodb,
        tableName: emu.tableName,
        intervalMs: 3_600_000,
        now: () => NOW_MS,
      });
      const sweep = sweeper.sweepOnce();
      // While the delete is held by the proxy, a writer refreshes the item.
      for (let i = 0; i < 100 && !proxy.stats.byOperation['DynamoDB_20120810.DeleteItem']; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      await emu.dynamodb.send(
        new UpdateItemCommand({
          TableName: emu.tableName,
          Key: { pk: { S: `ttl-test-${test}` }, sk: { S: 'extended' } },
          UpdateExpression: 'SET #ttl = :t',
          ExpressionAttributeNames: { '#ttl': 'ttl' },
          ExpressionAttributeValues: { ':t': { N: String(NOW_S + 3600) } },
        }),
      );
      expect(await sweep).toBe(0);
      await sweeper.stop();
      const item = await emu.dynamodb.send(
        new GetItemCommand({
          TableName: emu.tableName,
          Key: { pk: { S: `ttl-test-${test}` }, sk: { S: 'extended' } },
        }),
      );
      expect(item.Item?.ttl?.N).toBe(String(NOW_S + 3600));
    } finally {
      dynamodb.destroy();
      await proxy.stop();
    }
  });
});
