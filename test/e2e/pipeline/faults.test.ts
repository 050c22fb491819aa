/**
 * Nothing lost, nothing counted twice: a hooked daemon, the real agent and
 * the real functions go through one fault after another, and after each the
 * API's totals equal exactly what the clients sent.
 *
 * Faults: Kinesis unreachable (the agent spools, then drains); the agent
 * killed with SIGKILL mid-outage and restarted on the same state directory;
 * the aggregate function crashing after writing part of a batch; DynamoDB
 * applying a write but answering 500; DynamoDB throttling; every record of
 * the stream delivered a second time.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeSegment } from '../../../agent/disk-spool.js';
import type { AgentsResponse, ClientsResponse } from '../../../contract/api-schemas.js';
import { decodeBlock, isBlockRecord } from '../../../contract/block-codec.js';
import { decodeRecord } from '../../../contract/codec.js';
import { tableItems } from '../functions/harness.js';
import {
  type AgentProcess,
  type AgentSettings,
  ackDaemonCounters,
  addCounters,
  type Counters,
  countersOf,
  type DaemonProcess,
  type Pipeline,
  readAllRecords,
  runClients,
  sleep,
  startAgent,
  startHookedDaemon,
  startPipeline,
  waitFor,
} from './fleet-harness.js';

const SERVICE = 'ft-game';
/** How long DynamoDB is down in the outage case (env UDPWATCH_TEST_DYNAMODB_OUTAGE_MS). */
const DYNAMODB_OUTAGE_MS = Number(process.env.UDPWATCH_TEST_DYNAMODB_OUTAGE_MS ?? 30_000);
const HOST = 'uwe-faults-host';
const dir = mkdtempSync(join(tmpdir(), 'uwe-faults-'));
const stateDir = join(dir, 'state');
const hookSocket = join(dir, 'hook.sock');

let pipeline: Pipeline;
let daemon: DaemonProcess;
let agent: AgentProcess;
let settings: AgentSettings;
/** Ground truth: what the clients sent, per endpoint. */
const expected = new Map<string, Counters>();
/** When armed, the aggregate function crashes on the next batch carrying client traffic. */
let crashArmed = false;
let crashes = 0;

/**
 * Packets in from these client ports in one record: a v2 block part's
 * endpoints (what the agent ships) or a v1 record's flow lines.
 */
function packetsIn(data: Buffer, ports?: readonly number[]): number {
  const wanted = (port: number) => ports === undefined || ports.includes(port);
  let n = 0;
  if (isBlockRecord(data)) {
    const decoded = decodeBlock(data);
    if (!decoded.ok) throw new Error(`the agent shipped a bad block: ${decoded.reason}`);
    for (const e of decoded.block.endpoints) if (wanted(e.port)) n += e.pktsIn;
    return n;
  }
  for (const l of decodeRecord(data).lines)
    if (l.type === 'flow' && wanted(l.remotePort)) n += l.pktsIn;
  return n;
}

const carriesTraffic = (data: string) => packetsIn(Buffer.from(data, 'base64')) > 0;

beforeAll(async () => {
  pipeline = await startPipeline({
    dynamodbProxy: true,
    wrapAggregate: (real) => async (event, context) => {
      if (crashArmed && event.Records.some((r) => carriesTraffic(r.kinesis.data))) {
        crashArmed = false;
        crashes++;
        // Write the first half of the batch for real, then die as a crashed Lambda would.
        const half = Math.ceil(event.Records.length / 2);
        await real({ Records: event.Records.slice(0, half) }, context);
        throw new Error(`injected crash after writing ${half} of ${event.Records.length} records`);
      }
      return real(event, context);
    },
  });
  daemon = await startHookedDaemon({ ip: '127.0.0.1', hookSocket });
  settings = {
    host: HOST,
    services: [{ name: SERVICE, port: daemon.port, timeoutSeconds: 600 }],
    sources: { hook: true, conntrack: false, proc: false },
    // One heartbeat at start: every DynamoDB write after that is a block of the
    // clients below, so injected faults hit their items.
    tuning: { heartbeatSeconds: 3600 },
  };
  agent = await launchAgent();
});

afterAll(async () => {
  await agent?.stop('SIGKILL');
  daemon?.child.kill('SIGKILL');
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function launchAgent(): Promise<AgentProcess> {
  const started = await startAgent({
    stream: pipeline.stack.emulators.streamName,
    endpoint: pipeline.kinesisProxy.url,
    stateDir,
    hookSocket,
    configPath: join(dir, 'agent.json'),
    settings,
  });
  await started.waitForLog(new RegExp(`hook: daemon pid ${daemon.pid} \\(node\\) reports`));
  return started;
}

/**
 * Runs clients with these datagram sizes and adds what they sent to the ground
 * truth. A later run may get an ephemeral port an earlier one used; the API
 * then rightly sums both under that endpoint, and so does the truth.
 */
async function send(sizesPerClient: number[][]): Promise<number[]> {
  const plan = sizesPerClient.map((sizes) => ({ target: '127.0.0.1', port: daemon.port, sizes }));
  const results = await runClients(plan);
  results.forEach((r, i) => {
    const endpoint = `127.0.0.1:${r.sport}`;
    const sent = ackDaemonCounters(plan[i]!.sizes);
    const before = expected.get(endpoint);
    expected.set(endpoint, before ? addCounters(before, sent) : sent);
  });
  return results.map((r) => r.sport);
}

async function endpoints(): Promise<ClientsResponse> {
  const res = await pipeline.get<ClientsResponse>(
    `/v1/services/${SERVICE}/clients?by=endpoint&limit=1000`,
  );
  expect(res.status).toBe(200);
  return res.body;
}

const snapshot = (a: ClientsResponse) =>
  Object.fromEntries(a.clients.map((c) => [c.endpoint, countersOf(c)]));
const truth = () => Object.fromEntries(expected);

/** Waits until the API shows exactly the ground truth, then checks the per-IP total too. */
async function expectExactTotals(): Promise<void> {
  let last: unknown;
  await waitFor(
    'the API totals to equal what the clients sent',
    async () => {
      const now = snapshot(await endpoints());
      last = now;
      return JSON.stringify(sorted(now)) === JSON.stringify(sorted(truth())) ? true : undefined;
    },
    {
      timeoutMs: 30_000,
      describe: () =>
        `API: ${JSON.stringify(last)}\ntruth: ${JSON.stringify(truth())}\nagent: ${agent.log()}`,
    },
  );
  expect(snapshot(await endpoints())).toEqual(truth());
  const byIp = await pipeline.get<ClientsResponse>(`/v1/services/${SERVICE}/clients?by=ip`);
  expect(byIp.body.clients.map(countersOf)).toEqual([addCounters(...expected.values())]);
  expect(pipeline.stack.failures).toEqual([]);
  // A retried or replayed put is recognized as the same bytes, never kept aside as a conflict.
  const { dynamodbEndpoint, tableName } = pipeline.stack.emulators;
  const items = await tableItems(dynamodbEndpoint, tableName);
  expect(items.filter((i) => String(i.pk).startsWith('CONFLICT#'))).toEqual([]);
}

function sorted(o: Record<string, unknown>): [string, unknown][] {
  return Object.entries(o).sort(([a], [b]) => a.localeCompare(b));
}

/** Packets in the agent's spool files from these client ports. */
function spooledPackets(ports: number[]): number {
  const spool = join(stateDir, 'spool');
  let n = 0;
  for (const f of readdirSync(spool).filter((name) => name.endsWith('.spool'))) {
    let records: ReturnType<typeof decodeSegment> = [];
    try {
      records = decodeSegment(readFileSync(join(spool, f)));
    } catch {
      continue; // acknowledged and removed meanwhile
    }
    for (const r of records) n += packetsIn(r.data, ports);
  }
  return n;
}

describe('faults between the agent and the API', () => {
  it('starts exact', async () => {
    await send([[100, 200], [300]]);
    await expectExactTotals();
  });

  it('Kinesis unreachable for a while: the agent spools, then drains everything once', async () => {
    await pipeline.kinesisProxy.refuse(true);
    const ports = await send([[11, 12, 13], [1400], [5, 5, 5, 5]]);
    await agent.waitForLog(/wait in the spool until Kinesis answers/);
    await waitFor('the outage traffic to be spooled', () =>
      spooledPackets(ports) === 8 ? true : undefined,
    );
    // Nothing of it can have arrived.
    const during = snapshot(await endpoints());
    for (const p of ports) expect(during[`127.0.0.1:${p}`]).toBeUndefined();
    await pipeline.kinesisProxy.refuse(false);
    await agent.waitForLog(/Kinesis reachable again after [0-9.]+ s/);
    await expectExactTotals();
  });

  it('Kinesis throttles whole calls and fails part of others: the agent retries only what failed', async () => {
    const proxy = pipeline.kinesisProxy;
    const injectedBefore = proxy.stats.injected;
    proxy.setFaults([
      { operation: 'PutRecords', kind: 'throttle', count: 2 },
      { operation: 'PutRecords', kind: 'partialPutRecords', failFraction: 1, count: 2 },
    ]);
    await send([[21, 22], [23], [24, 25, 26]]);
    await expectExactTotals();
    expect(proxy.stats.injected - injectedBefore).toBe(4);
    proxy.clear();
  });

  it('agent killed with SIGKILL mid-outage and restarted: its spool arrives, later traffic too', async () => {
    await pipeline.kinesisProxy.refuse(true);
    const ports = await send([[70, 80, 90], [2]]);
    await waitFor('the traffic to be spooled before the kill', () =>
      spooledPackets(ports) === 4 ? true : undefined,
    );
    const agentId = /started: agent (\S+)/.exec(agent.log())?.[1];
    expect(await agent.stop('SIGKILL')).toBeNull();
    await pipeline.kinesisProxy.refuse(false);
    agent = await launchAgent();
    // Same identity: its sequence numbers continue, so nothing new looks like a replay.
    expect(agent.log()).toContain(`started: agent ${agentId} `);
    await expectExactTotals();
    await send([[33, 44], [55]]);
    await expectExactTotals();
    const agents = await pipeline.get<AgentsResponse>('/v1/agents');
    expect(agents.body.agents.map((a) => [a.agentId, a.host])).toEqual([[agentId, HOST]]);
  });

  it('the aggregate function crashes after writing half a batch: the retry adds nothing twice', async () => {
    const retriesBefore = pipeline.stack.poller!.stats().retries;
    crashArmed = true;
    await send([[120, 130, 140], [7]]);
    await waitFor('the injected crash', () => (crashes === 1 ? true : undefined));
    await expectExactTotals();
    expect(pipeline.stack.poller!.stats().retries).toBeGreaterThan(retriesBefore);
  });

  it('DynamoDB applies writes but answers 500: the retried writes are recognized', async () => {
    const proxy = pipeline.dynamodbProxy!;
    const injectedBefore = proxy.stats.injected;
    // Block parts are put (PutItem) by content; the faulted puts land, then answer 500.
    proxy.setFaults([{ operation: 'PutItem', kind: 'http500', phase: 'after', count: 3 }]);
    await send([
      [900, 901],
      [17, 18, 19],
    ]);
    // A faulted put lands before its 500, so the totals can be exact while
    // retries are still under way: wait for all three, then check nothing doubled.
    await waitFor('the three faulted puts', () =>
      proxy.stats.injected - injectedBefore >= 3 ? true : undefined,
    );
    await expectExactTotals();
    expect(proxy.stats.injected - injectedBefore).toBe(3);
    proxy.clear();
  });

  it('DynamoDB throttles: the throttled writes wait and land once', async () => {
    const proxy = pipeline.dynamodbProxy!;
    const injectedBefore = proxy.stats.injected;
    const retriesBefore = pipeline.stack.poller!.stats().retries;
    proxy.setFaults([{ operation: 'PutItem', kind: 'throttle', count: 4 }]);
    await send([[64, 64, 64, 64], [1000]]);
    await expectExactTotals();
    expect(proxy.stats.injected - injectedBefore).toBe(4);
    expect(pipeline.stack.poller!.stats().retries).toBeGreaterThan(retriesBefore);
    proxy.clear();
  });

  it(
    'DynamoDB unreachable for a long while: the aggregate retries throughout, nothing reaches the failure queue',
    async () => {
      const proxy = pipeline.dynamodbProxy!;
      const poller = pipeline.stack.poller!;
      const before = poller.stats();
      await proxy.refuse(true);
      try {
        await send([[300, 301], [5, 6, 7], [90]]);
        await sleep(DYNAMODB_OUTAGE_MS);
        // Far past the old budget of 10 retries (about 6 s of backoff): still retrying.
        expect(poller.stats().retries - before.retries).toBeGreaterThan(10);
        expect(poller.stats().failures).toBe(before.failures);
      } finally {
        await proxy.refuse(false);
      }
      await expectExactTotals();
      expect(poller.stats().failures).toBe(0);
    },
    DYNAMODB_OUTAGE_MS + 90_000,
  );

  it('every record of the stream delivered a second time changes nothing', async () => {
    const { kinesis, streamName } = pipeline.stack.emulators;
    const records = await readAllRecords(kinesis, streamName);
    expect(records.length).toBeGreaterThan(5);
    for (let i = 0; i < records.length; i += 500) {
      const chunk = records.slice(i, i + 500);
      const res = await kinesis.send(
        new PutRecordsCommand({
          StreamName: streamName,
          Records: chunk.map((r) => ({ PartitionKey: r.partitionKey, Data: r.data })),
        }),
      );
      expect(res.FailedRecordCount).toBe(0);
    }
    const handledBefore = pipeline.stack.poller!.stats().records;
    await pipeline.stack.poller!.drain(30_000);
    expect(pipeline.stack.poller!.stats().records - handledBefore).toBeGreaterThanOrEqual(
      records.length,
    );
    expect(snapshot(await endpoints())).toEqual(truth());
    await expectExactTotals();
  });
});
