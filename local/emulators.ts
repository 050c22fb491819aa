/**
 * Starts kinesalite and dynalite in-process and creates the stream and table
 * exactly as `contract/resources.ts` defines them.
 */

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException as TableInUseException,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  type KinesisClient,
  ResourceInUseException,
} from '@aws-sdk/client-kinesis';
import dynalite from 'dynalite';
import kinesalite from 'kinesalite';
import { RESOURCE_NAMES, TABLE } from '../contract/resources.js';
import { dynamodbClient, kinesisClient } from './aws-clients.js';

export interface EmulatorOptions {
  host?: string;
  /** 0 picks a free port (tests); npm start uses 4567. */
  kinesisPort?: number;
  /** 0 picks a free port (tests); npm start uses 4568. */
  dynamodbPort?: number;
  /** Keep data on disk here instead of in memory. */
  dataDir?: string;
  streamName?: string;
  tableName?: string;
  shardCount?: number;
}

/** Running emulators with the stream and table created, and clients for them. */
export interface Emulators {
  kinesisEndpoint: string;
  dynamodbEndpoint: string;
  streamName: string;
  tableName: string;
  kinesis: KinesisClient;
  dynamodb: DynamoDBClient;
  stop(): Promise<void>;
}

/** Raised when a port is taken, naming it so the user can pick another. */
export class PortInUseError extends Error {
  constructor(
    readonly what: string,
    readonly host: string,
    readonly port: number,
  ) {
    super(`${what} port ${host}:${port} is already in use`);
  }
}

function listen(server: Server, what: string, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new PortInUseError(what, host, port) : err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

/** Creates the connection-log stream, tolerating one that exists. */
export async function createStream(
  kinesis: KinesisClient,
  streamName: string,
  shardCount: number,
): Promise<void> {
  try {
    await kinesis.send(new CreateStreamCommand({ StreamName: streamName, ShardCount: shardCount }));
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
  }
  for (let i = 0; i < 100; i++) {
    const d = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: streamName }));
    if (d.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`stream ${streamName} did not become ACTIVE`);
}

/** Creates the table with its key layout (no index, as deployed), tolerating one that exists. */
export async function createTable(dynamodb: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await dynamodb.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [TABLE.partitionKey, TABLE.sortKey].map((key) => ({
          AttributeName: key.name,
          AttributeType: key.type,
        })),
        KeySchema: [
          { AttributeName: TABLE.partitionKey.name, KeyType: 'HASH' },
          { AttributeName: TABLE.sortKey.name, KeyType: 'RANGE' },
        ],
      }),
    );
  } catch (err) {
    if (!(err instanceof TableInUseException)) throw err;
  }
  await waitUntilTableExists(
    { client: dynamodb, maxWaitTime: 30, minDelay: 1 },
    { TableName: tableName },
  );
  // A table kept on disk (--data-dir) by an older layout still has its indexes
  // and items nothing reads any more: say so rather than run on it.
  const described = await dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
  const indexes = described.Table?.GlobalSecondaryIndexes;
  if (indexes && indexes.length > 0) {
    throw new Error(
      `table ${tableName} has secondary indexes (${indexes.map((ix) => ix.IndexName).join(', ')}): ` +
        'it was created by an older udpwatch layout; delete its data directory or use another one',
    );
  }
}

/** Starts both emulators, creates the stream and the table, and returns clients for them. */
export async function startEmulators(options: EmulatorOptions = {}): Promise<Emulators> {
  const host = options.host ?? '127.0.0.1';
  const streamName = options.streamName ?? RESOURCE_NAMES.stream;
  const tableName = options.tableName ?? RESOURCE_NAMES.table;
  const kinesisServer: Server = kinesalite({
    createStreamMs: 0,
    shardLimit: 50,
    deleteStreamMs: 0,
    updateStreamMs: 0,
    ...(options.dataDir ? { path: `${options.dataDir}/kinesis` } : {}),
  });
  const dynamoServer: Server = dynalite({
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
    ...(options.dataDir ? { path: `${options.dataDir}/dynamodb` } : {}),
  });
  const kinesisPort = await listen(kinesisServer, 'Kinesis', host, options.kinesisPort ?? 0);
  let dynamodbPort: number;
  try {
    dynamodbPort = await listen(dynamoServer, 'DynamoDB', host, options.dynamodbPort ?? 0);
  } catch (err) {
    await close(kinesisServer);
    throw err;
  }
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const kinesisEndpoint = `http://${urlHost}:${kinesisPort}`;
  const dynamodbEndpoint = `http://${urlHost}:${dynamodbPort}`;
  const kinesis = kinesisClient({ endpoint: kinesisEndpoint });
  const dynamodb = dynamodbClient({ endpoint: dynamodbEndpoint });
  await createStream(kinesis, streamName, options.shardCount ?? 2);
  await createTable(dynamodb, tableName);
  return {
    kinesisEndpoint,
    dynamodbEndpoint,
    streamName,
    tableName,
    kinesis,
    dynamodb,
    async stop() {
      kinesis.destroy();
      dynamodb.destroy();
      await Promise.all([close(kinesisServer), close(dynamoServer)]);
    },
  };
}
