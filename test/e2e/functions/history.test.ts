/**
 * GET /v1/services/{service}/history and GET /v1/alarms through the real
 * handlers against dynalite: the summarize handler keeps each summary's
 * counts in its hour's counts item (across an hour boundary, and again when a
 * late block changes a minute), the query handler answers exactly the minutes
 * the summaries hold with one Query of half a read unit, and local mode's
 * alarms, fed the real count route's answer, show a breached bound.
 */
import { GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlarmsResponse, HistoryResponse } from '../../../contract/api-schemas.js';
import { MINUTE_MS } from '../../../contract/block.js';
import { SummaryItem } from '../../../contract/summary.js';
import { countsKey, summaryKey } from '../../../contract/table-keys.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { newCost } from '../../../functions/store/block-reader.js';
import { readCountHours } from '../../../functions/store/counts-reader.js';
import { createDocumentClient } from '../../../functions/store/document-client.js';
import { createSummarizeHandler } from '../../../functions/summarize/handler.js';
import { putMinuteCounts } from '../../../functions/summarize/minute-counts-writer.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { LocalAlarms, localAlarmSource } from '../../../local/local-alarms.js';
import { endpoint, putLateMark, putPart, putService, seal } from './block-fixture.js';
import {
  apiEvent,
  body,
  captureStdout,
  ctx,
  freshTable,
  localConfig,
  useLocalCredentials,
} from './harness.js';

const H = 500_000; // an epoch hour
const M0 = H * 60;
/** The run at `now` summarizes minute `now / 60 s - 3` (the summaries' lag). */
const runAt = (m: number) => (m + 3) * MINUTE_MS + 5_000;

let emu: Emulators;

beforeAll(async () => {
  useLocalCredentials();
  emu = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
});

afterAll(async () => {
  await emu?.stop();
});

async function setup() {
  const table = await freshTable(emu.dynamodb);
  const doc = createDocumentClient({ endpoint: emu.dynamodbEndpoint });
  const target = { doc, table };
  const config = localConfig(table, emu.dynamodbEndpoint);
  let seq = 1;
  /** `n` endpoints of "web" in minute m from 198.51.100.1..(n % 5 + 1), seen at second 30. */
  const put = async (m: number, n: number, agentId = 'a1') => {
    const eps = Array.from({ length: n }, (_, i) =>
      endpoint({ ip: `198.51.100.${(i % 5) + 1}`, port: 2000 + i, lastSecond: 30 }),
    );
    for (const p of seal(
      { agentId, host: `host-${agentId}`, service: 'web', minute: m, seq: seq++ },
      eps,
    ))
      expect(await putPart(target, p)).toBe('stored');
  };
  const summarize = (now: number) =>
    captureStdout(() =>
      createSummarizeHandler(config, { now: () => now })({}, ctx('udpwatch-summarize')),
    );
  const query = (now: number, alarms?: LocalAlarms) =>
    createQueryHandler(config, {
      now: () => now,
      ...(alarms ? { alarms: localAlarmSource(alarms) } : {}),
    });
  const summary = async (m: number) => {
    const out = await doc.send(new GetCommand({ TableName: table, Key: summaryKey('web', m) }));
    return out.Item ? SummaryItem.parse(out.Item) : undefined;
  };
  return { table, doc, target, config, put, summarize, query, summary };
}

describe('GET /v1/services/{service}/history', () => {
  it('answers the minutes the summaries hold, across an hour boundary, with one small Query', async () => {
    const s = await setup();
    const first = M0 - 6;
    const last = M0 + 5;
    // Growing traffic: minute first + k has k + 2 endpoints.
    for (let m = first; m <= last; m++) await s.put(m, m - first + 2);
    await putService(s.target, 'web', first * MINUTE_MS, last * MINUTE_MS + 30_000);
    for (let m = first; m <= last; m++) {
      const run = await s.summarize(runAt(m));
      expect(run.result.services.find((r) => r.service === 'web')!.summarized).toEqual([m]);
    }
    const now = (last + 1) * MINUTE_MS + 10_000;
    const answer = body<HistoryResponse>(
      await s.query(now)(apiEvent('/v1/services/web/history', { minutes: '30' }), ctx()),
    );
    expect(answer).toMatchObject({
      service: 'web',
      minutes: 30,
      from: (last - 29) * MINUTE_MS,
      until: (last + 1) * MINUTE_MS,
      skipped: 0,
    });
    const want = [];
    for (let m = first; m <= last; m++) {
      const stored = (await s.summary(m))!;
      want.push({
        minute: m,
        at: (m + 1) * MINUTE_MS,
        endpoints: stored.activeClients,
        ips: stored.activeClientIps,
      });
    }
    expect(answer.points).toEqual(want);
    // Real counts, not a copy of one: the window grows with the traffic.
    expect(want[0]!.endpoints).toBe(2);
    expect(want.at(-1)!.endpoints).toBe(13);
    expect(want.at(-1)!.ips).toBe(5);

    // A shorter history leaves the older minutes out.
    const short = body<HistoryResponse>(
      await s.query(now)(apiEvent('/v1/services/web/history', { minutes: '3' }), ctx()),
    );
    expect(short.points.map((p) => p.minute)).toEqual([last - 2, last - 1, last]);

    // The read: both hours in one Query, under 4 KB together: half a unit.
    const cost = newCost();
    const items = await readCountHours({ doc: s.doc, table: s.table }, 'web', H - 1, H, cost);
    expect(items.map((i) => i.sk)).toEqual([countsKey('web', H - 1).sk, countsKey('web', H).sk]);
    expect(cost).toMatchObject({ queries: 1, readUnits: 0.5 });
    // An unknown service answers no points, not an error.
    const none = body<HistoryResponse>(
      await s.query(now)(apiEvent('/v1/services/nope/history'), ctx()),
    );
    expect(none.points).toEqual([]);
  });

  it('follows a late block: the re-summarized minute answers its new counts', async () => {
    const s = await setup();
    for (let m = M0 + 10; m <= M0 + 12; m++) await s.put(m, 3);
    await putService(s.target, 'web', (M0 + 10) * MINUTE_MS, (M0 + 12) * MINUTE_MS + 30_000);
    for (let m = M0 + 10; m <= M0 + 12; m++) await s.summarize(runAt(m));
    const history = async (now: number) =>
      body<HistoryResponse>(await s.query(now)(apiEvent('/v1/services/web/history'), ctx())).points;
    const before = await history((M0 + 13) * MINUTE_MS);
    expect(before.map((p) => [p.minute, p.endpoints])).toEqual([
      [M0 + 10, 3],
      [M0 + 11, 3],
      [M0 + 12, 3],
    ]);
    // Five more endpoints of minute M0+11 from another agent, stored late with their mark.
    const eps = Array.from({ length: 5 }, (_, i) =>
      endpoint({ ip: '203.0.113.9', port: 4000 + i, lastSecond: 40 }),
    );
    for (const p of seal(
      { agentId: 'late', host: 'h', service: 'web', minute: M0 + 11, seq: 1 },
      eps,
    ))
      await putPart(s.target, p);
    await putLateMark(s.target, 'web', M0 + 11, runAt(M0 + 12) + 1000);
    await s.summarize(runAt(M0 + 13));
    const after = await history((M0 + 14) * MINUTE_MS);
    expect(after.find((p) => p.minute === M0 + 11)).toMatchObject({ endpoints: 8, ips: 4 });
    expect(after.find((p) => p.minute === M0 + 12)).toMatchObject({ endpoints: 8, ips: 4 });
    expect(after.find((p) => p.minute === M0 + 11)!.endpoints).toBe(
      (await s.summary(M0 + 11))!.activeClients,
    );
  });

  it('keeps a full hour of a big service under 1 KB: one write unit a minute', async () => {
    const s = await setup();
    let units = 0;
    for (let m = M0; m < M0 + 60; m++) {
      units = await putMinuteCounts(
        { doc: s.doc, table: s.table },
        {
          service: 'a-service-name-of-forty-characters-long',
          minute: m,
          activeClients: 1_000_000,
          activeClientIps: 250_000,
        },
        24,
      );
    }
    expect(units).toBe(1);
    const out = await s.doc.send(
      new QueryCommand({
        TableName: s.table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: {
          ':pk': countsKey('a-service-name-of-forty-characters-long', H).pk,
        },
      }),
    );
    expect(Object.keys(out.Items![0]!).filter((k) => /^m\d\d$/.test(k))).toHaveLength(60);
  });
});

describe('GET /v1/alarms in local mode', () => {
  it('shows a breached minimum as ALARM, fed the count route of the same handler', async () => {
    const s = await setup();
    const now = (M0 + 20) * MINUTE_MS + 40_000;
    await s.put(M0 + 20, 3);
    await putService(s.target, 'web', (M0 + 20) * MINUTE_MS, (M0 + 20) * MINUTE_MS + 30_000);
    const alarms = new LocalAlarms({
      web: { min: 5, max: 100, evaluationPeriods: 1 },
      dns: { minIps: 1 },
    });
    const handler = s.query(now, alarms);
    const count = body<{ endpoints: number; ips: number }>(
      await handler(apiEvent('/v1/services/web/count'), ctx()),
    );
    expect(count.endpoints).toBe(3);
    alarms.evaluate(new Map([['web', count]]), now);
    const all = body<AlarmsResponse>(await handler(apiEvent('/v1/alarms'), ctx()));
    expect(all.source).toBe('local');
    expect(all.alarms.map((a) => [a.service, a.bound, a.state])).toEqual([
      ['web', 'min', 'ALARM'],
      // No answer for dns: breaching for a minimum, but 1 of the default 5 periods is not enough.
      ['dns', 'min', 'OK'],
      ['web', 'max', 'OK'],
    ]);
    expect(all.alarms[0]).toMatchObject({
      name: 'udpwatch-local-web-ActiveClients-below-5',
      metric: 'ActiveClients',
      threshold: 5,
      changedAt: now,
    });
    expect(all.alarms[0]!.reason).toContain('ActiveClients = 3');
    expect(all.alarms[2]!.reason).toContain('ActiveClients = 3, max 100');
    const web = body<AlarmsResponse>(
      await handler(apiEvent('/v1/alarms', { service: 'web' }), ctx()),
    );
    expect(web.alarms.map((a) => a.service)).toEqual(['web', 'web']);
  });
});
