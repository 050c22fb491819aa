/**
 * The metrics handler against dynalite: it counts active endpoints and IPs
 * per service and the agents reporting, prints them as EMF documents with the
 * Service dimension, and stores the counts for GET /v1/services.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRICS, RESOURCE_NAMES } from '../../../contract/resources.js';
import { createAggregateHandler } from '../../../functions/aggregate/handler.js';
import { createMetricsHandler } from '../../../functions/metrics/handler.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import {
  AgentSeq,
  agentRecords,
  apiEvent,
  body,
  captureStdout,
  ctx,
  emfDocuments,
  flow,
  freshTable,
  localConfig,
  rawRecord,
  useLocalCredentials,
} from './harness.js';

const T0 = 1_800_000_000_000;
const NOW = T0 + 600_000;

let emu: Emulators;
let table: string;

beforeAll(async () => {
  useLocalCredentials();
  emu = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  table = await freshTable(emu.dynamodb);
  const aggregate = createAggregateHandler(localConfig(table, emu.dynamodbEndpoint));
  const recent = NOW - 60_000;
  const old = NOW - 900_000;
  const lines = [
    // dns: 3 active endpoints on 2 IPs, 1 stale endpoint on a third IP.
    flow({
      agentId: 'a1',
      service: 'dns',
      remoteIp: '198.51.100.1',
      remotePort: 1000,
      lastSeen: recent,
      firstSeen: old,
    }),
    flow({
      agentId: 'a1',
      service: 'dns',
      remoteIp: '198.51.100.1',
      remotePort: 1001,
      lastSeen: recent,
      firstSeen: old,
    }),
    flow({
      agentId: 'a1',
      service: 'dns',
      remoteIp: '2001:db8::2',
      remotePort: 1000,
      lastSeen: recent,
      firstSeen: old,
    }),
    flow({
      agentId: 'a1',
      service: 'dns',
      remoteIp: '198.51.100.3',
      remotePort: 1000,
      lastSeen: old,
      firstSeen: old,
    }),
    // ntp: nothing active any more.
    flow({
      agentId: 'a1',
      service: 'ntp',
      remoteIp: '198.51.100.9',
      remotePort: 123,
      lastSeen: old,
      firstSeen: old,
    }),
  ];
  const heartbeat = (agentId: string, at: number) => ({
    v: 1 as const,
    type: 'heartbeat' as const,
    agentId,
    host: `host-${agentId}`,
    at,
    flows: 1,
    dropped: 0,
    spooled: 0,
  });
  const records = [
    ...agentRecords('a1', [...lines, heartbeat('a1', recent)], new AgentSeq()),
    ...agentRecords('a2', [heartbeat('a2', recent)], new AgentSeq()),
    ...agentRecords('a3', [heartbeat('a3', old)], new AgentSeq()),
  ];
  await aggregate(
    { Records: records.map((r, i) => rawRecord(r.data, String(i + 1), r.partitionKey)) },
    ctx(),
  );
});

afterAll(async () => {
  await emu?.stop();
});

describe('metrics handler', () => {
  it('publishes active clients per service and agents reporting as EMF, and stores the counts', async () => {
    const metrics = createMetricsHandler(localConfig(table, emu.dynamodbEndpoint), {
      now: () => NOW,
    });
    const { lines } = await captureStdout(() => metrics({}, ctx('udpwatch-metrics')));
    const docs = emfDocuments(lines);
    const perService = (service: string, name: string) =>
      docs.find((d) => d[METRICS.serviceDimension] === service && d[name] !== undefined)?.[name];
    expect(perService('dns', METRICS.activeClients)).toBe(3);
    expect(perService('dns', METRICS.activeClientIps)).toBe(2);
    expect(perService('ntp', METRICS.activeClients)).toBe(0);
    expect(perService('ntp', METRICS.activeClientIps)).toBe(0);
    const dnsDoc = docs.find((d) => d[METRICS.serviceDimension] === 'dns')!;
    const cw = (
      dnsDoc._aws as { CloudWatchMetrics: { Namespace: string; Dimensions: string[][] }[] }
    ).CloudWatchMetrics[0]!;
    expect(cw.Namespace).toBe(RESOURCE_NAMES.metricsNamespace);
    expect(cw.Dimensions[0]).toContain(METRICS.serviceDimension);
    const agents = docs.find((d) => d[METRICS.agentsReporting] !== undefined);
    expect(agents?.[METRICS.agentsReporting]).toBe(2);

    const query = createQueryHandler(localConfig(table, emu.dynamodbEndpoint), { now: () => NOW });
    const services = body<{ services: Record<string, unknown>[] }>(
      await query(apiEvent('/v1/services'), ctx()),
    );
    expect(services.services).toEqual([
      expect.objectContaining({
        service: 'dns',
        active: true,
        activeClients: 3,
        activeClientIps: 2,
        countsAt: NOW,
      }),
      expect.objectContaining({
        service: 'ntp',
        active: false,
        activeClients: 0,
        activeClientIps: 0,
        countsAt: NOW,
      }),
    ]);
  });
});
