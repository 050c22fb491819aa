/**
 * What the aggregator and query benchmarks share: the emulators in a child
 * process behind a counting proxy, Kinesis events built the way the event
 * source mapping delivers them, and the environment the handlers expect.
 */
import { get } from 'node:http';
import { fileURLToPath } from 'node:url';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import { dynamodbClient } from '../local/aws-clients.js';
import { type ReadyChild, spawnReady } from './child-json.js';

/** Endpoints printed by bench/procs/store-emulators.ts. */
export interface StoreEndpoints {
  dynamodbEndpoint: string;
  kinesisEndpoint: string;
  tableName: string;
  streamName: string;
}

/** Emulators in a child process; `counts()` returns and resets the request counts. */
export interface StoreChild {
  endpoints: StoreEndpoints;
  counts(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** Sets what the handlers read from the environment (local credentials, quiet Powertools). */
export function prepareHandlerEnvironment(): void {
  process.env.AWS_ACCESS_KEY_ID ??= 'local';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'local';
  process.env.AWS_REGION ??= 'us-east-1';
  // The bench prints its table on stdout: keep handler logs and EMF off it.
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
  process.env.AWS_LAMBDA_LOG_LEVEL = 'ERROR';
}

/**
 * The proxy's request counts, on a connection of its own: a pooled one
 * (fetch) can be closed by the server's keep-alive timer just as it is reused
 * after a long invocation, and fail with "other side closed".
 */
function countsOf(url: string): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString()) as Record<string, number>);
        } catch (err) {
          reject(new Error(`${url}: not JSON (${String(err)})`));
        }
      });
      res.on('error', reject);
    }).on('error', (err) => reject(new Error(`${url}: ${err.message}`)));
  });
}

/** Starts the emulators in a child process. */
export async function startStoreChild(): Promise<StoreChild> {
  const script = fileURLToPath(new URL('./procs/store-emulators.ts', import.meta.url));
  const child: ReadyChild<StoreEndpoints> = await spawnReady(
    process.execPath,
    ['--import', 'tsx', script],
    { timeoutMs: 60_000 },
  );
  const endpoints = child.ready;
  return {
    endpoints,
    counts: () => countsOf(`${endpoints.dynamodbEndpoint}/__counts`),
    stop: () => child.stop(),
  };
}

let sequence = 0n;

/** A Kinesis event as the event source mapping delivers it, one shard. */
export function kinesisEvent(
  records: readonly { partitionKey: string; data: Buffer }[],
  streamArn: string,
): KinesisStreamEvent {
  const now = Date.now() / 1000;
  const out: KinesisStreamRecord[] = records.map((r) => {
    sequence += 1n;
    const seqText = (49_000_000_000_000_000_000n + sequence).toString();
    return {
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: r.partitionKey,
        sequenceNumber: seqText,
        data: r.data.toString('base64'),
        approximateArrivalTimestamp: now,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `shardId-000000000000:${seqText}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: 'arn:aws:iam::000000000000:role/bench',
      awsRegion: 'us-east-1',
      eventSourceARN: streamArn,
    };
  });
  return { Records: out };
}

/** The sum of counted requests of these operations. */
export function countOf(counts: Record<string, number>, ...ops: string[]): number {
  return ops.reduce((sum, op) => sum + (counts[op] ?? 0), 0);
}

/** A document client for the emulated table (binary attributes pass as Uint8Array). */
export function documentClient(endpoint: string): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(dynamodbClient({ endpoint }));
}
