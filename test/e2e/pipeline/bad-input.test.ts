/**
 * Bad input end to end: garbage Kinesis records, v1 lines and v2 block parts
 * (put with the AWS SDK and the AWS CLI), next to good ones, and malformed API
 * requests. Good data keeps
 * flowing with exact counts; every bad record and bad line is counted by the
 * aggregate function's metrics, none sends a batch to the failure sink; every
 * bad request gets a 400 problem document naming the parameter.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientsResponse, Problem } from '../../../contract/api-schemas.js';
import { type Block, minuteOf } from '../../../contract/block.js';
import { BLOCK_MAGIC, encodeBlock } from '../../../contract/block-codec.js';
import { serializeLine, type UnsequencedLine } from '../../../contract/codec.js';
import { METRICS } from '../../../contract/resources.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../../local/aws-clients.js';
import {
  type AgentProcess,
  ackDaemonCounters,
  type Counters,
  countersOf,
  type DaemonProcess,
  type Pipeline,
  runClients,
  startAgent,
  startHookedDaemon,
  startPipeline,
  waitFor,
} from './fleet-harness.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'uwe-bad-'));
const AWS_CLI = await run('aws', ['--version']).then(
  ({ stdout, stderr }) => ({
    command: 'aws',
    // v2 reads --data as base64 unless told otherwise; v1 takes the text as it is.
    rawData: /^aws-cli\/1\./.test(`${stdout}${stderr}`)
      ? []
      : ['--cli-binary-format', 'raw-in-base64-out'],
  }),
  () => undefined,
);
if (!AWS_CLI) console.warn('SKIPPING the AWS CLI records: no `aws` command on PATH');

let pipeline: Pipeline;
let daemon: DaemonProcess;
let agent: AgentProcess;
/** JSON lines the functions wrote (Powertools logs, warnings on stderr, and EMF metrics). */
const output: string[] = [];
const realWrites = {
  stdout: process.stdout.write.bind(process.stdout),
  stderr: process.stderr.write.bind(process.stderr),
};

/** Tees a stream's JSON lines into `output`. */
function capture(stream: NodeJS.WriteStream, write: (...a: unknown[]) => boolean): void {
  stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    output.push(
      ...String(chunk)
        .split('\n')
        .filter((l) => l.startsWith('{')),
    );
    return write(chunk, ...rest);
  }) as typeof stream.write;
}

beforeAll(async () => {
  // Keep what the aggregate function logs: its metrics count the bad input.
  capture(process.stdout, realWrites.stdout as (...a: unknown[]) => boolean);
  capture(process.stderr, realWrites.stderr as (...a: unknown[]) => boolean);
  pipeline = await startPipeline({ metrics: true });
  const hookSocket = join(dir, 'hook.sock');
  daemon = await startHookedDaemon({ ip: '127.0.0.1', hookSocket });
  agent = await startAgent({
    stream: pipeline.stack.emulators.streamName,
    endpoint: pipeline.kinesisProxy.url,
    stateDir: join(dir, 'state'),
    hookSocket,
    configPath: join(dir, 'agent.json'),
    settings: {
      host: 'uwe-bad-host',
      services: [{ name: 'bi-game', port: daemon.port }],
      sources: { hook: true, conntrack: false, proc: false },
    },
  });
  await agent.waitForLog(new RegExp(`hook: daemon pid ${daemon.pid} \\(node\\) reports`));
});

afterAll(async () => {
  process.stdout.write = realWrites.stdout;
  process.stderr.write = realWrites.stderr;
  await agent?.stop('SIGKILL');
  daemon?.child.kill('SIGKILL');
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A valid flow line of a third-party producer. */
function flowLine(agentId: string, service: string, remotePort: number, c: Counters) {
  const now = Date.now();
  const line: UnsequencedLine = {
    v: 1,
    type: 'flow',
    agentId,
    host: 'uwe-producer',
    service,
    source: 'conntrack',
    localIp: '192.0.2.10',
    localPort: 53,
    remoteIp: '198.51.100.7',
    remotePort,
    firstSeen: now - 1000,
    lastSeen: now,
    ...c,
    sampleRate: 1,
  };
  return line;
}

/** A valid v2 block part of a third-party producer, its one endpoint seen this second. */
function goodBlock(c: Counters): Block {
  const now = Date.now();
  const minute = minuteOf(now);
  const second = Math.floor((now - minute * 60_000) / 1000);
  return {
    agentId: 'bi-v2',
    host: 'uwe-producer',
    service: 'bi-v2',
    minute,
    seq: 1,
    part: 0,
    parts: 1,
    endpoints: [
      {
        ip: '198.51.100.8',
        port: 40004,
        localIp: '192.0.2.10',
        localPort: 53,
        ...c,
        firstSecond: second,
        lastSecond: second,
        source: 'conntrack',
        sampleRate: 1,
      },
    ],
  };
}

/** Sum of one metric over every EMF document the functions printed. */
function metricTotal(name: string): number {
  let n = 0;
  for (const l of output) {
    try {
      const doc = JSON.parse(l) as Record<string, unknown>;
      if (!doc._aws) continue;
      // A metric added more than once before a flush is published as an array of values.
      const value = doc[name];
      for (const v of Array.isArray(value) ? value : [value]) if (typeof v === 'number') n += v;
    } catch {
      // not JSON: not ours
    }
  }
  return n;
}

async function clientsOf(service: string): Promise<ClientsResponse> {
  const res = await pipeline.get<ClientsResponse>(`/v1/services/${service}/clients?by=endpoint`);
  expect(res.status).toBe(200);
  return res.body;
}

async function waitForCounters(service: string, expected: Record<string, Counters>) {
  const want = JSON.stringify(Object.entries(expected).sort());
  let last: unknown;
  await waitFor(
    `${service} to show exactly ${want}`,
    async () => {
      const got = await clientsOf(service);
      last = got;
      const entries = got.clients.map((c) => [c.endpoint, countersOf(c)] as const);
      return JSON.stringify(entries.sort()) === want ? true : undefined;
    },
    { timeoutMs: 30_000, describe: () => JSON.stringify(last) },
  );
}

describe('garbage records next to good ones', () => {
  it('skips and counts every bad record and line, and good data keeps flowing exactly', async () => {
    const { kinesis, streamName, kinesisEndpoint } = pipeline.stack.emulators;
    const good = { pktsIn: 3, bytesIn: 180, pktsOut: 2, bytesOut: 420 };
    const goodLine = serializeLine(flowLine('bi-sdk', 'bi-sdk', 40001, good), 1);
    const badLine = serializeLine(
      { ...flowLine('bi-sdk', 'bi-sdk', 40002, good), remoteIp: 'zz:01' },
      1,
    );
    const goodV2 = { pktsIn: 4, bytesIn: 400, pktsOut: 4, bytesOut: 200 };
    const blockBytes = encodeBlock(goodBlock(goodV2));
    const otherVersion = Buffer.from(blockBytes);
    otherVersion[BLOCK_MAGIC.length] = 9;
    const garbage: Buffer[] = [
      Buffer.from([0x00, 0xff, 0x13, 0x37, 0x42]), // not text at all
      gzipSync('{"v":1}\n').subarray(0, 12), // gzip magic, truncated stream
      Buffer.from(`${goodLine.replace('"v":1', '"v":2')}\n`), // a version nobody speaks
      Buffer.from('{}\n'),
      // v2: block magic, then a version nobody speaks, a cut body, or no deflate data at all.
      otherVersion,
      blockBytes.subarray(0, blockBytes.length - 4),
      Buffer.concat([BLOCK_MAGIC, Buffer.from([2]), Buffer.from('not deflated')]),
    ];
    const v2Garbage = [4, 5, 6];
    const put = await kinesis.send(
      new PutRecordsCommand({
        StreamName: streamName,
        Records: [
          ...garbage.map((data, i) => ({ PartitionKey: `garbage-${i}`, Data: data })),
          // One good and one bad line in one record: the good one must count.
          { PartitionKey: 'bi-sdk/0', Data: gzipSync(`${goodLine}\n${badLine}\n`) },
          { PartitionKey: 'bi-v2/0', Data: blockBytes },
        ],
      }),
    );
    expect(put.FailedRecordCount).toBe(0);
    let cliRecords = 0;
    if (AWS_CLI) {
      const cliGood = { pktsIn: 5, bytesIn: 500, pktsOut: 1, bytesOut: 60 };
      const cli = (partitionKey: string, data: string) =>
        run(
          AWS_CLI.command,
          [
            ...AWS_CLI.rawData,
            'kinesis',
            'put-record',
            '--endpoint-url',
            kinesisEndpoint,
            '--stream-name',
            streamName,
            '--partition-key',
            partitionKey,
            '--data',
            data,
          ],
          {
            env: {
              ...process.env,
              AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
              AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
              AWS_DEFAULT_REGION: LOCAL_REGION,
            },
          },
        );
      await cli('cli-garbage', 'this is not a connection log');
      await cli('bi-cli/0', serializeLine(flowLine('bi-cli', 'bi-cli', 40003, cliGood), 7));
      cliRecords = 1;
      await waitForCounters('bi-cli', { '198.51.100.7:40003': cliGood });
    }

    // Real traffic after the garbage: the shards it landed on keep moving.
    const sizes = [[10, 20, 30], [40], [50, 60]];
    const results = await runClients(
      sizes.map((s) => ({ target: '127.0.0.1', port: daemon.port, sizes: s })),
    );
    await waitForCounters(
      'bi-game',
      Object.fromEntries(
        results.map((r, i) => [`127.0.0.1:${r.sport}`, ackDaemonCounters(sizes[i]!)]),
      ),
    );
    await waitForCounters('bi-sdk', { '198.51.100.7:40001': good });
    await waitForCounters('bi-v2', { '198.51.100.8:40004': goodV2 });

    await pipeline.stack.poller!.drain(30_000);
    expect(pipeline.stack.failures).toEqual([]);
    expect(metricTotal(METRICS.badRecords)).toBe(garbage.length + cliRecords);
    expect(metricTotal(METRICS.badLines)).toBe(1);
    // The bad line is logged with where it was and why.
    const logged = output.filter((l) => l.includes('skipping bad line'));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('remoteIp');
    expect(logged[0]).toContain('bi-sdk/0');
    // Each bad record is logged once, naming where it was and its format.
    const skipped = output.filter((l) => l.includes('skipping bad record'));
    expect(skipped).toHaveLength(garbage.length + cliRecords);
    garbage.forEach((_, i) => {
      const mine = skipped.filter((l) => l.includes(`key garbage-${i})`));
      expect(mine, `garbage-${i}`).toHaveLength(1);
      expect(JSON.parse(mine[0]!)).toMatchObject({
        partitionKey: `garbage-${i}`,
        format: v2Garbage.includes(i) ? 'v2' : 'v1',
      });
    });
    if (cliRecords > 0)
      expect(skipped.filter((l) => l.includes('key cli-garbage)'))).toHaveLength(1);
  });
});

describe('malformed API requests', () => {
  async function expectProblem(path: string, parameter: string) {
    const res = await pipeline.get<Problem>(path);
    expect(res.status, path).toBe(400);
    expect(res.contentType, path).toMatch(/^application\/problem\+json/);
    expect(res.body, path).toMatchObject({ status: 400, title: 'Bad Request', parameter });
    expect(res.body.detail.length, path).toBeGreaterThan(0);
  }

  it('answers 400 problem+json naming the parameter', async () => {
    await expectProblem('/v1/services/bi-game/clients?window=-5', 'window');
    await expectProblem('/v1/services/bi-game/clients?window=abc', 'window');
    await expectProblem('/v1/services/bi-game/count?window=99999999', 'window');
    await expectProblem('/v1/services/bi-game/clients?by=host', 'by');
    await expectProblem('/v1/services/bi-game/clients?limit=0', 'limit');
    await expectProblem('/v1/services/bi-game/clients?limit=1001', 'limit');
    await expectProblem('/v1/services/bi-game/clients?cursor=not-a-cursor', 'cursor');
    await expectProblem('/v1/services/bi-game/clients?color=red', 'color');
    await expectProblem('/v1/clients/not-an-ip', 'ip');
    await expectProblem('/v1/clients/300.1.2.3', 'ip');
    await expectProblem('/v1/hosts/uwe-bad-host/clients?limit=-1', 'limit');
  });

  it('rejects a tampered cursor, and a cursor of another service', async () => {
    const first = await pipeline.get<ClientsResponse>(
      '/v1/services/bi-game/clients?by=endpoint&limit=1',
    );
    expect(first.status).toBe(200);
    expect(first.body.clients).toHaveLength(1);
    const cursor = first.body.nextCursor;
    expect(cursor).toBeTypeOf('string');
    // The real cursor works and gives the next page.
    const second = await pipeline.get<ClientsResponse>(
      `/v1/services/bi-game/clients?by=endpoint&limit=1&cursor=${encodeURIComponent(cursor!)}`,
    );
    expect(second.status).toBe(200);
    expect(second.body.clients[0]?.endpoint).not.toBe(first.body.clients[0]?.endpoint);
    const middle = Math.floor(cursor!.length / 2);
    const flipped = cursor![middle] === 'A' ? 'B' : 'A';
    const tampered = cursor!.slice(0, middle) + flipped + cursor!.slice(middle + 1);
    await expectProblem(
      `/v1/services/bi-game/clients?by=endpoint&limit=1&cursor=${encodeURIComponent(tampered)}`,
      'cursor',
    );
    await expectProblem(
      `/v1/services/bi-sdk/clients?by=endpoint&limit=1&cursor=${encodeURIComponent(cursor!)}`,
      'cursor',
    );
    // Bad requests took nothing down.
    const after = await pipeline.get<ClientsResponse>('/v1/services/bi-game/clients');
    expect(after.status).toBe(200);
    expect(after.body.clients).toHaveLength(3);
  });
});
