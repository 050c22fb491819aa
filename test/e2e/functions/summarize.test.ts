/**
 * The summarize handler against dynalite, on block items put exactly as the
 * store's layout says: summaries equal an in-memory oracle (active endpoints
 * and IPs over the window, minute totals, one-way clients, top talkers,
 * socket health), EMF per service, a rerun that changes nothing, late marks
 * re-summarized and deleted, hourly roll-ups written once and exact, a
 * 24 h window that reads roll-ups instead of 1,440 minutes, no summary (null
 * counts in the API) for minutes before a service's first traffic, and real
 * zero summaries once a service went quiet.
 */
import { GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MINUTE_MS } from '../../../contract/block.js';
import { METRICS } from '../../../contract/resources.js';
import { SummaryItem } from '../../../contract/summary.js';
import {
  allShards,
  LATE_PK,
  lateKey,
  rollupDueKey,
  rollupPartition,
  summaryKey,
} from '../../../contract/table-keys.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { createRollupHandler } from '../../../functions/rollup/handler.js';
import { rollUpDue, rollUpHour } from '../../../functions/rollup/rollup.js';
import {
  newCost,
  readBlockParts,
  readLateMarks,
  readRollupMarks,
} from '../../../functions/store/block-reader.js';
import { createDocumentClient } from '../../../functions/store/document-client.js';
import { mergeParts } from '../../../functions/store/endpoint-merge.js';
import { putLateMark as writeLateMark } from '../../../functions/store/item-writer.js';
import { markRollupDue } from '../../../functions/store/rollup-marks.js';
import { deleteUnlessChanged as deleteLateMark } from '../../../functions/store/unchanged-delete.js';
import { createSummarizeHandler } from '../../../functions/summarize/handler.js';
import { MinuteCache } from '../../../functions/summarize/minute-cache.js';
import { lastCompleteMinute } from '../../../functions/summarize/summarize.js';
import { buildSummary, summaryWindow } from '../../../functions/summarize/summary-builder.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { oracle, type Sighting } from './activity-oracle.js';
import {
  endpoint,
  type FixtureTarget,
  putAgent,
  putLateMark,
  putPart,
  putService,
  seal,
} from './block-fixture.js';
import {
  apiEvent,
  body,
  captureStdout,
  ctx,
  emfDocuments,
  freshTable,
  localConfig,
  useLocalCredentials,
} from './harness.js';

const H = 500_000; // an epoch hour
const M0 = H * 60;

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
  const target: FixtureTarget = {
    doc: createDocumentClient({ endpoint: emu.dynamodbEndpoint }),
    table,
  };
  const sightings: Sighting[] = [];
  let seq = 1;
  const put = async (
    service: string,
    agentId: string,
    minute: number,
    eps: ReturnType<typeof endpoint>[],
    socket?: { rxQueueBytes: number; drops: number },
  ) => {
    const host = `host-${agentId}`;
    for (const p of seal(
      { agentId, host, service, minute, seq: seq++, ...(socket ? { socket } : {}) },
      eps,
    )) {
      expect(await putPart(target, p)).toBe('stored');
      for (const e of p.endpoints) sightings.push({ service, agentId, host, minute, e });
    }
  };
  const run = (now: number) =>
    captureStdout(async () =>
      createSummarizeHandler(localConfig(table, emu.dynamodbEndpoint), { now: () => now })(
        {},
        ctx('udpwatch-summarize'),
      ),
    );
  /** One handler kept across runs: a warm Lambda instance with its minute cache. */
  const instance = (cache?: MinuteCache) => {
    let at = 0;
    const handler = createSummarizeHandler(localConfig(table, emu.dynamodbEndpoint), {
      now: () => at,
      ...(cache ? { cache } : {}),
    });
    return (now: number) => {
      at = now;
      return captureStdout(() => handler({}, ctx('udpwatch-summarize')));
    };
  };
  /** The summary of minute m computed without any cache: the window's parts read and merged. */
  const uncached = async (service: string, m: number, computedAt: number) => {
    const { firstMinute } = summaryWindow(m, 300);
    const cost = newCost();
    const parts = await readBlockParts({ doc: target.doc, table }, service, firstMinute, m, cost, {
      rollups: false,
    });
    return buildSummary({
      service,
      minute: m,
      windowSeconds: 300,
      computedAt,
      parts,
      badParts: cost.badParts,
    });
  };
  const summary = async (service: string, minute: number) => {
    const out = await target.doc.send(
      new GetCommand({ TableName: table, Key: summaryKey(service, minute) }),
    );
    return out.Item ? SummaryItem.parse(out.Item) : undefined;
  };
  /** Every stored summary minute of a service. */
  const summaryMinutes = async (service: string) => {
    const out = await target.doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': summaryKey(service, 0).pk },
      }),
    );
    return (out.Items ?? []).map((i) => SummaryItem.parse(i).minute);
  };
  /** The API's services answer at `now`: service -> [activeClients, activeClientIps]. */
  const listed = async (now: number) => {
    const handler = createQueryHandler(localConfig(table, emu.dynamodbEndpoint), {
      now: () => now,
    });
    const answer = body<{ services: Record<string, unknown>[] }>(
      await handler(apiEvent('/v1/services'), ctx()),
    );
    return Object.fromEntries(
      answer.services.map((e) => [String(e.service), [e.activeClients, e.activeClientIps]]),
    );
  };
  return {
    table,
    target,
    sightings,
    put,
    run,
    instance,
    uncached,
    summary,
    summaryMinutes,
    listed,
  };
}

/** The oracle's summary counts of minute m (window 300 s). */
function expected(sightings: Sighting[], service: string, m: number) {
  const since = (m + 1) * MINUTE_MS - 300_000;
  const active = oracle(
    sightings.filter((s) => s.service === service),
    { by: 'endpoint', since, a: m - 4, b: m },
  );
  const minute = sightings.filter((s) => s.service === service && s.minute === m);
  const total = (f: 'pktsIn' | 'bytesIn' | 'pktsOut' | 'bytesOut') =>
    minute.reduce((n, s) => n + s.e[f], 0);
  const byPackets = [...active]
    .sort((a, b) => b.pktsIn + b.pktsOut - (a.pktsIn + a.pktsOut) || b.lastSeen - a.lastSeen)
    .slice(0, 10)
    .map((e) => `${e.ip}:${e.port}`);
  return {
    activeClients: active.length,
    activeClientIps: new Set(active.map((e) => e.ip)).size,
    oneWay: active.filter((e) => e.pktsIn > 0 && e.pktsOut === 0).length,
    pktsIn: total('pktsIn'),
    bytesIn: total('bytesIn'),
    pktsOut: total('pktsOut'),
    bytesOut: total('bytesOut'),
    byPackets,
  };
}

describe('summarize', () => {
  it('summarizes each service-minute exactly, publishes EMF, and a rerun changes nothing', async () => {
    const s = await setup();
    // Minutes M0+10..M0+20 of "web" from two agents; "dns" quiet since long ago.
    for (let m = 10; m <= 20; m++) {
      for (const [k, agentId] of ['a1', 'a2'].entries()) {
        const eps = Array.from({ length: 8 }, (_, i) =>
          endpoint({
            ip: `198.51.100.${((i + m) % 6) + 1}`,
            port: 1000 + i + k * 100,
            pktsIn: i * m + 1,
            bytesIn: 100 * i + m,
            pktsOut: i % 3 === 0 ? 0 : i, // one-way clients
            bytesOut: i % 3 === 0 ? 0 : 10 * i,
            firstSecond: Math.min(i, (i * 13 + m) % 60),
            lastSecond: (i * 13 + m) % 60,
          }),
        ).filter((_, i) => (i + m + k) % 3 !== 0);
        await s.put('web', agentId, M0 + m, eps, { rxQueueBytes: 1000 * k + m, drops: m + k });
      }
    }
    const now = (M0 + 23) * MINUTE_MS + 5_000;
    const m = lastCompleteMinute(now);
    expect(m).toBe(M0 + 20);
    await s.put('dns', 'a1', M0 - 600, [endpoint({ ip: '203.0.113.1', port: 53 })]);
    await putService(s.target, 'web', M0 * MINUTE_MS, (M0 + 20) * MINUTE_MS + 59_000);
    await putService(s.target, 'dns', (M0 - 600) * MINUTE_MS, (M0 - 600) * MINUTE_MS);
    await putAgent(s.target, 'a1', 'host-a1', now - 10_000, 7);
    // Not reporting, but still in AgentsDropped: leaving the sum while away
    // and joining it again on return would look like a loss (the alarm is on growth).
    await putAgent(s.target, 'a2', 'host-a2', now - 1_000_000, 500);

    const first = await s.run(now);
    const web = first.result.services.find((r) => r.service === 'web')!;
    expect(web.summarized).toEqual([m]);
    const stored = (await s.summary('web', m))!;
    const want = expected(s.sightings, 'web', m);
    expect(stored).toMatchObject({
      service: 'web',
      minute: m,
      windowSeconds: 300,
      since: (m + 1) * MINUTE_MS - 300_000,
      until: (m + 1) * MINUTE_MS,
      activeClients: want.activeClients,
      activeClientIps: want.activeClientIps,
      oneWay: want.oneWay,
      pktsIn: want.pktsIn,
      bytesIn: want.bytesIn,
      pktsOut: want.pktsOut,
      bytesOut: want.bytesOut,
      socket: { rxQueueBytes: 1020, drops: 20 + 21 },
      agents: 2,
      hosts: 2,
    });
    expect(want.oneWay).toBeGreaterThan(0);
    expect(stored.topByPackets.map((t) => `${t.ip}:${t.port}`)).toEqual(want.byPackets);
    // An idle service gets no summary, but still reports zero.
    expect(await s.summary('dns', m)).toBeUndefined();
    const emf = emfDocuments(first.lines);
    const web1 = emf.find((d) => d[METRICS.serviceDimension] === 'web')!;
    expect(web1[METRICS.activeClients]).toBe(want.activeClients);
    expect(web1[METRICS.activeClientIps]).toBe(want.activeClientIps);
    expect(web1[METRICS.oneWayClients]).toBe(want.oneWay);
    expect(web1[METRICS.socketDrops]).toBe(41);
    expect(emf.find((d) => d[METRICS.serviceDimension] === 'dns')![METRICS.activeClients]).toBe(0);
    expect(emf.find((d) => METRICS.agentsReporting in d)![METRICS.agentsReporting]).toBe(1);
    expect(emf.find((d) => METRICS.agentsDropped in d)![METRICS.agentsDropped]).toBe(507);

    const again = await s.run(now);
    expect(again.result.services.find((r) => r.service === 'web')!.summarized).toEqual([]);
    expect(again.result.services.find((r) => r.service === 'web')!.latest).toMatchObject({
      activeClients: want.activeClients,
    });

    // A block of an already summarized minute arrives late, with its mark.
    await s.put('web', 'a3', m - 1, [endpoint({ ip: '203.0.113.50', port: 7, lastSecond: 30 })]);
    await putLateMark(s.target, 'web', m - 1, now + 1000);
    // The next minute's run catches up on m+1 and re-summarizes m-1 and m (their windows hold m-1).
    const later = await s.run(now + MINUTE_MS);
    expect(later.result.services.find((r) => r.service === 'web')!.summarized).toEqual([
      m - 1,
      m,
      m + 1,
    ]);
    expect(later.result.lateMarksHandled).toBe(1);
    for (const x of [m - 1, m]) {
      expect((await s.summary('web', x))!.activeClients).toBe(
        expected(s.sightings, 'web', x).activeClients,
      );
    }
    expect((await s.summary('web', m))!.activeClients).toBe(want.activeClients + 1);
    const marks = await s.target.doc.send(
      new QueryCommand({
        TableName: s.table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': LATE_PK },
      }),
    );
    expect(marks.Items).toEqual([]);
    expect(lateKey('web', m - 1).pk).toBe(LATE_PK);
  });

  it('rolls up an hour once, exactly, and a 24 h window reads roll-ups instead of 1,440 minutes', async () => {
    const s = await setup();
    // Data in a few minutes of each of hours H-23 .. H, from three agents.
    for (let h = H - 23; h <= H; h++) {
      for (const minute of [h * 60 + 3, h * 60 + 31, h * 60 + 59]) {
        for (const agentId of ['r1', 'r2', 'r3']) {
          const eps = Array.from({ length: 5 }, (_, i) =>
            endpoint({
              ip: `198.51.100.${(i * 7 + minute * 3) % 20}`,
              port: 2000 + ((i + minute) % 4),
              pktsIn: i + 1,
              bytesIn: minute % 1000,
              firstSecond: (minute + i) % 30,
              lastSecond: 30 + ((minute + i) % 30),
            }),
          );
          await s.put('roll', agentId, minute, eps);
        }
      }
    }
    await putService(s.target, 'roll', (H - 23) * 3_600_000, (H * 60 + 59) * MINUTE_MS);
    const reader = { doc: s.target.doc, table: s.table };
    const settings = { activeWindowSeconds: 300, retentionHours: 48 };

    // The summarizer marks hour H due once its last minute is summarized; it builds nothing itself.
    const now = (H * 60 + 59 + 3) * MINUTE_MS;
    expect(lastCompleteMinute(now)).toBe(H * 60 + 59);
    const run = await s.run(now);
    expect(run.result.services.find((r) => r.service === 'roll')!.rollupsDue).toEqual([H]);
    const rolledPartition = (shard: number) =>
      s.target.doc.send(
        new QueryCommand({
          TableName: s.table,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': rollupPartition('roll', H, shard) },
        }),
      );
    for (const shard of allShards()) expect((await rolledPartition(shard)).Items).toEqual([]);
    expect((await readRollupMarks(reader, newCost())).map((m) => m.sk)).toEqual([
      rollupDueKey('roll', H).sk,
    ]);
    // The roll-up function builds it: a run whose deadline comes after one shard stops there...
    let started = 0;
    const first = await rollUpDue(reader, settings, () => started++ >= 1);
    expect(first).toMatchObject({ shardsBuilt: 1, completed: [], pending: 1 });
    const [half] = await readRollupMarks(reader, newCost());
    expect(half!.doneShards).toEqual([0]);
    // ... and the next one resumes with the other shards, then deletes the mark.
    const second = await rollUpDue(reader, settings, () => false);
    expect(second).toMatchObject({
      shardsBuilt: allShards().length - 1,
      completed: [{ service: 'roll', hour: H }],
      pending: 0,
    });
    expect(await readRollupMarks(reader, newCost())).toEqual([]);
    for (const shard of allShards()) {
      const items = await rolledPartition(shard);
      expect(items.Items!.length).toBeGreaterThan(0);
    }
    // A rerun writes nothing: every part is already stored with the same content.
    expect(await rollUpHour(reader, settings, newCost(), 'roll', H)).toBe(0);
    // A mark re-put while its hour is being built (a late block) is not deleted with the old
    // work: the run stops at the changed mark, and the next one builds every shard again.
    await markRollupDue(reader, 'roll', H, now + 1, 48);
    let checks = 0;
    const interrupted = await rollUpDue(reader, settings, async () => {
      if (++checks === 2) await markRollupDue(reader, 'roll', H, now + 2, 48);
      return false;
    });
    expect(interrupted.completed).toEqual([]);
    expect(interrupted.pending).toBe(1);
    // The deployed handler runs the same, and says how many hours are still pending.
    await markRollupDue(reader, 'roll', H - 1, now + 3, 48);
    const viaHandler = await captureStdout(() =>
      createRollupHandler(localConfig(s.table, emu.dynamodbEndpoint))({}, ctx('udpwatch-rollup')),
    );
    expect(viaHandler.result.completed).toEqual([
      { service: 'roll', hour: H - 1 },
      { service: 'roll', hour: H },
    ]);
    expect(viaHandler.result.shardsBuilt).toBe(2 * allShards().length);
    const pending = emfDocuments(viaHandler.lines).find((d) => METRICS.rollupsPending in d);
    expect(pending?.[METRICS.rollupsPending]).toBe(0);
    for (let h = H - 23; h < H; h++) await rollUpHour(reader, settings, newCost(), 'roll', h);

    // 24 h and a minute, [a, b]: hours H-23 .. H are whole and read as roll-ups, minute b as a minute.
    const b = H * 60 + 59 + 1;
    const a = b - 1440;
    const withRollups = newCost();
    const rolled = await readBlockParts(reader, 'roll', a, b, withRollups);
    const plain = newCost();
    const minutes = await readBlockParts(reader, 'roll', a, b, plain, { rollups: false });
    const key = (e: { key: string }) => e.key;
    const sortByKey = <T extends { key: string }>(xs: T[]) =>
      [...xs].sort((x, y) => (key(x) < key(y) ? -1 : 1));
    expect(sortByKey(mergeParts(rolled, { view: 'endpoint' }))).toEqual(
      sortByKey(mergeParts(minutes, { view: 'endpoint' })),
    );
    expect(mergeParts(minutes, { view: 'endpoint' }).length).toBeGreaterThan(10);
    const shards = allShards().length;
    expect(plain.queries).toBe(1441 * shards);
    expect(withRollups.rollups).toBe(24 * shards);
    expect(withRollups.queries).toBe((24 + 1) * shards);
    // Tiny parts: each read item rounds up to a unit, so units fall less than queries.
    expect(withRollups.readUnits).toBeLessThan(plain.readUnits);
  });

  it('a warm instance reads each complete minute once, re-reads late minutes, and gives the uncached summaries', async () => {
    const s = await setup();
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const randomEndpoints = () =>
      Array.from({ length: 1 + rnd(12) }, () =>
        endpoint({
          ip: `198.51.100.${1 + rnd(8)}`,
          port: 1000 + rnd(6),
          pktsIn: rnd(50),
          bytesIn: rnd(5000),
          pktsOut: rnd(3) === 0 ? 0 : rnd(20),
          bytesOut: rnd(900),
          lastSecond: 30 + rnd(30),
          firstSecond: rnd(30),
        }),
      ).filter((e, i, all) => all.findIndex((o) => o.ip === e.ip && o.port === e.port) === i);
    const agents = ['w1', 'w2', 'w3'];
    // Every agent reports every minute of M0 .. M0+20 (stored before each minute is complete).
    for (let m = 0; m <= 20; m++) {
      for (const a of agents) await s.put('web', a, M0 + m, randomEndpoints());
    }
    await putService(s.target, 'web', M0 * MINUTE_MS, (M0 + 20) * MINUTE_MS + 59_000);
    const warm = s.instance();
    const shards = allShards().length;
    const checkAgainstUncached = async (now: number, minutes: number[]) => {
      for (const x of minutes) {
        expect(await s.summary('web', x)).toEqual(await s.uncached('web', x, now));
      }
    };
    // Cold start: the whole window of the first minute is read.
    let now = (M0 + 8) * MINUTE_MS + 5_000;
    const cold = (await warm(now)).result;
    expect(cold.services[0]!.summarized).toEqual([M0 + 5]);
    expect(cold.minutes).toEqual({ read: 5, cached: 0 });
    await checkAgainstUncached(now, [M0 + 5]);
    const coldBlockUnits = cold.cost.readUnits;
    const fixedQueries = 4; // services, agents, late marks, latest summary
    expect(cold.cost.queries).toBe(fixedQueries + 5 * shards);
    let unkept: number | undefined; // the previous run's late minute, read but not kept
    for (let tick = 1; tick <= 10; tick++) {
      now += MINUTE_MS;
      const m = lastCompleteMinute(now);
      let lateMinute: number | undefined;
      if (tick % 3 === 0) {
        // A block of an already summarized minute, stored late with its mark.
        lateMinute = m - 1 - rnd(3);
        await s.put('web', `late${tick}`, lateMinute, randomEndpoints());
        await putLateMark(s.target, 'web', lateMinute, now - 1000);
      }
      const r = (await warm(now)).result;
      const web = r.services[0]!;
      expect(web.summarized[web.summarized.length - 1]).toBe(m);
      await checkAgainstUncached(now, web.summarized);
      if (lateMinute === undefined) {
        expect(web.summarized).toEqual([m]);
        if (unkept !== undefined && unkept >= m - 4) {
          // The previous run's late minute is read once more, by a consistent-enough read.
          expect(r.minutes).toEqual({ read: 2, cached: 3 });
        } else {
          // Warm: only the new minute is read; the other four come from the cache.
          expect(r.minutes).toEqual({ read: 1, cached: 4 });
          expect(r.cost.queries).toBe(fixedQueries + shards);
          expect(r.cost.readUnits).toBeLessThan(coldBlockUnits);
        }
      } else {
        // The late minute is read again (once), however many summaries it is in.
        expect(r.lateMarksHandled).toBe(1);
        expect(web.summarized[0]).toBe(lateMinute);
        expect(r.minutes.read).toBe(2);
      }
      unkept = lateMinute;
    }
    now += MINUTE_MS;
    expect((await warm(now)).result.minutes).toEqual({ read: 1, cached: 4 });
    // A cold instance at the same point reads the whole window and writes nothing new.
    const again = (await s.instance()(now)).result;
    expect(again.services[0]!.summarized).toEqual([]);
  });

  it('falls back to reading past the cache cap, logged once, with the same summaries', async () => {
    const s = await setup();
    for (let m = 0; m <= 12; m++) {
      await s.put('web', 'c1', M0 + m, [
        endpoint({ ip: '198.51.100.1', port: 1000 + m, lastSecond: 10 }),
        endpoint({ ip: '198.51.100.2', port: 2000, pktsIn: m, lastSecond: 20 }),
      ]);
    }
    await putService(s.target, 'web', M0 * MINUTE_MS, (M0 + 12) * MINUTE_MS + 59_000);
    const warm = s.instance(new MinuteCache(5)); // room for two minutes of two endpoints
    let now = (M0 + 8) * MINUTE_MS + 5_000;
    const logs: string[] = [];
    for (let tick = 0; tick < 4; tick++) {
      const { result, lines } = await warm(now);
      logs.push(...lines);
      const m = lastCompleteMinute(now);
      expect(await s.summary('web', m)).toEqual(await s.uncached('web', m, now));
      // At most two minutes fit: the others are read every run.
      expect(result.minutes.read + result.minutes.cached).toBe(5);
      expect(result.minutes.read).toBeGreaterThanOrEqual(tick === 0 ? 5 : 3);
      now += MINUTE_MS;
    }
    expect(logs.filter((l) => l.includes('minute cache full'))).toHaveLength(1);
  });

  it('a late mark re-put between the read and the conditional delete survives it', async () => {
    const s = await setup();
    const writer = { doc: s.target.doc, table: s.table, retentionHours: 24 };
    const reader = { doc: s.target.doc, table: s.table };
    const mark = { service: 'web', minute: M0, at: M0 * MINUTE_MS + 200_000, block: 'a1#1#0' };
    await writeLateMark(writer, mark);
    const [read] = await readLateMarks(reader, newCost());
    expect(read).toMatchObject({ ...mark, ...lateKey('web', M0) });
    // A later late block of the same minute re-puts the mark (another arrival, another part).
    await writeLateMark(writer, { ...mark, at: mark.at + 1, block: 'a2#1#0' });
    expect(await deleteLateMark(reader, read!)).toBe(false);
    const [kept] = await readLateMarks(reader, newCost());
    expect(kept).toMatchObject({ at: mark.at + 1, block: 'a2#1#0' });
    // Same arrival, another part: still a different mark.
    await writeLateMark(writer, { ...mark, at: mark.at + 1, block: 'a3#1#0' });
    expect(await deleteLateMark(reader, kept!)).toBe(false);
    // Unchanged since read: deleted.
    const [last] = await readLateMarks(reader, newCost());
    expect(await deleteLateMark(reader, last!)).toBe(true);
    expect(await readLateMarks(reader, newCost())).toEqual([]);
  });

  it('writes no summary before a service was first seen, and real zeros once it went quiet', async () => {
    const s = await setup();
    const at = (m: number, second: number) => (M0 + m) * MINUTE_MS + second * 1000;
    const runAt = (m: number) => at(m + 3, 5); // lastCompleteMinute(runAt(m)) = M0 + m
    const summarized = (r: Awaited<ReturnType<typeof s.run>>, service: string) =>
      r.result.services.find((x) => x.service === service)!.summarized;
    const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => M0 + a + i);
    const countsOf = (m: number, service: string) => {
      const want = expected(s.sightings, service, m);
      return { activeClients: want.activeClients, activeClientIps: want.activeClientIps };
    };
    // "quiet": traffic in minutes M0 and M0+1 only.
    for (const m of [0, 1]) {
      await s.put('quiet', 'q1', M0 + m, [
        endpoint({ ip: '198.51.100.1', port: 100 + m, firstSecond: 5, lastSecond: 40 + m }),
        endpoint({ ip: '198.51.100.2', port: 200, firstSecond: 6, lastSecond: 50 }),
      ]);
    }
    await putService(s.target, 'quiet', at(0, 5), at(1, 50));
    // "fresh": first traffic at second 2 of minute M0+4, as the runs of a fresh start see it.
    const B = 4;
    const freshEndpoints = (m: number) =>
      [1, 2, 3].map((i) =>
        endpoint({ ip: `203.0.113.${i}`, port: 5000 + m, firstSecond: 2, lastSecond: 2 + i }),
      );
    await s.put('fresh', 'f1', M0 + B, freshEndpoints(B));
    await putService(s.target, 'fresh', at(B, 2), at(B, 5));

    // Minutes before fresh's first traffic: nothing written, so the API says "not counted yet".
    const r1 = await s.run(runAt(1));
    expect(summarized(r1, 'quiet')).toEqual([M0 + 1]);
    expect(summarized(r1, 'fresh')).toEqual([]);
    expect(r1.result.services.find((x) => x.service === 'fresh')!.latest).toBeNull();
    const r2 = await s.run(runAt(3));
    expect(summarized(r2, 'quiet')).toEqual(range(2, 3));
    expect(summarized(r2, 'fresh')).toEqual([]);
    expect(await s.summaryMinutes('fresh')).toEqual([]);
    const quiet3 = countsOf(M0 + 3, 'quiet');
    expect(quiet3.activeClients).toBeGreaterThan(0);
    expect(await s.listed(runAt(3))).toEqual({
      fresh: [null, null],
      quiet: [quiet3.activeClients, quiet3.activeClientIps],
    });

    // Its first minute is a real count.
    const r3 = await s.run(runAt(B));
    expect(summarized(r3, 'fresh')).toEqual([M0 + B]);
    expect(await s.summary('fresh', M0 + B)).toMatchObject(countsOf(M0 + B, 'fresh'));
    expect(countsOf(M0 + B, 'fresh').activeClients).toBe(3);
    expect((await s.listed(runAt(B))).fresh).toEqual([3, 3]);

    // Ten minutes later: each catches up on at most ten minutes; quiet's empty windows are real zeros.
    await s.put('fresh', 'f1', M0 + B + 1, freshEndpoints(B + 1));
    await putService(s.target, 'fresh', at(B, 2), at(B + 1, 5));
    const r4 = await s.run(runAt(15));
    expect(summarized(r4, 'fresh')).toEqual(range(6, 15));
    expect(summarized(r4, 'quiet')).toEqual(expect.arrayContaining(range(6, 8)));
    expect(await s.summary('quiet', M0 + 5)).toBeUndefined(); // beyond the catch-up bound
    for (const m of range(6, 8)) {
      expect(await s.summary('quiet', m)).toMatchObject({ activeClients: 0, activeClientIps: 0 });
    }
    expect(await s.listed(runAt(15))).toEqual({ fresh: [0, 0], quiet: [0, 0] });
    for (const m of range(6, 15)) {
      expect(await s.summary('fresh', m)).toMatchObject(countsOf(m, 'fresh'));
    }

    // A late block of a minute before fresh's firstSeen is counted: its minute has data now.
    await s.put('fresh', 'f2', M0 + B - 1, [
      endpoint({ ip: '203.0.113.9', port: 9, firstSecond: 30, lastSecond: 31 }),
    ]);
    await putLateMark(s.target, 'fresh', M0 + B - 1, runAt(15) + 1000);
    const r5 = await s.run(runAt(16));
    // (M0+16 is idle like M0+15 before it: no new zero.)
    expect(summarized(r5, 'fresh')).toEqual(range(B - 1, B + 3));
    expect(r5.result.lateMarksHandled).toBe(1);
    for (const m of range(B - 1, B + 3)) {
      expect(await s.summary('fresh', m)).toMatchObject(countsOf(m, 'fresh'));
    }
    expect((await s.summary('fresh', M0 + B - 1))!.activeClients).toBe(1);
    expect((await s.summary('fresh', M0 + B))!.activeClients).toBe(4);
    // Still nothing for the minutes before any of its parts.
    expect((await s.summaryMinutes('fresh'))[0]).toBe(M0 + B - 1);
  });
});
