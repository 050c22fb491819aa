/** Folding a batch per item, and the watermark arithmetic of the conditional writes. */
import { describe, expect, it } from 'vitest';
import { encodeRecords } from '../../../contract/codec.js';
import {
  activityBucket,
  activityKey,
  clientIpKey,
  endpointKey,
  hostClientKey,
} from '../../../contract/table-keys.js';
import type { FlowLine, HeartbeatLine } from '../../../contract/wire.js';
import { decodeBatch } from '../../../functions/aggregate/decode-batch.js';
import { type BatchRecord, foldBatch } from '../../../functions/aggregate/fold.js';
import {
  agentGroups,
  buildUpdate,
  MAX_AGENTS_PER_WRITE,
  planWrite,
} from '../../../functions/aggregate/write-plan.js';

const T0 = 1_800_000_000_000;

function line(agentId: string, seq: number, over: Partial<FlowLine> = {}): FlowLine {
  return {
    v: 1,
    type: 'flow',
    agentId,
    seq,
    host: `h-${agentId}`,
    service: 'dns',
    source: 'hook',
    localIp: '192.0.2.1',
    localPort: 53,
    remoteIp: '198.51.100.7',
    remotePort: 4000,
    firstSeen: T0,
    lastSeen: T0 + 10,
    pktsIn: 1,
    bytesIn: 10,
    pktsOut: 2,
    bytesOut: 20,
    sampleRate: 1,
    ...over,
  };
}

const rec = (index: number, lines: FlowLine[]): BatchRecord => ({ index, lines });
const idOf = (k: { pk: string; sk: string }) => `${k.pk}\u0000${k.sk}`;

describe('foldBatch', () => {
  it('folds every line of a client into one endpoint, one IP and one host item', () => {
    const fold = foldBatch([
      rec(0, [line('a', 1), line('a', 1, { remotePort: 4001, pktsIn: 5 })]),
      rec(1, [line('a', 2, { lastSeen: T0 + 99, firstSeen: T0 - 5 })]),
    ]);
    // 2 endpoints + 1 IP + 1 host item
    expect(fold.clients.size).toBe(4);
    const ip = fold.clients.get(idOf(clientIpKey('dns', '198.51.100.7')))!;
    const plan = planWrite(ip, ['a'], {})!;
    expect(plan).toMatchObject({ pktsIn: 1 + 5 + 1, firstSeen: T0 - 5, lastSeen: T0 + 99 });
    expect(plan.watermarks).toEqual([{ agentId: 'a', minSeq: 1, maxSeq: 2 }]);
    expect([...plan.records].sort()).toEqual([0, 1]);
    expect(fold.clients.has(idOf(endpointKey('dns', '198.51.100.7', 4001)))).toBe(true);
    expect(fold.clients.has(idOf(hostClientKey('h-a', 'dns', '198.51.100.7')))).toBe(true);
    expect(fold.services.get('dns')).toMatchObject({ firstSeen: T0 - 5, lastSeen: T0 + 99 });
  });

  it('counts a payload sent twice in one batch once', () => {
    const once = foldBatch([rec(0, [line('a', 1)]), rec(1, [line('a', 2)])]);
    const twice = foldBatch([
      rec(0, [line('a', 1)]),
      rec(1, [line('a', 2)]),
      rec(2, [line('a', 2)]),
    ]);
    const key = idOf(endpointKey('dns', '198.51.100.7', 4000));
    expect(planWrite(twice.clients.get(key)!, ['a'], {})).toEqual(
      planWrite(once.clients.get(key)!, ['a'], {}),
    );
    expect(twice.duplicateRecords).toBe(1);
  });

  it('keeps only the newest heartbeat of an agent', () => {
    const hb = (seq: number, at: number): HeartbeatLine => ({
      v: 1,
      type: 'heartbeat',
      agentId: 'a',
      seq,
      host: 'h',
      at,
      flows: seq,
      dropped: 0,
      spooled: 0,
    });
    const fold = foldBatch([
      { index: 0, lines: [hb(1, T0 + 2)] },
      { index: 1, lines: [hb(2, T0 + 1)] },
    ]);
    expect(fold.agents.get('a')!.heartbeat.at).toBe(T0 + 2);
  });
});

describe('planWrite', () => {
  const fold = foldBatch([
    rec(0, [line('a', 3, { pktsIn: 1 })]),
    rec(1, [line('b', 7, { pktsIn: 10 })]),
    rec(2, [line('a', 5, { pktsIn: 100 })]),
  ]);
  const ep = fold.clients.get(idOf(endpointKey('dns', '198.51.100.7', 4000)))!;

  it('drops payloads at or below the watermark and keeps the rest', () => {
    expect(planWrite(ep, ['a', 'b'], {})!.pktsIn).toBe(111);
    const after = planWrite(ep, ['a', 'b'], { a: 3 })!;
    expect(after.pktsIn).toBe(110);
    expect(after.watermarks).toEqual([
      { agentId: 'a', minSeq: 5, maxSeq: 5 },
      { agentId: 'b', minSeq: 7, maxSeq: 7 },
    ]);
    expect([...after.records].sort()).toEqual([1, 2]);
    expect(planWrite(ep, ['a', 'b'], { a: 5, b: 9 })).toBeNull();
  });

  it('splits many agents into bounded groups', () => {
    const many = foldBatch(
      Array.from({ length: MAX_AGENTS_PER_WRITE * 2 + 1 }, (_, i) =>
        rec(i, [line(`agent-${i}`, 1)]),
      ),
    );
    const groups = agentGroups(many.clients.get(idOf(endpointKey('dns', '198.51.100.7', 4000)))!);
    expect(groups.map((g) => g.length)).toEqual([MAX_AGENTS_PER_WRITE, MAX_AGENTS_PER_WRITE, 1]);
    expect(new Set(groups.flat()).size).toBe(MAX_AGENTS_PER_WRITE * 2 + 1);
  });
});

describe('buildUpdate', () => {
  const fold = foldBatch([rec(0, [line('a', 3)]), rec(1, [line('b', 4, { lastSeen: T0 + 50 })])]);
  const ep = fold.clients.get(idOf(endpointKey('dns', '198.51.100.7', 4000)))!;
  const plan = planWrite(ep, ['a', 'b'], {})!;
  const resolve = (u: ReturnType<typeof buildUpdate>, text: string) =>
    text
      .replace(/#n\d+/g, (n) => u.ExpressionAttributeNames[n]!)
      .replace(/:v\d+/g, (v) => JSON.stringify(u.ExpressionAttributeValues[v]));

  it('conditions on every agent watermark and guards lastSeen/firstSeen without a read', () => {
    const u = buildUpdate(plan, ep.key, ep.identity, 24);
    const condition = resolve(u, u.ConditionExpression);
    expect(condition).toContain('(attribute_not_exists(applied#a) OR applied#a < 3)');
    expect(condition).toContain('(attribute_not_exists(applied#b) OR applied#b < 4)');
    expect(condition).toContain(`lastSeen <= ${T0 + 50}`);
    // firstSeen is kept when the item already has an earlier one, so a later flush passes the condition.
    expect(condition).toContain(`firstSeen <= ${T0}`);
    const update = resolve(u, u.UpdateExpression);
    expect(update).toContain(`firstSeen = if_not_exists(firstSeen, ${T0})`);
    expect(update).toContain('applied#a = 3');
    expect(update).toContain('applied#b = 4');
    expect(update).toContain(`ttl = ${Math.ceil((T0 + 50) / 1000) + 24 * 3600}`);
    expect(update).toMatch(/ADD .*pktsIn 2/);
    // The index sort key follows lastSeen, under lastSeen's own guard.
    expect(update).toContain(`activeBucket = ${activityBucket(T0 + 50)}`);
    expect(update).toContain(
      `activeKey = "${activityKey(activityBucket(T0 + 50), ep.key.pk, ep.key.sk)}"`,
    );
  });

  it('after a read, lowers firstSeen when this batch holds an earlier packet', () => {
    const u = buildUpdate(plan, ep.key, ep.identity, 24, {
      applied: {},
      lastSeen: T0 + 500,
      firstSeen: T0 + 7,
    });
    expect(resolve(u, u.UpdateExpression)).toContain(`firstSeen = ${T0},`);
    expect(resolve(u, u.ConditionExpression)).toContain(`firstSeen >= ${T0}`);
  });

  it('after a read, leaves lastSeen and ttl alone when the item is already newer', () => {
    const u = buildUpdate(plan, ep.key, ep.identity, 24, {
      applied: {},
      lastSeen: T0 + 500,
      firstSeen: T0 - 1,
    });
    const all = resolve(u, `${u.UpdateExpression} ${u.ConditionExpression}`);
    expect(all).not.toContain('lastSeen');
    expect(all).not.toContain('activeBucket');
    expect(all).not.toContain('activeKey');
    expect(all).not.toContain('ttl');
    expect(all).not.toContain('firstSeen');
    expect(all).toContain('applied#a');
  });
});

describe('decodeBatch', () => {
  it('locates bad lines, rejects undecodable records, and keeps good lines', () => {
    const good = encodeRecords([{ ...line('a', 0) } as never], {
      nextSeq: () => 1,
      gzip: false,
    })[0]!.data;
    const mixed = Buffer.from(`${good.toString().trim()}\n{"v":1,"type":"flow"}\n`);
    const record = (data: Buffer, seq: string) => ({
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: 'a/1',
        sequenceNumber: seq,
        data: data.toString('base64'),
        approximateArrivalTimestamp: 0,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `shardId-000000000001:${seq}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: '',
      awsRegion: 'us-east-1',
      eventSourceARN: '',
    });
    const out = decodeBatch([record(mixed, '1'), record(Buffer.from([0x1f, 0x8b, 9]), '2')]);
    expect(out.records).toHaveLength(1);
    expect(out.records[0]!.lines[0]!.agentId).toBe('a');
    expect(out.badLines).toEqual([
      expect.objectContaining({
        index: 0,
        sequenceNumber: '1',
        error: expect.objectContaining({ line: 2 }),
      }),
    ]);
    expect(out.badRecords).toEqual([
      expect.objectContaining({
        index: 1,
        eventId: 'shardId-000000000001:2',
        error: expect.objectContaining({ line: 0 }),
      }),
    ]);
  });
});
