/**
 * `npm start`: the whole pipeline on this machine, with no AWS account.
 * Starts the local stack (emulators, event-source poller feeding the real
 * aggregate function, HTTP API in front of the real query function, metrics
 * schedule, TTL sweeper), says where everything listens, and stops cleanly on
 * Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ENV } from '../contract/resources.js';
import type { FlowLine } from '../contract/wire.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './aws-clients.js';
import { PortInUseError } from './emulators.js';
import type { PollerFailure } from './event-source-poller.js';
import { type LocalHandlers, type LocalStack, startLocalStack } from './local-stack.js';

/** Where local mode listens unless told otherwise. */
export const DEFAULT_LOCAL_PORTS = { kinesis: 4567, dynamodb: 4568, api: 7787 } as const;

export const USAGE = `Usage: npm start -- [options]

Runs the udpwatch pipeline locally: Kinesis and DynamoDB emulators, the
aggregate, query and metrics functions, and the HTTP API.

Options:
  --kinesis-port N    Kinesis endpoint port (default ${DEFAULT_LOCAL_PORTS.kinesis})
  --dynamodb-port N   DynamoDB endpoint port (default ${DEFAULT_LOCAL_PORTS.dynamodb})
  --api-port N        HTTP API port (default ${DEFAULT_LOCAL_PORTS.api})
  --host ADDR         address to listen on (default 127.0.0.1)
  --data-dir DIR      keep the stream and table on disk in DIR (default: in memory)
  --verbose           show the functions' own logs and metrics output
  -h, --help          show this help`;

/** The parsed command line of npm start. */
export interface StartFlags {
  kinesisPort: number;
  dynamodbPort: number;
  apiPort: number;
  host: string;
  dataDir?: string;
  verbose: boolean;
  help: boolean;
}

/** A bad command line; its message says what to fix. */
export class UsageError extends Error {}

function port(flag: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 1 || value > 65_535) {
    throw new UsageError(`--${flag} must be a port number 1-65535, got "${raw}"`);
  }
  return value;
}

/** Parses npm start's flags, throwing UsageError on anything it does not understand. */
export function parseStartFlags(argv: string[]): StartFlags {
  let parsed: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'kinesis-port': { type: 'string' },
        'dynamodb-port': { type: 'string' },
        'api-port': { type: 'string' },
        host: { type: 'string' },
        'data-dir': { type: 'string' },
        verbose: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  }
  try {
    parsed = parse();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  return {
    kinesisPort: port('kinesis-port', v['kinesis-port'], DEFAULT_LOCAL_PORTS.kinesis),
    dynamodbPort: port('dynamodb-port', v['dynamodb-port'], DEFAULT_LOCAL_PORTS.dynamodb),
    apiPort: port('api-port', v['api-port'], DEFAULT_LOCAL_PORTS.api),
    host: v.host ?? '127.0.0.1',
    dataDir: v['data-dir'],
    verbose: v.verbose ?? false,
    help: v.help ?? false,
  };
}

/** Explains a taken port and names the flag that moves it. */
export function portInUseMessage(err: PortInUseError): string {
  const flag = { Kinesis: '--kinesis-port', DynamoDB: '--dynamodb-port', API: '--api-port' }[
    err.what
  ];
  return flag
    ? `${err.message}; choose another with ${flag} <port> (e.g. npm start -- ${flag} ${err.port + 100})`
    : err.message;
}

/** Imports the real function handlers; called once the stack has set their environment. */
export async function loadFunctionHandlers(): Promise<LocalHandlers> {
  const [aggregate, query, metrics] = await Promise.all([
    import('../functions/aggregate/handler.js'),
    import('../functions/query/handler.js'),
    import('../functions/metrics/handler.js'),
  ]);
  return {
    aggregate: aggregate.handler as LocalHandlers['aggregate'],
    query: query.handler as LocalHandlers['query'],
    metrics: metrics.handler as LocalHandlers['metrics'],
  };
}

/** A valid flow line for the AWS CLI example, stamped with the current time. */
export function exampleFlowLine(now: number): FlowLine {
  return {
    v: 1,
    type: 'flow',
    agentId: 'cli-example',
    seq: 1,
    host: 'laptop',
    service: 'dns',
    source: 'proc',
    localIp: '127.0.0.1',
    localPort: 53,
    remoteIp: '127.0.0.9',
    remotePort: 40000,
    firstSeen: now,
    lastSeen: now,
    pktsIn: 1,
    bytesIn: 60,
    pktsOut: 1,
    bytesOut: 120,
    sampleRate: 1,
  };
}

/** Where the running pipeline listens, as the ready message reports it. */
export interface Endpoints {
  apiUrl?: string;
  kinesisEndpoint: string;
  dynamodbEndpoint: string;
  streamName: string;
  tableName: string;
  dataDir?: string;
}

/** The endpoints of a running stack. */
export function stackEndpoints(stack: LocalStack, dataDir?: string): Endpoints {
  const { kinesisEndpoint, dynamodbEndpoint, streamName, tableName } = stack.emulators;
  return {
    apiUrl: stack.api?.url,
    kinesisEndpoint,
    dynamodbEndpoint,
    streamName,
    tableName,
    dataDir,
  };
}

/** What npm start prints once everything listens. */
export function readyMessage(at: Endpoints, now = Date.now()): string {
  const api = at.apiUrl ?? '(not started)';
  const line = JSON.stringify(exampleFlowLine(now));
  return [
    '',
    'udpwatch local pipeline is running',
    `  HTTP API   ${api}        try: curl ${api}/v1/services`,
    `  Kinesis    ${at.kinesisEndpoint}   stream ${at.streamName}`,
    `  DynamoDB   ${at.dynamodbEndpoint}   table  ${at.tableName}`,
    `  data       ${at.dataDir ? `on disk in ${at.dataDir}` : 'in memory (gone on exit; --data-dir keeps it)'}`,
    '',
    'Put a connection-log record with the AWS CLI (any credentials work locally):',
    `  AWS_ACCESS_KEY_ID=${LOCAL_CREDENTIALS.accessKeyId} AWS_SECRET_ACCESS_KEY=${LOCAL_CREDENTIALS.secretAccessKey} AWS_REGION=${LOCAL_REGION} \\`,
    `  aws kinesis put-record --endpoint-url ${at.kinesisEndpoint} --stream-name ${at.streamName} \\`,
    `    --partition-key cli-example --cli-binary-format raw-in-base64-out --data '${line}'`,
    '',
    `Then: udpwatch clients dns --api ${api}`,
    'Ctrl-C stops everything.',
    '',
  ].join('\n');
}

function describeFailure(f: PollerFailure): string {
  return (
    `aggregate gave up on ${f.records.length} record(s) of ${f.shardId} ` +
    `(${f.startSequenceNumber}..${f.endSequenceNumber}) after ${f.attempts} attempts: ${f.lastError}`
  );
}

/** Runs npm start; resolves to the process exit code once stopped. */
export async function main(argv: string[]): Promise<number> {
  let flags: StartFlags;
  try {
    flags = parseStartFlags(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`error: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }

  // The SDK's notice about its future Node support says nothing about this run.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  let stack: LocalStack;
  try {
    stack = await startLocalStack({
      host: flags.host,
      ports: { kinesis: flags.kinesisPort, dynamodb: flags.dynamodbPort, api: flags.apiPort },
      dataDir: flags.dataDir,
      loadHandlers: loadFunctionHandlers,
      functionEnv: {
        // Cursors stay valid for this run; set the variable to keep them across restarts.
        [ENV.cursorKey]: process.env[ENV.cursorKey] ?? randomBytes(32).toString('hex'),
        // Quiet functions by default: the terminal is for what the user asked.
        ...(flags.verbose
          ? {}
          : { POWERTOOLS_LOG_LEVEL: 'WARN', POWERTOOLS_METRICS_DISABLED: 'true' }),
      },
      poller: { onFailure: (f) => console.warn(`warning: ${describeFailure(f)}`) },
      onProgress: (step) => console.log(`… ${step}`),
    });
  } catch (err) {
    if (err instanceof PortInUseError) {
      console.error(`error: ${portInUseMessage(err)}`);
      return 1;
    }
    throw err;
  }
  console.log(readyMessage(stackEndpoints(stack, flags.dataDir)));

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  console.log(`\n${signal}: stopping…`);
  // A second Ctrl-C while stopping means "now".
  process.once('SIGINT', () => process.exit(130));
  await stack.stop();
  console.log('stopped');
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error('error:', err instanceof Error ? (err.stack ?? err.message) : err);
      process.exit(1);
    },
  );
}
