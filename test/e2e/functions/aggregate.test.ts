/**
 * The aggregate handler against kinesalite and dynalite: real agent-format
 * records become the right items and answers, exactly once, also across
 * replays, duplicate sends, throttling, a crash mid-batch and bad input.
 */
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { METRICS } from '../../../contract/resources.js';
import { AGGREGATE_METRICS } from '../../../functions/aggregate/aggregate.js';
import { createAggregateHandler } from '../../../functions/aggregate/handler.js';
import { SERVICE_REFRESH_MS } from '../../../functions/aggregate/service-refresh.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { type FaultProxy, startFaultProxy } from '../../../local/fault-proxy.js';
import {
  AgentSeq,
  agentRecords,
  apiEvent,
  body,
  captureStdout,
  ctx,
  emfDocuments,
  type FlowInput,
  flow,
  freshTable,
  localConfig,
  rawRecord,
  throughKinesis,
  useLocalCredentials,
} from './harness.js';

const T0 = 1_800_000_000_000;
const NOW = T0 + 60_000;

let emu: Emulators;
let proxy: FaultProxy;
let aggregate: ReturnType<typeof createAggregateHandler>;
let faulty: ReturnType<typeof createAggregateHandler>;
let query: ReturnType<typeof createQueryHandler>;

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
  const tableName = await freshTable(emu.dynamodb);
  aggregate = createAggregateHandler(localConfig(tableName, emu.dynamodbEndpoint));
  // Through the proxy, with no SDK retries, so each injected fault reaches the handler.
  faulty = createAggregateHandler(localConfig(tableName, proxy.url), { maxAttempts: 1 });
  query = createQueryHandler(localConfig(tableName, emu.dynamodbEndpoint), { now: () => NOW });
});

/** The per-shard events a mapping would deliver for these agents' lines. */
async function deliverable(
  batches: { agentId: string; lines: FlowInput[]; seq: AgentSeq }[],
): Promise<KinesisStreamEvent[]> {
  return throughKinesis(
    emu.kinesis,
    batches.flatMap((b) => agentRecords(b.agentId, b.lines, b.seq)),
  );
}

async function run(
  handler: typeof aggregate,
  event: KinesisStreamEvent,
): Promise<KinesisStreamBatchResponse> {
  return (await handler(event, ctx())) as KinesisStreamBatchResponse;
}

async function clients(service: string, by: 'endpoint' | 'ip' = 'endpoint') {
  const res = await query(
    apiEvent(`/v1/services/${service}/clients`, { by, limit: '1000' }),
    ctx(),
  );
  expect(res.statusCode).toBe(200);
  return body<{ clients: Record<string, unknown>[] }>(res).clients;
}

/** Expected totals per endpoint from the unique lines sent. */
function expectedEndpoints(lines: FlowInput[]) {
  const m = new Map<
    string,
    { pktsIn: number; bytesIn: number; pktsOut: number; bytesOut: number; lastSeen: number }
  >();
  for (const l of lines) {
    const k = `${l.remoteIp}:${l.remotePort}`;
    const e = m.get(k) ?? { pktsIn: 0, bytesIn: 0, pktsOut: 0, bytesOut: 0, lastSeen: 0 };
    e.pktsIn += l.pktsIn;
    e.bytesIn += l.bytesIn;
    e.pktsOut += l.pktsOut;
    e.bytesOut += l.bytesOut;
    e.lastSeen = Math.max(e.lastSeen, l.lastSeen);
    m.set(k, e);
  }
  return m;
}

function actualEndpoints(list: Record<string, unknown>[]) {
  return new Map(
    list.map((c) => [
      String(c.endpoint),
      {
        pktsIn: c.pktsIn,
        bytesIn: c.bytesIn,
        pktsOut: c.pktsOut,
        bytesOut: c.bytesOut,
        lastSeen: c.lastSeen,
      },
    ]),
  );
}

function sampleFlows(agentId: string, n: number, offset = 0): FlowInput[] {
  return Array.from({ length: n }, (_, i) =>
    flow({
      agentId,
      service: 'dns',
      remoteIp: `198.51.100.${(i % 20) + 1}`,
      remotePort: 40_000 + i,
      firstSeen: T0 + offset + i,
      lastSeen: T0 + offset + i * 10,
      pktsIn: i + 1,
      bytesIn: (i + 1) * 100,
      pktsOut: i,
      bytesOut: i * 50,
    }),
  );
}

describe('aggregate handler', () => {
  it('turns agent records into endpoint, IP, host, service and agent items', async () => {
    const seqA = new AgentSeq();
    const seqB = new AgentSeq();
    const a = sampleFlows('agent-a', 30);
    // Agent b sees some of the same clients (same IPs, other ports) and one IPv6 client.
    const b = [
      ...sampleFlows('agent-b', 5, 1000).map((l) => ({ ...l, remotePort: l.remotePort + 1000 })),
      flow({
        agentId: 'agent-b',
        service: 'ntp',
        remoteIp: '2001:db8::1',
        remotePort: 123,
        lastSeen: T0 + 5,
        firstSeen: T0,
      }),
    ];
    const heartbeat = {
      v: 1 as const,
      type: 'heartbeat' as const,
      agentId: 'agent-a',
      host: 'host-agent-a',
      at: T0 + 30_000,
      flows: 30,
      dropped: 2,
      spooled: 1,
      sources: ['hook' as const],
    };
    const events = await deliverable([
      { agentId: 'agent-a', lines: [...a, heartbeat] as FlowInput[], seq: seqA },
      { agentId: 'agent-b', lines: b, seq: seqB },
    ]);
    for (const e of events) expect((await run(aggregate, e)).batchItemFailures).toEqual([]);

    const dnsLines = [...a, ...b.filter((l) => l.service === 'dns')];
    expect(actualEndpoints(await clients('dns'))).toEqual(expectedEndpoints(dnsLines));
    const ips = await clients('dns', 'ip');
    expect(ips.map((c) => c.ip).sort()).toEqual(
      [...new Set(dnsLines.map((l) => l.remoteIp))].sort(),
    );
    const ip1 = ips.find((c) => c.ip === '198.51.100.1')!;
    expect(ip1.hosts).toEqual(['host-agent-a', 'host-agent-b']);
    expect(ip1.pktsIn).toBe(
      dnsLines.filter((l) => l.remoteIp === '198.51.100.1').reduce((s, l) => s + l.pktsIn, 0),
    );

    const count = body(await query(apiEvent('/v1/services/dns/count'), ctx()));
    expect(count).toMatchObject({ endpoints: 35, ips: 20 });

    const v6 = body<{ services: Record<string, unknown>[] }>(
      await query(apiEvent('/v1/clients/2001:0db8:0:0:0:0:0:1'), ctx()),
    );
    expect(v6.services.map((s) => s.service)).toEqual(['ntp']);

    const host = body<{ clients: Record<string, unknown>[] }>(
      await query(apiEvent('/v1/hosts/host-agent-b/clients'), ctx()),
    );
    expect(host.clients).toHaveLength(6);
    expect(host.clients.every((c) => c.host === 'host-agent-b')).toBe(true);

    const services = body<{ services: Record<string, unknown>[] }>(
      await query(apiEvent('/v1/services'), ctx()),
    );
    expect(services.services.map((s) => s.service)).toEqual(['dns', 'ntp']);
    // The services list keeps lastSeen to SERVICE_REFRESH_MS granularity.
    const newest = Math.max(...dnsLines.map((l) => l.lastSeen));
    expect(services.services[0]!.lastSeen).toBeLessThanOrEqual(newest);
    expect(services.services[0]!.lastSeen).toBeGreaterThan(newest - SERVICE_REFRESH_MS);

    const agents = body<{ agents: Record<string, unknown>[] }>(
      await query(apiEvent('/v1/agents'), ctx()),
    );
    expect(agents.agents).toEqual([
      expect.objectContaining({
        agentId: 'agent-a',
        lastHeartbeat: T0 + 30_000,
        dropped: 2,
        spooled: 1,
        reporting: true,
      }),
    ]);
  });

  it('applies a replayed batch and a re-sent payload only once', async () => {
    const seq = new AgentSeq();
    const lines = sampleFlows('agent-a', 12);
    const events = await deliverable([{ agentId: 'agent-a', lines, seq }]);
    for (const e of events) await run(aggregate, e);
    const before = actualEndpoints(await clients('dns'));
    // Lambda retries the same batches; the agent re-sends its payloads (same seq) after an unsure put.
    for (const e of events) await run(aggregate, e);
    for (const e of events) await run(aggregate, { Records: [...e.Records, ...e.Records] });
    expect(actualEndpoints(await clients('dns'))).toEqual(before);
    expect(before).toEqual(expectedEndpoints(lines));
  });

  it('a client reported again costs one write per item and batch, without conflicts', async () => {
    const seq = new AgentSeq();
    const emfOf = async (lines: FlowInput[]) => {
      const events = await deliverable([{ agentId: 'agent-a', lines, seq }]);
      const { lines: out } = await captureStdout(async () => {
        for (const e of events) await run(aggregate, e);
      });
      const docs = emfDocuments(out);
      const sum = (name: string) => docs.reduce((n, d) => n + Number(d[name] ?? 0), 0);
      return {
        writes: sum(AGGREGATE_METRICS.itemWrites),
        conflicts: sum(AGGREGATE_METRICS.writeConflicts),
        batches: docs.length,
      };
    };
    // 10 endpoints on 5 IPs; every flush later than the one before (firstSeen and lastSeen move on).
    const flush = (k: number) =>
      sampleFlows('agent-a', 10, k * 60_000).map((l) => ({
        ...l,
        remoteIp: `198.51.100.${(l.remotePort % 5) + 1}`,
      }));
    await emfOf(flush(0));
    for (const k of [1, 2]) {
      const second = await emfOf(flush(k));
      // 10 endpoint + 5 IP + 5 host items, plus the service item at most once per batch.
      expect(second.conflicts).toBe(0);
      expect(second.writes - (10 + 5 + 5)).toBeGreaterThanOrEqual(1);
      expect(second.writes - (10 + 5 + 5)).toBeLessThanOrEqual(second.batches);
    }
    expect(actualEndpoints(await clients('dns'))).toEqual(
      expectedEndpoints([...flush(0), ...flush(1), ...flush(2)]),
    );
  });

  it('reports the failed tail on throttling and the retry lands exact totals', async () => {
    const seq = new AgentSeq();
    // Many flushes: every record holds one line per bucket, so the batch has many records.
    const lines = [0, 1, 2, 3].flatMap((round) => sampleFlows('agent-a', 20, round * 5000));
    const events: KinesisStreamEvent[] = [];
    expect(await deliverableRounds(lines, seq, events)).toBeGreaterThan(4);
    proxy.setFaults([{ operation: 'UpdateItem', kind: 'throttle', skip: 7, count: 6 }]);
    let failures = 0;
    for (const e of events) {
      const res = await run(faulty, e);
      if (res.batchItemFailures.length === 0) continue;
      failures++;
      // The reported records are a tail of the batch: from the first failed one to the end.
      const ids = e.Records.map((r) => r.kinesis.sequenceNumber);
      const first = ids.indexOf(res.batchItemFailures[0]!.itemIdentifier);
      expect(res.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(ids.slice(first));
      proxy.clear();
      const retry = await run(faulty, { Records: e.Records.slice(first) });
      expect(retry.batchItemFailures).toEqual([]);
    }
    expect(failures).toBeGreaterThan(0);
    expect(actualEndpoints(await clients('dns'))).toEqual(expectedEndpoints(lines));
  });

  it('a crash in the middle of a batch followed by the retry of the whole batch leaves exact totals', async () => {
    const seq = new AgentSeq();
    const lines = [0, 1, 2].flatMap((round) => sampleFlows('agent-a', 20, round * 5000));
    const events: KinesisStreamEvent[] = [];
    await deliverableRounds(lines, seq, events);
    for (const e of events) {
      // Some writes land, one lands but its answer is lost, then the function dies.
      proxy.setFaults([
        { operation: 'UpdateItem', kind: 'reset', phase: 'after', skip: 10, count: 1 },
        { operation: 'UpdateItem', kind: 'reset', skip: 11 },
      ]);
      await run(faulty, e).catch(() => undefined);
      proxy.clear();
      // Lambda retries the whole batch after a crash.
      expect((await run(aggregate, e)).batchItemFailures).toEqual([]);
    }
    expect(actualEndpoints(await clients('dns'))).toEqual(expectedEndpoints(lines));
  });

  it('skips and counts bad records and bad lines without blocking good ones', async () => {
    const seq = new AgentSeq();
    const lines = sampleFlows('agent-a', 3);
    const good = (await deliverable([{ agentId: 'agent-a', lines, seq }])).flatMap(
      (e) => e.Records,
    );
    const goodLine = JSON.stringify({ ...lines[0], agentId: 'agent-z', seq: 1, remotePort: 9 });
    const badIp = JSON.stringify({ ...lines[0], agentId: 'agent-z', seq: 1, remoteIp: 'zz:01' });
    const withBadLine = rawRecord(Buffer.from(`${goodLine}\n${badIp}\nnot json\n`), '900');
    const garbage = rawRecord(Buffer.from([0x1f, 0x8b, 0, 1, 2, 3]), '901');
    const empty = rawRecord(Buffer.alloc(0), '902');
    const { result, lines: out } = await captureStdout(() =>
      run(aggregate, { Records: [garbage, ...good, withBadLine, empty] }),
    );
    expect(result.batchItemFailures).toEqual([]);
    const emf = emfDocuments(out);
    const metric = (name: string) => emf.map((d) => d[name]).find((v) => v !== undefined);
    expect(metric(METRICS.badRecords)).toBe(2);
    expect(metric(METRICS.badLines)).toBe(2);
    const warnings = out.filter((l) => l.includes('skipping bad line'));
    expect(warnings.some((w) => w.includes('zz:01') && w.includes('"line":2'))).toBe(true);
    expect(out.some((l) => l.includes('skipping undecodable record') && l.includes('gzip'))).toBe(
      true,
    );
    // Every good line landed: the three records' and the good line of the mixed record.
    const endpoints = (await clients('dns')).map((c) => c.endpoint).sort();
    const expected = [
      ...lines.map((l) => `${l.remoteIp}:${l.remotePort}`),
      `${lines[0]!.remoteIp}:9`,
    ];
    expect(endpoints).toEqual(expected.sort());
  });
});

/** Puts each 20-line round as its own flush (its own records) and collects the per-shard events. */
async function deliverableRounds(
  lines: FlowInput[],
  seq: AgentSeq,
  into: KinesisStreamEvent[],
): Promise<number> {
  const records = [];
  for (let i = 0; i < lines.length; i += 20)
    records.push(...agentRecords('agent-a', lines.slice(i, i + 20), seq));
  into.push(...(await throughKinesis(emu.kinesis, records)));
  return into.reduce((n, e) => n + e.Records.length, 0);
}
