/**
 * The aggregate handler against kinesalite and dynalite: v2 blocks and v1
 * NDJSON records become immutable items put by content, exactly once across
 * replays, re-sends, conflicts, throttling and bad input.
 */
import { brotliCompressSync } from 'node:zlib';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Block, type BlockEndpoint, MINUTE_MS, minuteOf } from '../../../contract/block.js';
import {
  type BlockHead,
  blockHash,
  decodeBlock,
  encodeBlock,
  sealParts,
} from '../../../contract/block-codec.js';
import { encodeRecords, type UnsequencedLine } from '../../../contract/codec.js';
import { METRICS } from '../../../contract/resources.js';
import {
  agentKey,
  blockKey,
  conflictKey,
  lateKey,
  serviceKey,
  ttlFor,
} from '../../../contract/table-keys.js';
import type { HeartbeatLine } from '../../../contract/wire.js';
import { AGGREGATE_METRICS } from '../../../functions/aggregate/aggregate.js';
import { createAggregateHandler } from '../../../functions/aggregate/handler.js';
import { createStream, type Emulators, startEmulators } from '../../../local/emulators.js';
import { startEventSourcePoller } from '../../../local/event-source-poller.js';
import { type FaultProxy, startFaultProxy } from '../../../local/fault-proxy.js';
import {
  captureStdout,
  ctx,
  emfDocuments,
  flow,
  freshTable,
  localConfig,
  putRecords,
  rawRecord,
  tableItems,
  throughKinesis,
  useLocalCredentials,
} from './harness.js';

/** A minute that has just passed, so blocks of it are not late. */
const MINUTE = minuteOf(Date.now());

let emu: Emulators;
let proxy: FaultProxy;
let table: string;
let aggregate: ReturnType<typeof createAggregateHandler>;
let faulty: ReturnType<typeof createAggregateHandler>;

beforeAll(async () => {
  useLocalCredentials();
  emu = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  proxy = await startFaultProxy({ target: emu.dynamodbEndpoint });
});

afterAll(async () => {
  await proxy?.stop();
  await emu?.stop();
});

beforeEach(async () => {
  proxy.clear();
  table = await freshTable(emu.dynamodb);
  aggregate = createAggregateHandler(localConfig(table, emu.dynamodbEndpoint));
  // Through the proxy, with no SDK retries, so each injected fault reaches the handler.
  faulty = createAggregateHandler(localConfig(table, proxy.url), { maxAttempts: 1 });
});

async function run(
  handler: typeof aggregate,
  event: KinesisStreamEvent,
): Promise<KinesisStreamBatchResponse> {
  return (await handler(event, ctx())) as KinesisStreamBatchResponse;
}

/** Runs every event and sums a metric over the EMF documents the runs printed. */
async function runAll(events: KinesisStreamEvent[], handler = aggregate) {
  const failures: string[] = [];
  const { lines } = await captureStdout(async () => {
    for (const e of events) {
      const res = await run(handler, e);
      failures.push(...res.batchItemFailures.map((f) => f.itemIdentifier));
    }
  });
  const docs = emfDocuments(lines);
  const metric = (name: string) => docs.reduce((n, d) => n + Number(d[name] ?? 0), 0);
  return { failures, lines, metric };
}

function endpoint(i: number, over: Partial<BlockEndpoint> = {}): BlockEndpoint {
  return {
    ip: `198.51.100.${1 + (i % 50)}`,
    port: 40_000 + i,
    localIp: '192.0.2.1',
    localPort: 53,
    pktsIn: 3 + i,
    bytesIn: 300 + i,
    pktsOut: 2,
    bytesOut: 200,
    firstSecond: 2,
    lastSecond: 10 + (i % 40),
    source: 'hook',
    sampleRate: 1,
    ...over,
  };
}

const head = (over: Partial<BlockHead> = {}): BlockHead => ({
  agentId: 'agent-a',
  host: 'host-a',
  service: 'dns',
  minute: MINUTE,
  seq: 1,
  ...over,
});

const record = (b: Block) => ({ partitionKey: `${b.agentId}/0`, data: encodeBlock(b) });

const blockItems = (items: Record<string, unknown>[]) =>
  items.filter((i) => String(i.pk).startsWith('B#'));

const find = (items: Record<string, unknown>[], key: { pk: string; sk: string }) =>
  items.find((i) => i.pk === key.pk && i.sk === key.sk);

const bytesOf = (item: Record<string, unknown> | undefined) =>
  Buffer.from((item?.d as Uint8Array | undefined) ?? new Uint8Array());

describe('aggregate: v2 blocks', () => {
  it('stores a block part byte for byte under its key, with its attributes and the services list', async () => {
    const [part] = sealParts(head(), [endpoint(0), endpoint(1), endpoint(2)]);
    const data = encodeBlock(part!);
    const { failures } = await runAll(await throughKinesis(emu.kinesis, [record(part!)]));
    expect(failures).toEqual([]);
    const items = await tableItems(emu.dynamodbEndpoint, table);
    const stored = find(items, blockKey('dns', MINUTE, 'agent-a', 1, 0));
    expect(bytesOf(stored).equals(data)).toBe(true);
    const lastMs = MINUTE * MINUTE_MS + 12_000;
    expect(stored).toMatchObject({
      h: blockHash(data),
      service: 'dns',
      agentId: 'agent-a',
      host: 'host-a',
      minute: MINUTE,
      n: 3,
      lastMs,
      ttl: ttlFor(lastMs, 24),
    });
    expect(find(items, serviceKey('dns'))).toMatchObject({
      service: 'dns',
      firstSeen: MINUTE * MINUTE_MS + 2000,
      lastSeen: lastMs,
    });
    // Nothing else: no late mark for a timely block, no agent item without a heartbeat.
    expect(items).toHaveLength(2);
  });

  it('a replay, a retry and a re-send of the same parts change nothing', async () => {
    const parts = sealParts(
      head({ seq: 5 }),
      Array.from({ length: 9 }, (_, i) => endpoint(i)),
      { maxEndpoints: 4, maxBytes: 350 * 1024 },
    );
    expect(parts).toHaveLength(3);
    const events = await throughKinesis(emu.kinesis, parts.map(record));
    await runAll(events);
    const before = await tableItems(emu.dynamodbEndpoint, table);
    expect(blockItems(before).map((i) => i.sk)).toEqual(
      [0, 1, 2].map((p) => blockKey('dns', MINUTE, 'agent-a', 5, p).sk),
    );

    const resent = await throughKinesis(emu.kinesis, parts.map(record));
    const again = await runAll([
      ...events,
      ...resent,
      { Records: [...events.flatMap((e) => e.Records), ...events.flatMap((e) => e.Records)] },
    ]);
    expect(again.failures).toEqual([]);
    expect(again.metric(AGGREGATE_METRICS.blockConflicts)).toBe(0);
    expect(again.metric(AGGREGATE_METRICS.blocksStored)).toBe(12);
    expect(await tableItems(emu.dynamodbEndpoint, table)).toEqual(before);
  });

  it('a different part under a taken key is kept aside and counted; the first stays', async () => {
    const [first] = sealParts(head({ seq: 9 }), [endpoint(0)]);
    const [other] = sealParts(head({ seq: 9 }), [endpoint(0, { pktsIn: 999 })]);
    const firstBytes = encodeBlock(first!);
    const otherBytes = encodeBlock(other!);
    await runAll(await throughKinesis(emu.kinesis, [record(first!)]));
    const second = await runAll(await throughKinesis(emu.kinesis, [record(other!)]));
    expect(second.failures).toEqual([]);
    expect(second.metric(AGGREGATE_METRICS.blockConflicts)).toBe(1);
    expect(second.lines.some((l) => l.includes('kept aside') && l.includes('sequenceNumber'))).toBe(
      true,
    );
    // Put again: still one copy kept aside.
    await runAll(await throughKinesis(emu.kinesis, [record(other!)]));

    const items = await tableItems(emu.dynamodbEndpoint, table);
    const key = blockKey('dns', MINUTE, 'agent-a', 9, 0);
    expect(bytesOf(find(items, key)).equals(firstBytes)).toBe(true);
    const aside = find(items, conflictKey(key, 'dns', MINUTE, blockHash(otherBytes)));
    expect(bytesOf(aside).equals(otherBytes)).toBe(true);
    expect(items.filter((i) => String(i.pk).startsWith('CONFLICT#'))).toHaveLength(1);
    expect(blockItems(items)).toHaveLength(1);
  });

  it('marks a minute late when its block arrives after the summary lag, not before', async () => {
    const m = MINUTE - 10;
    const limit = (m + 1) * MINUTE_MS + 70_000;
    const timely = encodeBlock(sealParts(head({ service: 'ntp', minute: m }), [endpoint(0)])[0]!);
    const late = encodeBlock(sealParts(head({ service: 'dns', minute: m }), [endpoint(0)])[0]!);
    // Stored right when each arrived: lateness by arrival alone decides here.
    const stored = createAggregateHandler(localConfig(table, emu.dynamodbEndpoint), {
      now: () => limit,
    });
    const { failures, metric } = await runAll(
      [{ Records: [rawRecord(timely, '1', 'a/0', limit), rawRecord(late, '2', 'a/0', limit + 1)] }],
      stored,
    );
    expect(failures).toEqual([]);
    expect(metric(AGGREGATE_METRICS.lateBlocks)).toBe(1);
    const items = await tableItems(emu.dynamodbEndpoint, table);
    // The mark carries the record's arrival and the part's key, so a re-put differs from it.
    expect(find(items, lateKey('dns', m))).toMatchObject({
      service: 'dns',
      minute: m,
      at: limit + 1,
      block: blockKey('dns', m, 'agent-a', 1, 0).sk,
    });
    expect(find(items, lateKey('ntp', m))).toBeUndefined();
    expect(blockItems(items)).toHaveLength(2);
  });

  it('marks a minute late when a timely block is stored after the lag (function behind its stream)', async () => {
    const m = MINUTE - 20;
    const arrived = (m + 1) * MINUTE_MS + 5_000;
    const timely = encodeBlock(sealParts(head({ service: 'sip', minute: m }), [endpoint(0)])[0]!);
    const behind = createAggregateHandler(localConfig(table, emu.dynamodbEndpoint), {
      now: () => arrived + 10 * MINUTE_MS,
    });
    const { failures, metric } = await runAll(
      [{ Records: [rawRecord(timely, '3', 'a/0', arrived)] }],
      behind,
    );
    expect(failures).toEqual([]);
    expect(metric(AGGREGATE_METRICS.lateBlocks)).toBe(1);
    const items = await tableItems(emu.dynamodbEndpoint, table);
    expect(find(items, lateKey('sip', m))).toMatchObject({
      service: 'sip',
      minute: m,
      at: arrived,
    });
  });
});

describe('aggregate: v1 records', () => {
  const minuteStart = MINUTE * MINUTE_MS;
  const lines = (): UnsequencedLine[] => [
    flow({
      agentId: 'agent-v1',
      host: 'host-v1',
      service: 'dns',
      remoteIp: '203.0.113.7',
      remotePort: 5353,
      firstSeen: minuteStart - 30_000, // before the minute: clamped to second 0
      lastSeen: minuteStart + 41_500,
      pktsIn: 7,
      bytesIn: 700,
      clientId: 'tenant\u0007a',
    }),
    flow({
      agentId: 'agent-v1',
      host: 'host-v1',
      service: 'dns',
      remoteIp: '203.0.113.7',
      remotePort: 5353,
      firstSeen: minuteStart + 5_000,
      lastSeen: minuteStart + 20_000,
      pktsIn: 1,
      bytesIn: 100,
    }),
    flow({
      agentId: 'agent-v1',
      host: 'host-v1',
      service: 'ntp',
      remoteIp: '2001:db8::9',
      remotePort: 123,
      firstSeen: minuteStart + 1_000,
      lastSeen: minuteStart + 2_000,
    }),
    flow({
      agentId: 'agent-v1',
      host: 'host-v1',
      service: 'dns',
      remoteIp: '203.0.113.8',
      remotePort: 1,
      firstSeen: minuteStart + 59_000,
      lastSeen: minuteStart + 61_000,
    }),
  ];
  const encode = (gzip: boolean) => encodeRecords(lines(), { nextSeq: () => 42, gzip })[0]!.data;

  it('a record put twice with PutRecord becomes one part per service-minute, stored once', async () => {
    const data = encode(false);
    const events = await throughKinesis(
      emu.kinesis,
      [
        { partitionKey: 'agent-v1/0', data },
        { partitionKey: 'agent-v1/0', data },
      ],
      { via: 'PutRecord' },
    );
    const { failures, metric } = await runAll(events);
    expect(failures).toEqual([]);
    expect(metric(AGGREGATE_METRICS.blockConflicts)).toBe(0);
    const items = await tableItems(emu.dynamodbEndpoint, table);
    const blocks = blockItems(items);
    expect(blocks.map((b) => `${b.service} ${b.minute} ${b.sk}`).sort()).toEqual([
      `dns ${MINUTE} ${blockKey('dns', MINUTE, 'agent-v1', 42, 0).sk}`,
      `dns ${MINUTE + 1} ${blockKey('dns', MINUTE + 1, 'agent-v1', 42, 0).sk}`,
      `ntp ${MINUTE} ${blockKey('ntp', MINUTE, 'agent-v1', 42, 0).sk}`,
    ]);
    const decoded = decodeBlock(bytesOf(find(items, blockKey('dns', MINUTE, 'agent-v1', 42, 0))));
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.block).toMatchObject({
      agentId: 'agent-v1',
      host: 'host-v1',
      seq: 42,
      part: 0,
      parts: 1,
    });
    // Two lines of one endpoint merged: counters summed, first the min, last the max.
    expect(decoded.block.endpoints).toEqual([
      expect.objectContaining({
        ip: '203.0.113.7',
        port: 5353,
        pktsIn: 8,
        bytesIn: 800,
        pktsOut: 2,
        firstSecond: 0,
        lastSecond: 41,
        clientId: 'tenant\uFFFDa',
      }),
    ]);

    // The same lines gzip'd (a re-send by another writer) land on the same items, unchanged.
    const before = await tableItems(emu.dynamodbEndpoint, table);
    const gz = await throughKinesis(
      emu.kinesis,
      [{ partitionKey: 'agent-v1/0', data: encode(true) }],
      {
        via: 'PutRecord',
      },
    );
    const again = await runAll(gz);
    expect(again.metric(AGGREGATE_METRICS.blockConflicts)).toBe(0);
    expect(await tableItems(emu.dynamodbEndpoint, table)).toEqual(before);
  });

  it('heartbeats: the newest wins and a claimed future is clamped to arrival + 5 minutes', async () => {
    const arrival = Date.now();
    const hb = (at: number, flows: number): Buffer =>
      Buffer.from(
        JSON.stringify({
          v: 1,
          type: 'heartbeat',
          agentId: 'agent-h',
          seq: flows,
          host: 'host-h',
          at,
          flows,
          dropped: 1,
          spooled: 0,
          sources: ['hook', 'proc'],
        } satisfies HeartbeatLine),
      );
    const agent = async () =>
      find(await tableItems(emu.dynamodbEndpoint, table), agentKey('agent-h'));
    await runAll([{ Records: [rawRecord(hb(arrival - 10_000, 10), '1', 'h/0', arrival)] }]);
    await runAll([{ Records: [rawRecord(hb(arrival - 60_000, 11), '2', 'h/0', arrival)] }]);
    expect(await agent()).toMatchObject({
      agentId: 'agent-h',
      host: 'host-h',
      lastHeartbeat: arrival - 10_000,
      flows: 10,
      dropped: 1,
      sources: ['hook', 'proc'],
    });
    await runAll([{ Records: [rawRecord(hb(arrival + 3_600_000, 12), '3', 'h/0', arrival)] }]);
    expect(await agent()).toMatchObject({ lastHeartbeat: arrival + 300_000, flows: 12 });
    // Older than the clamped time: ignored.
    await runAll([{ Records: [rawRecord(hb(arrival + 120_000, 13), '4', 'h/0', arrival)] }]);
    expect(await agent()).toMatchObject({ lastHeartbeat: arrival + 300_000, flows: 12 });
  });
});

describe('aggregate: bad input and failures', () => {
  it('skips, locates and counts bad records and lines; good records in the batch land', async () => {
    const good = encodeBlock(sealParts(head({ seq: 3 }), [endpoint(0)])[0]!);
    const goodLine = JSON.stringify({
      ...flow({
        agentId: 'agent-z',
        service: 'dns',
        remoteIp: '203.0.113.1',
        remotePort: 9,
        firstSeen: MINUTE * MINUTE_MS,
        lastSeen: MINUTE * MINUTE_MS,
      }),
      seq: 1,
    });
    const badIp = goodLine.replace('203.0.113.1', 'zz:01');
    const bomb = Buffer.concat([
      Buffer.from('UWB\x02'),
      brotliCompressSync(Buffer.alloc(8 * 1024 * 1024)),
    ]);
    const batch = [
      rawRecord(Buffer.from('UWB\x02garbage'), '900', 'bad/1'),
      rawRecord(Buffer.concat([Buffer.from('UWB\x03'), good.subarray(4)]), '901'),
      rawRecord(bomb, '902'),
      rawRecord(good, '903', 'agent-a/0'),
      rawRecord(Buffer.from(`${goodLine}\n${badIp}\nnot json\n`), '904'),
      rawRecord(Buffer.of(0x1f, 0x8b, 0, 1, 2, 3), '905'),
      rawRecord(Buffer.alloc(0), '906'),
    ];
    const { failures, lines, metric } = await runAll([{ Records: batch }]);
    expect(failures).toEqual([]);
    expect(metric(METRICS.badRecords)).toBe(5);
    expect(metric(METRICS.badLines)).toBe(2);
    const warned = (seq: string, text: string) =>
      lines.some(
        (l) =>
          l.includes('skipping bad') && l.includes(`"sequenceNumber":"${seq}"`) && l.includes(text),
      );
    expect(warned('900', 'bad/1')).toBe(true);
    expect(warned('901', 'block version 3 is not supported')).toBe(true);
    expect(warned('902', 'inflates to more than')).toBe(true);
    expect(warned('904', 'zz:01')).toBe(true);
    expect(warned('905', 'gzip')).toBe(true);
    const items = await tableItems(emu.dynamodbEndpoint, table);
    expect(bytesOf(find(items, blockKey('dns', MINUTE, 'agent-a', 3, 0))).equals(good)).toBe(true);
    expect(find(items, blockKey('dns', MINUTE, 'agent-z', 1, 0))).toBeDefined();
    expect(blockItems(items)).toHaveLength(2);
  });

  it('DynamoDB down: the batch that starts the episode logs its errors, retries only count, recovery is logged once', async () => {
    const part = sealParts(head({ agentId: 'agent-w', seq: 900 }), [endpoint(1)])[0]!;
    const [event] = await throughKinesis(emu.kinesis, [record(part)]);
    const single = createAggregateHandler(localConfig(table, proxy.url), { maxAttempts: 1 });
    const count = (lines: string[], message: string) =>
      lines.filter((l) => l.includes(`"message":"${message}"`)).length;
    await proxy.refuse(true);
    let first: Awaited<ReturnType<typeof runAll>>;
    let retries: Awaited<ReturnType<typeof runAll>>;
    try {
      first = await runAll([event!], single);
      retries = await runAll([event!, event!, event!], single);
    } finally {
      await proxy.refuse(false);
    }
    expect(first.failures).toHaveLength(1);
    expect(count(first.lines, 'write failed')).toBeGreaterThan(0);
    expect(count(first.lines, 'reporting failed records for retry')).toBe(1);
    // Every retry fails and is counted, none is logged.
    expect(retries.failures).toHaveLength(3);
    expect(retries.metric(AGGREGATE_METRICS.failedRecords)).toBe(3);
    expect(count(retries.lines, 'write failed')).toBe(0);
    expect(count(retries.lines, 'reporting failed records for retry')).toBe(0);
    const up = await runAll([event!], single);
    expect(up.failures).toEqual([]);
    const recovered = up.lines.filter((l) => l.includes('"message":"writes succeed again"'));
    expect(recovered).toHaveLength(1);
    expect(JSON.parse(recovered[0]!)).toMatchObject({ failedBatches: 4, retriedRecords: 4 });
    const again = await runAll([event!], single);
    expect(count(again.lines, 'writes succeed again')).toBe(0);
  });

  it('throttled and failing writes are reported, retried by the poller and stored exactly', async () => {
    const parts = Array.from(
      { length: 24 },
      (_, i) =>
        sealParts(
          head({ agentId: `agent-${i % 6}`, seq: 100 + i, service: i % 2 ? 'dns' : 'ntp' }),
          [endpoint(i), endpoint(i + 50)],
        )[0]!,
    );
    const stream = `aggregate-faults-${process.pid}`;
    await createStream(emu.kinesis, stream, 2);
    await putRecords(emu.kinesis, stream, parts.map(record));
    proxy.setFaults([
      { operation: 'PutItem', kind: 'throttle', probability: 0.3, seed: 7, count: 12 },
      // The write lands but its answer is lost: the retry re-puts the same bytes.
      {
        operation: 'PutItem',
        kind: 'http500',
        phase: 'after',
        probability: 0.2,
        seed: 3,
        count: 4,
      },
      { operation: 'UpdateItem', kind: 'throttle', count: 1 },
    ]);
    const poller = startEventSourcePoller({
      kinesis: emu.kinesis,
      streamName: stream,
      handler: (event, context) =>
        captureStdout(() => faulty(event, context)).then((r) => r.result),
      retryAttempts: -1,
      maxBatchingWindowMs: 50,
      pollIntervalMs: 50,
    });
    try {
      await poller.drain(60_000);
    } finally {
      await poller.stop();
    }
    expect(proxy.stats.injected).toBeGreaterThan(3);
    const items = await tableItems(emu.dynamodbEndpoint, table);
    expect(items.filter((i) => String(i.pk).startsWith('CONFLICT#'))).toEqual([]);
    const blocks = blockItems(items);
    expect(blocks).toHaveLength(parts.length);
    for (const p of parts) {
      const stored = find(blocks, blockKey(p.service, p.minute, p.agentId, p.seq, 0));
      expect(bytesOf(stored).equals(encodeBlock(p))).toBe(true);
    }
    expect(find(items, serviceKey('dns'))).toBeDefined();
    expect(find(items, serviceKey('ntp'))).toBeDefined();
  });
});
