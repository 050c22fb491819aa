/**
 * `udpwatch replay-failures`' core against kinesalite: the real local poller
 * gives batches up (the handler fails until their records are too old),
 * its failures become on-failure messages of the deployed shape, and the
 * replay re-reads each range and puts it again byte for byte. The messages
 * come from an in-memory source: no SQS emulator is installed, so the SQS
 * calls themselves (receive, visibility, delete) are not covered here.
 */
import { randomBytes } from 'node:crypto';
import { DeleteStreamCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FailureMessageEnvelope,
  type FailureMessageSource,
  replayFailures,
} from '../../../cli/failure-replay.js';
import { kinesisFailureMessage } from '../../../contract/failure-message.js';
import { createStream, type Emulators, startEmulators } from '../../../local/emulators.js';
import {
  type EventSourcePoller,
  type PollerFailure,
  startEventSourcePoller,
} from '../../../local/event-source-poller.js';

let emu: Emulators;
const stream = `replay-${process.pid}`;
let poller: EventSourcePoller;
/** While true the handler fails every batch (as a broken aggregate would). */
let broken = true;
/** What the handler took while healthy: "key|base64 data". */
const handled: string[] = [];
const failures: PollerFailure[] = [];
const originals: { key: string; data: Buffer }[] = [];

const recordId = (key: string, data: Uint8Array) =>
  `${key}|${Buffer.from(data).toString('base64')}`;

/** An in-memory queue: hands each message out once, records deletions. */
function memoryQueue(bodies: string[]): FailureMessageSource & { deleted: string[] } {
  const messages: FailureMessageEnvelope[] = bodies.map((body, i) => ({ id: `m${i}`, body }));
  let next = 0;
  const deleted: string[] = [];
  return {
    deleted,
    async receive(max) {
      const out = messages.slice(next, next + max);
      next += out.length;
      return out;
    },
    async delete(m) {
      deleted.push(m.id);
    },
  };
}

function failureBodies(): string[] {
  return failures.map((f) =>
    JSON.stringify(
      kinesisFailureMessage(
        {
          shardId: f.shardId,
          startSequenceNumber: f.startSequenceNumber,
          endSequenceNumber: f.endSequenceNumber,
          batchSize: f.records.length,
          streamArn: `arn:aws:kinesis:us-east-1:000000000000:stream/${stream}`,
        },
        'MaximumRecordAgeExceeded',
      ),
    ),
  );
}

beforeAll(async () => {
  emu = await startEmulators({ shardCount: 1 });
  await createStream(emu.kinesis, stream, 2);
  for (let i = 0; i < 60; i++) originals.push({ key: `k${i % 7}`, data: randomBytes(40 + i) });
  const res = await emu.kinesis.send(
    new PutRecordsCommand({
      StreamName: stream,
      Records: originals.map((r) => ({ PartitionKey: r.key, Data: r.data })),
    }),
  );
  expect(res.FailedRecordCount ?? 0).toBe(0);
  poller = startEventSourcePoller({
    kinesis: emu.kinesis,
    streamName: stream,
    batchSize: 25,
    maxBatchingWindowMs: 50,
    pollIntervalMs: 50,
    maxRecordAgeSeconds: 2,
    handler: async (event: KinesisStreamEvent) => {
      if (broken) {
        return {
          batchItemFailures: [{ itemIdentifier: event.Records[0]!.kinesis.sequenceNumber }],
        };
      }
      for (const r of event.Records) {
        handled.push(recordId(r.kinesis.partitionKey, Buffer.from(r.kinesis.data, 'base64')));
      }
      return { batchItemFailures: [] };
    },
    onFailure: (f) => {
      failures.push(f);
    },
  });
  await poller.drain(30_000);
  broken = false;
});

afterAll(async () => {
  await poller?.stop();
  await emu?.kinesis.send(new DeleteStreamCommand({ StreamName: stream })).catch(() => {});
  await emu?.stop();
});

describe('replayFailures (kinesalite, the local poller as the failing event source)', () => {
  it('the poller gave every record up, in ranges covering the stream', () => {
    expect(failures.length).toBeGreaterThanOrEqual(2);
    expect(failures.reduce((n, f) => n + f.records.length, 0)).toBe(originals.length);
    expect(handled).toEqual([]);
  });

  it('dry run: reads every range, reports it, puts and deletes nothing', async () => {
    const queue = memoryQueue(failureBodies());
    const lines: string[] = [];
    const report = await replayFailures({
      kinesis: emu.kinesis,
      source: queue,
      stream,
      dryRun: true,
      log: (l) => lines.push(l),
    });
    expect(report).toEqual({
      messages: failures.length,
      replayed: failures.length,
      records: originals.length,
      failed: 0,
    });
    expect(queue.deleted).toEqual([]);
    expect(lines.filter((l) => l.startsWith('would replay message'))).toHaveLength(failures.length);
    await poller.drain(10_000);
    expect(handled).toEqual([]);
  });

  it('puts every given-up record again byte for byte, deletes only the replayed messages, keeps bad ones', async () => {
    const bad = [
      'not json',
      JSON.stringify({ requestContext: {} }),
      // A range whose records are not (or no longer) in the shard.
      JSON.stringify(
        kinesisFailureMessage({
          shardId: failures[0]!.shardId,
          startSequenceNumber: '1',
          endSequenceNumber: '2',
          batchSize: 1,
          streamArn: stream,
        }),
      ),
    ];
    const bodies = [...failureBodies(), ...bad];
    const queue = memoryQueue(bodies);
    const lines: string[] = [];
    const report = await replayFailures({
      kinesis: emu.kinesis,
      source: queue,
      stream,
      log: (l) => lines.push(l),
    });
    expect(report).toEqual({
      messages: bodies.length,
      replayed: failures.length,
      records: originals.length,
      failed: bad.length,
    });
    expect(queue.deleted).toEqual(failures.map((_, i) => `m${i}`));
    const left = lines.filter((l) => /left in the queue/.test(l));
    expect(left).toHaveLength(3);
    expect(left[0]).toMatch(/m\d+ left in the queue: its body is not JSON/);
    expect(left[1]).toMatch(/not a Kinesis event source failure record \(KinesisBatchInfo/);
    expect(left[2]).toMatch(/cannot read shard|no longer in shard|not its end/);
    // The healthy handler now gets each original record once: same key, same bytes.
    await poller.drain(20_000);
    expect(handled.sort()).toEqual(originals.map((r) => recordId(r.key, r.data)).sort());
  });
});
