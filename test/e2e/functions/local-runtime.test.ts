/**
 * The whole path through the local runtime: agent-format records put into
 * kinesalite, delivered by the event-source poller to the aggregate handler
 * (with DynamoDB throttling in between), answered over HTTP by the query
 * handler behind the local API Gateway adapter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAggregateHandler } from '../../../functions/aggregate/handler.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { type ApiServer, startApiServer } from '../../../local/api-gateway-adapter.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import {
  type EventSourcePoller,
  startEventSourcePoller,
} from '../../../local/event-source-poller.js';
import { type FaultProxy, startFaultProxy } from '../../../local/fault-proxy.js';
import {
  AgentSeq,
  agentRecords,
  type FlowInput,
  flow,
  freshTable,
  localConfig,
  putRecords,
  useLocalCredentials,
} from './harness.js';

let emu: Emulators;
let proxy: FaultProxy;
let poller: EventSourcePoller;
let api: ApiServer;

beforeAll(async () => {
  useLocalCredentials();
  emu = await startEmulators({ kinesisPort: 0, dynamodbPort: 0, shardCount: 2 });
  proxy = await startFaultProxy({ target: emu.dynamodbEndpoint });
  const table = await freshTable(emu.dynamodb);
  const aggregate = createAggregateHandler(localConfig(table, proxy.url), { maxAttempts: 1 });
  poller = startEventSourcePoller({
    kinesis: emu.kinesis,
    streamName: emu.streamName,
    handler: aggregate,
    maxBatchingWindowMs: 50,
    pollIntervalMs: 50,
  });
  const query = createQueryHandler(localConfig(table, emu.dynamodbEndpoint));
  api = await startApiServer({ handler: query, port: 0 });
});

afterAll(async () => {
  await poller?.stop();
  await api?.stop();
  await proxy?.stop();
  await emu?.stop();
});

describe('local runtime', () => {
  it('records an agent puts come out of the API exactly, despite throttled writes', async () => {
    const now = Date.now();
    const seq = new AgentSeq();
    const expected = new Map<string, number>();
    // Three flushes of the same 12 clients: totals must add up over flushes.
    for (let flush = 0; flush < 3; flush++) {
      const lines: FlowInput[] = Array.from({ length: 12 }, (_, i) =>
        flow({
          agentId: 'edge-1',
          service: 'game',
          remoteIp: `203.0.113.${i + 1}`,
          remotePort: 7000,
          firstSeen: now - 5000,
          lastSeen: now - 1000 + flush,
          pktsIn: i + flush,
        }),
      );
      for (const l of lines) {
        const k = `${l.remoteIp}:${l.remotePort}`;
        expected.set(k, (expected.get(k) ?? 0) + l.pktsIn);
      }
      // Block parts are stored with PutItem (UpdateItem only refreshes the
      // services list, at most once a minute): throttle those puts.
      if (flush === 1)
        proxy.setFaults([{ operation: 'PutItem', kind: 'throttle', skip: 5, count: 4 }]);
      await putRecords(emu.kinesis, emu.streamName, agentRecords('edge-1', lines, seq));
      await poller.drain(30_000);
    }
    expect(proxy.stats.injected).toBe(4);
    proxy.clear();
    expect(poller.stats().retries).toBeGreaterThan(0);
    expect(poller.stats().failures).toBe(0);

    const res = await fetch(`${api.url}/v1/services/game/clients?limit=100`);
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { clients: { endpoint: string; pktsIn: number }[] };
    expect(new Map(answer.clients.map((c) => [c.endpoint, c.pktsIn]))).toEqual(expected);
    const count = await (await fetch(`${api.url}/v1/services/game/count`)).json();
    expect(count).toMatchObject({ endpoints: 12, ips: 12 });
  });
});
