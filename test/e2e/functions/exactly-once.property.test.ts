/**
 * Property: whatever the delivery does — agents re-sending payloads, Lambda
 * retrying failed tails, replaying from an earlier checkpoint, crashing mid
 * batch, shards processed in any interleaving (order kept per shard) — the
 * table ends equal to an oracle computed from the unique lines in memory.
 */
import { fc, test } from '@fast-check/vitest';
import type { KinesisStreamBatchResponse, KinesisStreamRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { createAggregateHandler } from '../../../functions/aggregate/handler.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { type FaultProxy, type FaultRule, startFaultProxy } from '../../../local/fault-proxy.js';
import {
  AgentSeq,
  agentRecords,
  apiEvent,
  body,
  ctx,
  type FlowInput,
  flow,
  freshTable,
  localConfig,
  throughKinesis,
  useLocalCredentials,
} from './harness.js';

const T0 = 1_800_000_000_000;
const NOW = T0 + 200_000;
const SERVICES = ['svc-a', 'svc-b'];
const IPS = ['198.51.100.1', '198.51.100.2', '203.0.113.9', '2001:db8::7'];

let emu: Emulators;
let proxy: FaultProxy;

beforeAll(async () => {
  useLocalCredentials();
  emu = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  proxy = await startFaultProxy({ target: emu.dynamodbEndpoint });
});

afterAll(async () => {
  await proxy?.stop();
  await emu?.stop();
});

const lineArb = fc.record({
  service: fc.constantFrom(...SERVICES),
  ip: fc.constantFrom(...IPS),
  port: fc.constantFrom(53, 40000, 40001),
  first: fc.integer({ min: 0, max: 100_000 }),
  span: fc.integer({ min: 0, max: 50_000 }),
  pktsIn: fc.integer({ min: 0, max: 1000 }),
  bytesIn: fc.integer({ min: 0, max: 100_000 }),
  pktsOut: fc.integer({ min: 0, max: 1000 }),
  bytesOut: fc.integer({ min: 0, max: 100_000 }),
  source: fc.constantFrom('hook' as const, 'conntrack' as const),
});
/** agents -> flushes -> lines */
const flowsArb = fc.array(
  fc.array(fc.array(lineArb, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 3 }),
  {
    minLength: 1,
    maxLength: 3,
  },
);
const stepArb = fc.record({
  shard: fc.integer({ min: 0, max: 1 }),
  size: fc.integer({ min: 1, max: 8 }),
  fault: fc.constantFrom('none', 'none', 'throttle', 'crash', 'ackLost', 'replay'),
  skip: fc.integer({ min: 0, max: 12 }),
  back: fc.integer({ min: 1, max: 4 }),
});
const deliveryArb = fc.record({
  /** Per record: whether the agent sent it twice (put succeeded, answer lost). */
  resend: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
  steps: fc.array(stepArb, { minLength: 0, maxLength: 14 }),
});

interface Expected {
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
  firstSeen: number;
  lastSeen: number;
  hosts: string[];
}

function oracle(lines: FlowInput[], key: (l: FlowInput) => string): Map<string, Expected> {
  const m = new Map<string, Expected>();
  for (const l of lines) {
    const k = key(l);
    const e = m.get(k) ?? {
      pktsIn: 0,
      bytesIn: 0,
      pktsOut: 0,
      bytesOut: 0,
      firstSeen: Number.POSITIVE_INFINITY,
      lastSeen: 0,
      hosts: [],
    };
    e.pktsIn += l.pktsIn;
    e.bytesIn += l.bytesIn;
    e.pktsOut += l.pktsOut;
    e.bytesOut += l.bytesOut;
    e.firstSeen = Math.min(e.firstSeen, l.firstSeen);
    e.lastSeen = Math.max(e.lastSeen, l.lastSeen);
    if (!e.hosts.includes(l.host)) e.hosts = [...e.hosts, l.host].sort();
    m.set(k, e);
  }
  return m;
}

async function table(
  query: ReturnType<typeof createQueryHandler>,
  service: string,
  by: 'endpoint' | 'ip',
): Promise<Map<string, Expected>> {
  const res = await query(
    apiEvent(`/v1/services/${service}/clients`, { by, window: '3600', limit: '1000' }),
    ctx(),
  );
  const clients = body<{ clients: Record<string, unknown>[] }>(res).clients;
  return new Map(
    clients.map((c) => [
      by === 'endpoint' ? String(c.endpoint) : String(c.ip),
      {
        pktsIn: c.pktsIn as number,
        bytesIn: c.bytesIn as number,
        pktsOut: c.pktsOut as number,
        bytesOut: c.bytesOut as number,
        firstSeen: c.firstSeen as number,
        lastSeen: c.lastSeen as number,
        hosts: c.hosts as string[],
      },
    ]),
  );
}

const endpointOf = (l: FlowInput) =>
  l.remoteIp.includes(':') ? `[${l.remoteIp}]:${l.remotePort}` : `${l.remoteIp}:${l.remotePort}`;

describe('exactly-once aggregation', () => {
  test.prop([flowsArb, deliveryArb], { numRuns: 25 })(
    'random flows, duplicates, retries, replays and crashes leave the table equal to the oracle',
    async (flows, delivery) => {
      const tableName = await freshTable(emu.dynamodb);
      const aggregate = createAggregateHandler(localConfig(tableName, emu.dynamodbEndpoint));
      const faulty = createAggregateHandler(localConfig(tableName, proxy.url), { maxAttempts: 1 });
      const query = createQueryHandler(localConfig(tableName, emu.dynamodbEndpoint), {
        now: () => NOW,
      });

      const unique: FlowInput[] = [];
      const puts: { partitionKey: string; data: Buffer }[] = [];
      flows.forEach((agentFlushes, a) => {
        const agentId = `agent-${a}`;
        const seq = new AgentSeq();
        for (const flush of agentFlushes) {
          const lines = flush.map((l) =>
            flow({
              agentId,
              host: `host-${a}`,
              service: l.service,
              remoteIp: l.ip,
              remotePort: l.port,
              source: l.source,
              firstSeen: T0 + l.first,
              lastSeen: T0 + l.first + l.span,
              pktsIn: l.pktsIn,
              bytesIn: l.bytesIn,
              pktsOut: l.pktsOut,
              bytesOut: l.bytesOut,
            }),
          );
          unique.push(...lines);
          for (const r of agentRecords(agentId, lines, seq)) {
            puts.push(r);
            // The agent did not hear back and sent the same payload again, before anything later on its key.
            if (delivery.resend[puts.length % delivery.resend.length]) puts.push(r);
          }
        }
      });
      const shards: KinesisStreamRecord[][] = (await throughKinesis(emu.kinesis, puts)).map(
        (e) => e.Records,
      );
      while (shards.length < 2) shards.push([]);
      const done = [0, 0];

      const invoke = async (shard: number, size: number, rules: FaultRule[] | null) => {
        const records = shards[shard]!.slice(done[shard]!, done[shard]! + size);
        if (records.length === 0) return;
        let res: KinesisStreamBatchResponse | undefined;
        if (rules) {
          proxy.setFaults(rules);
          res = (await faulty({ Records: records }, ctx()).catch(() => undefined)) as
            | KinesisStreamBatchResponse
            | undefined;
          proxy.clear();
        } else {
          res = (await aggregate({ Records: records }, ctx())) as KinesisStreamBatchResponse;
        }
        if (!res) return; // crashed: the whole batch is retried
        const failed = res.batchItemFailures[0]?.itemIdentifier;
        const firstFailed =
          failed === undefined
            ? records.length
            : records.findIndex((r) => r.kinesis.sequenceNumber === failed);
        expect(firstFailed).toBeGreaterThanOrEqual(0);
        done[shard]! += firstFailed;
      };

      for (const step of delivery.steps) {
        const update: FaultRule = {
          operation: 'UpdateItem',
          kind: 'throttle',
          skip: step.skip,
          count: 2,
        };
        if (step.fault === 'replay') {
          // The mapping re-reads from an earlier checkpoint.
          done[step.shard] = Math.max(0, done[step.shard]! - step.back);
          await invoke(step.shard, step.size, null);
        } else if (step.fault === 'throttle') await invoke(step.shard, step.size, [update]);
        else if (step.fault === 'crash') {
          await invoke(step.shard, step.size, [
            { operation: 'UpdateItem', kind: 'reset', skip: step.skip },
          ]);
        } else if (step.fault === 'ackLost') {
          await invoke(step.shard, step.size, [
            { operation: 'UpdateItem', kind: 'reset', phase: 'after', skip: step.skip, count: 1 },
          ]);
        } else await invoke(step.shard, step.size, null);
      }
      // Then the mapping catches up without faults.
      for (const shard of [0, 1]) {
        for (let i = 0; i < 100 && done[shard]! < shards[shard]!.length; i++)
          await invoke(shard, 1000, null);
        expect(done[shard]).toBe(shards[shard]!.length);
      }

      for (const service of SERVICES) {
        const mine = unique.filter((l) => l.service === service);
        expect(await table(query, service, 'endpoint')).toEqual(oracle(mine, endpointOf));
        expect(await table(query, service, 'ip')).toEqual(oracle(mine, (l) => l.remoteIp));
      }
    },
  );
});
