/**
 * Property: whatever the delivery does — an agent's parts re-sent, a batch
 * replayed, parts stored in any order, some many times — the answers
 * (clients by endpoint and by IP, count, the summary's counts and top
 * talkers) equal an oracle computed in memory from the unique parts.
 *
 * Parts go through the real aggregate handler as v2 Kinesis records, in
 * batches of random size, some batches delivered twice (a Lambda retry or a
 * replay from an earlier checkpoint).
 */
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { type Block, MINUTE_MS } from '../../../contract/block.js';
import { encodeBlock } from '../../../contract/block-codec.js';
import { createAggregateHandler } from '../../../functions/aggregate/handler.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { createDocumentClient } from '../../../functions/store/document-client.js';
import { createSummarizeHandler } from '../../../functions/summarize/handler.js';
import { lastCompleteMinute } from '../../../functions/summarize/summarize.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { comparable, oracle, type Sighting } from './activity-oracle.js';
import { endpoint, putService, seal } from './block-fixture.js';
import {
  apiEvent,
  body,
  captureStdout,
  ctx,
  freshTable,
  localConfig,
  rawRecord,
  useLocalCredentials,
} from './harness.js';

const M0 = 30_000_000;
/** The summarizer's last complete minute is M0 + 9; queries end mid-minute M0 + 12. */
const NOW = (M0 + 12) * MINUTE_MS + 30_000;
const SERVICES = ['svc-a', 'svc-b'];
const IPS = ['198.51.100.1', '198.51.100.2', '203.0.113.9', '2001:db8::7'];

let emu: Emulators;

beforeAll(async () => {
  useLocalCredentials();
  emu = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
});

afterAll(async () => {
  await emu?.stop();
});

const endpointArb = fc
  .record({
    ip: fc.constantFrom(...IPS),
    port: fc.constantFrom(53, 40000, 40001),
    first: fc.integer({ min: 0, max: 59 }),
    last: fc.integer({ min: 0, max: 59 }),
    pktsIn: fc.integer({ min: 0, max: 1000 }),
    bytesIn: fc.integer({ min: 0, max: 100_000 }),
    pktsOut: fc.integer({ min: 0, max: 1000 }),
    bytesOut: fc.integer({ min: 0, max: 100_000 }),
    source: fc.constantFrom('hook' as const, 'conntrack' as const),
  })
  .map((r) =>
    endpoint({
      ip: r.ip,
      port: r.port,
      firstSecond: Math.min(r.first, r.last),
      lastSecond: Math.max(r.first, r.last),
      pktsIn: r.pktsIn,
      bytesIn: r.bytesIn,
      pktsOut: r.pktsOut,
      bytesOut: r.bytesOut,
      source: r.source,
    }),
  );

/** One sealed block of an agent: service, minute offset, endpoints. */
const blockArb = fc.record({
  agent: fc.integer({ min: 0, max: 3 }),
  service: fc.constantFrom(...SERVICES),
  minute: fc.integer({ min: 0, max: 12 }),
  endpoints: fc.array(endpointArb, { minLength: 1, maxLength: 6 }),
});

/** How delivery repeats things: extra copies of some parts, then a shuffled order. */
const fleetArb = fc.record({
  blocks: fc.array(blockArb, { minLength: 1, maxLength: 12 }),
  copies: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 12, maxLength: 12 }),
  order: fc.array(fc.nat(), { minLength: 60, maxLength: 60 }),
  batch: fc.integer({ min: 1, max: 8 }),
  replays: fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }),
});

async function answer(q: ReturnType<typeof createQueryHandler>, path: string, query = {}) {
  const res = await q(apiEvent(path, query), ctx());
  expect(res.statusCode, String(res.body)).toBe(200);
  return body<Record<string, unknown>>(res);
}

async function allClients(q: ReturnType<typeof createQueryHandler>, service: string, by: string) {
  const out: Record<string, unknown>[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 100; i++) {
    const b = await answer(q, `/v1/services/${service}/clients`, {
      by,
      limit: '3',
      ...(cursor ? { cursor } : {}),
    });
    out.push(...(b.clients as Record<string, unknown>[]));
    cursor = b.nextCursor as string | null;
    if (!cursor) break;
  }
  return out;
}

describe('exactly once on the block store', () => {
  test.prop([fleetArb], { numRuns: 12 })(
    'duplicated, replayed and reordered parts leave answers equal to the oracle',
    async ({ blocks, copies, order, batch, replays }) => {
      const table = await freshTable(emu.dynamodb);
      const target = { doc: createDocumentClient({ endpoint: emu.dynamodbEndpoint }), table };
      // Each block gets its agent's next seq; a block's parts are stored once
      // in the oracle and any number of times in the table.
      const seqs = [1, 1, 1, 1];
      const unique: Block[] = [];
      for (const b of blocks) {
        const agentId = `agent-${b.agent}`;
        unique.push(
          ...seal(
            {
              agentId,
              host: `host-${b.agent % 2}`,
              service: b.service,
              minute: M0 + b.minute,
              seq: seqs[b.agent]!++,
            },
            b.endpoints,
          ),
        );
      }
      const deliveries = unique.flatMap((p, i) =>
        Array.from({ length: 1 + copies[i % 12]! }, () => p),
      );
      // A deterministic shuffle from the generated order.
      const shuffled = deliveries
        .map((p, i) => ({ p, k: order[i % order.length]! * 1000 + i }))
        .sort((x, y) => x.k - y.k)
        .map((x) => x.p);
      // Re-sealing the same content gives the same bytes: a re-send is no conflict.
      const config = localConfig(table, emu.dynamodbEndpoint);
      const aggregate = createAggregateHandler(config);
      let sequence = 1000;
      for (let i = 0, n = 0; i < shuffled.length; i += batch, n++) {
        const records = shuffled
          .slice(i, i + batch)
          // Each arrives as an agent sends it: just after its minute ends.
          .map((p) =>
            rawRecord(
              encodeBlock(p),
              String(sequence++),
              `${p.agentId}/0`,
              (p.minute + 1) * MINUTE_MS + 5_000,
            ),
          );
        for (let d = 0; d < (replays[n % replays.length] ? 2 : 1); d++) {
          const res = await captureStdout(() => aggregate({ Records: records }, ctx()));
          expect(res.result).toEqual({ batchItemFailures: [] });
        }
      }
      // The listed lastSeen is what the aggregate wrote; pin it so summaries do not skip a service.
      for (const s of SERVICES) await putService(target, s, M0 * MINUTE_MS, NOW);

      const sightings: Sighting[] = unique.flatMap((p) =>
        p.endpoints.map((e) => ({
          service: p.service,
          agentId: p.agentId,
          host: p.host,
          minute: p.minute,
          e,
        })),
      );
      const q = createQueryHandler(config, { now: () => NOW });
      const since = Math.floor((NOW - 300_000) / 1000) * 1000;
      const win = { since, a: Math.floor(since / MINUTE_MS), b: M0 + 12 };
      for (const service of SERVICES) {
        const mine = sightings.filter((s) => s.service === service);
        const endpoints = oracle(mine, { by: 'endpoint', ...win });
        const ips = oracle(mine, { by: 'ip', ...win });
        expect((await allClients(q, service, 'endpoint')).map(comparable)).toEqual(endpoints);
        expect((await allClients(q, service, 'ip')).map(comparable)).toEqual(ips);
        expect(await answer(q, `/v1/services/${service}/count`)).toMatchObject({
          endpoints: endpoints.length,
          ips: ips.length,
        });
      }

      // The summary of the last complete minute: counts and top talkers.
      // EMF goes to stdout: captured to keep the output readable.
      await captureStdout(() =>
        createSummarizeHandler(config, { now: () => NOW })({}, ctx('udpwatch-summarize')),
      );
      const m = lastCompleteMinute(NOW);
      const services = (await answer(q, '/v1/services')).services as Record<string, unknown>[];
      for (const service of SERVICES) {
        const mine = sightings.filter((s) => s.service === service);
        const sSince = (m + 1) * MINUTE_MS - 300_000;
        const active = oracle(mine, { by: 'endpoint', since: sSince, a: m - 4, b: m });
        const entry = services.find((s) => s.service === service)!;
        expect(entry.activeClients).toBe(active.length);
        expect(entry.activeClientIps).toBe(new Set(active.map((e) => e.ip)).size);
        const summary = entry.summary as {
          topByPackets: { ip: string; port: number; pktsIn: number }[];
        };
        const top = [...active]
          .sort((x, y) => y.pktsIn + y.pktsOut - (x.pktsIn + x.pktsOut) || y.lastSeen - x.lastSeen)
          .slice(0, 10);
        // Totals of the top talkers (ties may order differently only among equal sizes and times).
        expect(
          summary.topByPackets.map((t) => t.pktsIn + (t as unknown as { pktsOut: number }).pktsOut),
        ).toEqual(top.map((e) => e.pktsIn + e.pktsOut));
        for (const t of summary.topByPackets) {
          const o = active.find((e) => e.ip === t.ip && e.port === t.port)!;
          expect(t.pktsIn).toBe(o.pktsIn);
        }
      }
    },
  );
});
