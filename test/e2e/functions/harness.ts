/**
 * Shared set-up of the function suites: emulators, handlers built against
 * them, records (v1 NDJSON lines or v2 blocks) put into kinesalite with
 * PutRecords or PutRecord, the Kinesis events an event source mapping would
 * deliver for them, and a look at every item a test's table holds.
 */

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  DeleteStreamCommand,
  type KinesisClient,
  PutRecordCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  KinesisStreamEvent,
  KinesisStreamRecord,
} from 'aws-lambda';
import { encodeRecords, type UnsequencedLine } from '../../../contract/codec.js';
import { flowBucket, partitionKey } from '../../../contract/partitioning.js';
import type { FlowLine } from '../../../contract/wire.js';
import type { FunctionConfig } from '../../../functions/store/config.js';
import { createDocumentClient } from '../../../functions/store/document-client.js';
import { createTable } from '../../../local/emulators.js';
import { lambdaContext } from '../../../local/lambda-context.js';
import { readShardRecords } from '../../support/stream-records.js';

/** Credentials the functions' SDK picks up from the environment (the emulators accept any). */
export function useLocalCredentials(): void {
  process.env.AWS_ACCESS_KEY_ID = 'local';
  process.env.AWS_SECRET_ACCESS_KEY = 'local';
  process.env.AWS_REGION = 'us-east-1';
  // Keep test output readable; warnings (bad input) and errors still print.
  process.env.POWERTOOLS_LOG_LEVEL = 'WARN';
}

/** A function configuration pointing at an emulator. */
export function localConfig(
  tableName: string,
  endpoint: string,
  extra: Partial<FunctionConfig> = {},
): FunctionConfig {
  return {
    table: tableName,
    dynamodbEndpoint: endpoint,
    activeWindowSeconds: 300,
    retentionHours: 24,
    cursorKey: 'test-cursor-key',
    ...extra,
  };
}

/** A fresh Lambda context for one invocation. */
export function ctx(functionName = 'udpwatch-test') {
  return lambdaContext({ functionName, region: 'us-east-1' });
}

/** A flow line as an agent writes it, before the encoder stamps `seq`. */
export type FlowInput = Omit<FlowLine, 'seq'>;

/** Builds a flow line with sensible defaults. */
export function flow(
  over: Partial<FlowInput> & Pick<FlowInput, 'agentId' | 'service' | 'remoteIp' | 'remotePort'>,
): FlowInput {
  return {
    v: 1,
    type: 'flow',
    host: over.host ?? `host-${over.agentId}`,
    source: 'hook',
    localIp: '192.0.2.1',
    localPort: 5000,
    firstSeen: 1_800_000_000_000,
    lastSeen: 1_800_000_000_000,
    pktsIn: 1,
    bytesIn: 100,
    pktsOut: 1,
    bytesOut: 50,
    sampleRate: 1,
    ...over,
  } as FlowInput;
}

/** One agent's per-agent seq counter, as the agent persists it. */
export class AgentSeq {
  private next = 1;
  /** Takes the next seq. */
  take = (): number => this.next++;
}

/**
 * Encodes one agent's lines as the agent does: one record per bucket per
 * flush, partition key per (agent, bucket), a fresh seq per record.
 */
export function agentRecords(
  agentId: string,
  lines: readonly UnsequencedLine[],
  seq: AgentSeq,
): { partitionKey: string; data: Buffer; seq: number }[] {
  const byBucket = new Map<number, UnsequencedLine[]>();
  for (const l of lines) {
    const bucket = l.type === 'flow' ? flowBucket(l.service, l.remoteIp) : 0;
    const list = byBucket.get(bucket) ?? [];
    list.push(l);
    byBucket.set(bucket, list);
  }
  const out: { partitionKey: string; data: Buffer; seq: number }[] = [];
  for (const [bucket, group] of [...byBucket].sort((a, b) => a[0] - b[0])) {
    for (const r of encodeRecords(group, { nextSeq: seq.take })) {
      out.push({ partitionKey: partitionKey(agentId, bucket), data: r.data, seq: r.seq });
    }
  }
  return out;
}

/** Puts records into the stream in order (one PutRecords per call, order kept per key). */
export async function putRecords(
  kinesis: KinesisClient,
  streamName: string,
  records: readonly { partitionKey: string; data: Uint8Array }[],
): Promise<void> {
  for (let i = 0; i < records.length; i += 500) {
    const chunk = records.slice(i, i + 500);
    const out = await kinesis.send(
      new PutRecordsCommand({
        StreamName: streamName,
        Records: chunk.map((r) => ({ PartitionKey: r.partitionKey, Data: r.data })),
      }),
    );
    if (out.FailedRecordCount) throw new Error(`${out.FailedRecordCount} records failed to put`);
  }
}

/** Puts records one PutRecord call each, as `aws kinesis put-record` does. */
export async function putRecordEach(
  kinesis: KinesisClient,
  streamName: string,
  records: readonly { partitionKey: string; data: Uint8Array }[],
): Promise<void> {
  for (const r of records) {
    await kinesis.send(
      new PutRecordCommand({ StreamName: streamName, PartitionKey: r.partitionKey, Data: r.data }),
    );
  }
}

/** Reads every record of every shard (from the start) as the events a mapping would deliver, one per shard. */
export async function readShardEvents(
  kinesis: KinesisClient,
  streamName: string,
): Promise<KinesisStreamEvent[]> {
  return (await readShardRecords(kinesis, streamName)).map(({ shardId, records }) => ({
    Records: records.map(
      (r): KinesisStreamRecord => ({
        kinesis: {
          kinesisSchemaVersion: '1.0',
          partitionKey: r.PartitionKey!,
          sequenceNumber: r.SequenceNumber!,
          data: Buffer.from(r.Data!).toString('base64'),
          approximateArrivalTimestamp: (r.ApproximateArrivalTimestamp?.getTime() ?? 0) / 1000,
        },
        eventSource: 'aws:kinesis',
        eventVersion: '1.0',
        eventID: `${shardId}:${r.SequenceNumber}`,
        eventName: 'aws:kinesis:record',
        invokeIdentityArn: 'arn:aws:iam::000000000000:role/udpwatch-aggregate',
        awsRegion: 'us-east-1',
        eventSourceARN: `arn:aws:kinesis:us-east-1:000000000000:stream/${streamName}`,
      }),
    ),
  }));
}

let streams = 0;
let tables = 0;

/** Creates a fresh, empty table with the contract's layout (tables are cheap; deleting one races its re-creation). */
export async function freshTable(dynamodb: DynamoDBClient): Promise<string> {
  const name = `functions-${process.pid}-${tables++}`;
  await createTable(dynamodb, name);
  return name;
}

/**
 * Puts records into a fresh stream (2 shards), reads them back as the per-shard
 * events a mapping would deliver (empty shards left out), and deletes the stream.
 */
export async function throughKinesis(
  kinesis: KinesisClient,
  records: readonly { partitionKey: string; data: Uint8Array }[],
  options: { via?: 'PutRecords' | 'PutRecord' } = {},
): Promise<KinesisStreamEvent[]> {
  const put = options.via === 'PutRecord' ? putRecordEach : putRecords;
  const stream = `functions-${process.pid}-${streams++}`;
  await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 2 }));
  try {
    for (let i = 0; i < 100; i++) {
      try {
        await put(kinesis, stream, records);
        break;
      } catch (err) {
        // The stream is still being created.
        if (i === 99 || !(err instanceof Error && err.name === 'ResourceNotFoundException'))
          throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    return (await readShardEvents(kinesis, stream)).filter((e) => e.Records.length > 0);
  } finally {
    await kinesis.send(new DeleteStreamCommand({ StreamName: stream }));
  }
}

/** A Kinesis record whose data is the given bytes (arrival unset unless given, epoch ms). */
export function rawRecord(
  data: Buffer,
  sequenceNumber: string,
  key = 'bad/0',
  arrivalMs = 0,
): KinesisStreamRecord {
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: key,
      sequenceNumber,
      data: data.toString('base64'),
      approximateArrivalTimestamp: arrivalMs / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `shardId-000000000009:${sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn:aws:iam::000000000000:role/udpwatch-aggregate',
    awsRegion: 'us-east-1',
    eventSourceARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/test',
  };
}

/**
 * Every item of a test's table, sorted by key (a Scan: tests only, to see
 * that nothing else was written).
 */
export async function tableItems(
  endpoint: string,
  table: string,
): Promise<Record<string, unknown>[]> {
  const doc = createDocumentClient({ endpoint });
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  const key = (i: Record<string, unknown>) => `${i.pk}\u0000${i.sk}`;
  return items.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** An HTTP API payload 2.0 GET request. */
export function apiEvent(
  path: string,
  query: Record<string, string> = {},
  method = 'GET',
): APIGatewayProxyEventV2 {
  const rawQueryString = new URLSearchParams(query).toString();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString,
    headers: {},
    ...(Object.keys(query).length ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: 'r',
      routeKey: '$default',
      stage: '$default',
      time: '',
      timeEpoch: 0,
    },
    isBase64Encoded: false,
  };
}

/** Parses an API answer's JSON body. */
export function body<T = Record<string, unknown>>(res: APIGatewayProxyStructuredResultV2): T {
  return JSON.parse(String(res.body)) as T;
}

/**
 * Runs `fn` while collecting what it writes to stdout and stderr (Powertools
 * writes EMF and info logs to stdout, warnings and errors to stderr).
 */
export async function captureStdout<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; lines: string[] }> {
  const chunks: string[] = [];
  const streams = [process.stdout, process.stderr] as const;
  const originals = streams.map((s) => s.write);
  for (const stream of streams) {
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      cb?.();
      return true;
    }) as typeof stream.write;
  }
  try {
    const result = await fn();
    return {
      result,
      lines: chunks
        .join('')
        .split('\n')
        .filter((l) => l.trim() !== ''),
    };
  } finally {
    streams.forEach((s, i) => {
      s.write = originals[i]!;
    });
  }
}

/** The EMF documents among captured stdout lines. */
export function emfDocuments(lines: readonly string[]): Record<string, unknown>[] {
  return lines
    .filter((l) => l.startsWith('{') && l.includes('"_aws"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
