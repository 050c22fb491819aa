/** How one Kinesis record becomes planned writes: v1 lines to block parts, heartbeats, lateness. */
import { fc, test } from '@fast-check/vitest';
import type { KinesisStreamRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { MAX_BLOCK_COUNTER, MINUTE_MS } from '../../../contract/block.js';
import { encodeBlock } from '../../../contract/block-codec.js';
import { encodeRecords, type UnsequencedLine } from '../../../contract/codec.js';
import { blockKey } from '../../../contract/table-keys.js';
import type { FlowLine } from '../../../contract/wire.js';
import { isLate, planRecord } from '../../../functions/aggregate/record-plan.js';
import { blocksOfFlowLines } from '../../../functions/aggregate/v1-blocks.js';

const MINUTE = 29_500_000;
const START = MINUTE * MINUTE_MS;

function flowLine(i: number, over: Partial<FlowLine> = {}): FlowLine {
  return {
    v: 1,
    type: 'flow',
    agentId: 'agent-a',
    seq: 12,
    host: 'host-a',
    service: i % 3 === 0 ? 'ntp' : 'dns',
    source: 'hook',
    localIp: '192.0.2.1',
    localPort: 53,
    remoteIp: `198.51.100.${i % 7}`,
    remotePort: 1000 + (i % 5),
    firstSeen: START + (i % 50) * 1000,
    lastSeen: START + (i % 50) * 1000 + (i % 4) * 30_000,
    pktsIn: i,
    bytesIn: 10 * i,
    pktsOut: 1,
    bytesOut: 5,
    sampleRate: 1,
    ...over,
  };
}

function kinesisRecord(data: Buffer, arrivalMs: number): KinesisStreamRecord {
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: 'agent-a/0',
      sequenceNumber: '1',
      data: data.toString('base64'),
      approximateArrivalTimestamp: arrivalMs / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: 'shardId-000000000000:1',
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn:aws:iam::000000000000:role/r',
    awsRegion: 'us-east-1',
    eventSourceARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/s',
  };
}

const numbered = (lines: FlowLine[]) => lines.map((flow, i) => ({ line: i + 1, flow }));

describe('blocksOfFlowLines', () => {
  test.prop([fc.array(fc.nat(200), { minLength: 1, maxLength: 60 }), fc.nat()])(
    'gives the same parts, byte for byte, whatever the order of the lines',
    (ids, seed) => {
      const lines = ids.map((i) => flowLine(i));
      const shuffled = [...lines].sort(
        (a, b) => ((a.pktsIn * 7919 + seed) % 101) - ((b.pktsIn * 7919 + seed) % 101),
      );
      const a = blocksOfFlowLines(numbered(lines)).blocks.map(encodeBlock);
      const b = blocksOfFlowLines(numbered(shuffled)).blocks.map(encodeBlock);
      expect(b).toStrictEqual(a);
    },
  );

  test.prop([fc.array(fc.nat(200), { minLength: 1, maxLength: 60 })])(
    'makes one block per (service, minute of lastSeen), keys all distinct, counters kept',
    (ids) => {
      const lines = ids.map((i) => flowLine(i));
      const { blocks, errors } = blocksOfFlowLines(numbered(lines));
      expect(errors).toEqual([]);
      const groups = new Set(
        lines.map((l) => `${l.service} ${Math.floor(l.lastSeen / MINUTE_MS)}`),
      );
      expect(new Set(blocks.map((b) => `${b.service} ${b.minute}`))).toEqual(groups);
      const keys = blocks.map((b) => {
        const k = blockKey(b.service, b.minute, b.agentId, b.seq, b.part);
        return `${k.pk} ${k.sk}`;
      });
      expect(new Set(keys).size).toBe(keys.length);
      const sum = (xs: number[]) => xs.reduce((n, x) => n + x, 0);
      expect(sum(blocks.flatMap((b) => b.endpoints.map((e) => e.pktsIn)))).toBe(
        sum(lines.map((l) => l.pktsIn)),
      );
      for (const b of blocks) expect(b.seq).toBe(12);
    },
  );

  it('clamps seconds into the minute of lastSeen', () => {
    const { blocks } = blocksOfFlowLines(
      numbered([flowLine(1, { firstSeen: START - 90_000, lastSeen: START + 59_999 })]),
    );
    expect(blocks[0]!.minute).toBe(MINUTE);
    expect(blocks[0]!.endpoints[0]).toMatchObject({ firstSecond: 0, lastSecond: 59 });
  });

  it('reports a line whose counter a block cannot hold, and keeps the others', () => {
    const { blocks, errors } = blocksOfFlowLines(
      numbered([flowLine(1), flowLine(2, { bytesIn: MAX_BLOCK_COUNTER + 1 })]),
    );
    expect(errors).toEqual([
      {
        line: 2,
        field: 'bytesIn',
        reason: `bytesIn: ${MAX_BLOCK_COUNTER + 1} is more than a block holds (${MAX_BLOCK_COUNTER})`,
      },
    ]);
    expect(blocks.flatMap((b) => b.endpoints)).toHaveLength(1);
  });
});

describe('planRecord', () => {
  const lines = (): UnsequencedLine[] => [
    { ...flowLine(1) },
    {
      v: 1,
      type: 'heartbeat',
      agentId: 'agent-a',
      host: 'host-a',
      at: START + 3_600_000,
      flows: 1,
      dropped: 0,
      spooled: 0,
    },
  ];
  const data = encodeRecords(lines(), { nextSeq: () => 12 })[0]!.data;

  it('clamps a heartbeat to arrival + 5 minutes and plans the flow line as a part', () => {
    const plan = planRecord(kinesisRecord(data, START + 10_000), 0, {
      retentionHours: 24,
      nowMs: 0,
    });
    expect(plan.badRecord).toBeUndefined();
    expect(plan.heartbeat?.at).toBe(START + 10_000 + 300_000);
    expect(plan.blocks).toHaveLength(1);
    expect(plan.blocks[0]!.key).toEqual(blockKey('dns', MINUTE, 'agent-a', 12, 0));
  });

  it('plans the same writes when the record comes again', () => {
    const a = planRecord(kinesisRecord(data, START + 10_000), 0, { retentionHours: 24, nowMs: 0 });
    const b = planRecord(kinesisRecord(data, START + 10_000), 3, { retentionHours: 24, nowMs: 0 });
    expect(b.blocks).toStrictEqual(a.blocks);
  });

  it('calls a block late only after its minute end plus the summary lag', () => {
    const end = (MINUTE + 1) * MINUTE_MS;
    expect(isLate(MINUTE, end + 70_000)).toBe(false);
    expect(isLate(MINUTE, end + 70_001)).toBe(true);
    const late = planRecord(kinesisRecord(data, end + 70_001), 0, { retentionHours: 24, nowMs: 0 });
    expect(late.blocks[0]!.late).toBe(true);
  });

  it('rejects a block or a flow line dated more than 5 minutes past the arrival, naming the fix', () => {
    const [block] = blocksOfFlowLines(numbered([flowLine(1)])).blocks;
    const v2 = Buffer.from(encodeBlock(block!));
    const minuteStart = block!.minute * MINUTE_MS;
    // The minute may start up to 5 minutes after the arrival (a clock that runs ahead)...
    const near = planRecord(kinesisRecord(v2, minuteStart - 300_000), 0, {
      retentionHours: 24,
      nowMs: 0,
    });
    expect(near.badRecord).toBeUndefined();
    expect(near.blocks).toHaveLength(1);
    // ... but not later: the whole record is a counted, located skip.
    const far = planRecord(kinesisRecord(v2, minuteStart - 300_001), 0, {
      retentionHours: 24,
      nowMs: 0,
    });
    expect(far.blocks).toEqual([]);
    expect(far.badRecord).toMatch(
      new RegExp(
        `^block minute ${block!.minute} .* is 300 s past the record's arrival .*fix the sending host's clock$`,
      ),
    );
    // A v1 record: the line dated 2099 is rejected, the others are stored.
    const year2099 = Date.UTC(2099, 0, 1);
    const v1 = encodeRecords(
      [flowLine(1), flowLine(2, { lastSeen: year2099, firstSeen: year2099 })],
      {
        nextSeq: () => 12,
      },
    )[0]!.data;
    const mixed = planRecord(kinesisRecord(v1, START + 10_000), 0, {
      retentionHours: 24,
      nowMs: 0,
    });
    expect(mixed.badRecord).toBeUndefined();
    expect(mixed.badLines).toEqual([
      {
        line: 2,
        reason: expect.stringMatching(/^lastSeen 2099-01-01T00:00:00\.000Z is \d+ s past/),
      },
    ]);
    expect(mixed.blocks.map((b) => [b.service, b.minute])).toEqual([['dns', block!.minute]]);
  });

  it('uses the clock when the record has no arrival time', () => {
    const plan = planRecord(kinesisRecord(data, 0), 0, { retentionHours: 24, nowMs: START });
    expect(plan.heartbeat?.at).toBe(START + 300_000);
  });
});
