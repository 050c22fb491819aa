/**
 * `npm start`: the whole pipeline on this machine, with no AWS account.
 * Starts the local stack (emulators, event-source poller feeding the real
 * aggregate function, HTTP API in front of the real query function,
 * summarize schedule, TTL sweeper), says where everything listens, and stops
 * cleanly on Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { SUMMARY_LAG_SECONDS } from '../contract/block.js';
import { ENV } from '../contract/resources.js';
import { type ServiceAlarms, ServiceAlarmsSchema } from '../contract/service-alarms.js';
import type { FlowLine } from '../contract/wire.js';
import { buildPage } from '../ui/build-page.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './aws-clients.js';
import { LocalCursorKeys } from './cursor-keys.js';
import { startDemoClients } from './demo/demo-clients.js';
import { PortInUseError } from './emulators.js';
import type { PollerFailure } from './event-source-poller.js';
import { HOOK_PATH, type LocalChild, startDemoDaemon, startLocalAgent } from './local-agent.js';
import {
  describeTransition,
  LocalAlarms,
  localAlarmSource,
  type ServiceCounts,
} from './local-alarms.js';
import { type LocalHandlers, type LocalStack, startLocalStack } from './local-stack.js';

/** Where local mode listens unless told otherwise. */
export const DEFAULT_LOCAL_PORTS = { kinesis: 4567, dynamodb: 4568, api: 7787 } as const;
/** Where local mode keeps the agent's state and hook socket unless told otherwise. */
const LOCAL_DIR = join(tmpdir(), 'udpwatch-local');
/** The demo daemon's service name and default port. */
export const DEMO_SERVICE = 'demo-echo';
const DEMO_PORT = 5300;

export const USAGE = `Usage: npm start -- [options]

Runs the udpwatch pipeline locally: Kinesis and DynamoDB emulators, the
aggregate, query and summarize functions, and the HTTP API.

Options:
  --kinesis-port N    Kinesis endpoint port (default ${DEFAULT_LOCAL_PORTS.kinesis})
  --dynamodb-port N   DynamoDB endpoint port (default ${DEFAULT_LOCAL_PORTS.dynamodb})
  --api-port N        HTTP API port (default ${DEFAULT_LOCAL_PORTS.api})
  --host ADDR         address to listen on (default 127.0.0.1)
  --data-dir DIR      keep the stream and table on disk in DIR (default: in memory)
  --demo              also run a demo UDP daemon (service ${DEMO_SERVICE}) under the
                      dgram hook and simulated clients on 127.0.0.2-5
  --demo-port N       the demo daemon's UDP port (default ${DEMO_PORT})
  --no-agent          do not run a host agent (only the AWS side)
  --agent-state-dir D the agent's id, sequence and spool (default ${join(LOCAL_DIR, 'agent')})
  --hook-socket PATH  where the agent listens for hooked daemons
                      (default ${join(LOCAL_DIR, 'hook.sock')})
  --alarms JSON|@FILE per-service client-count alarms, the same form as the CDK
                      context serviceAlarms, e.g. '{"${DEMO_SERVICE}":{"min":8}}'
  --alarm-period SEC  seconds per alarm evaluation period (default 60)
  --verbose           show the functions' own logs and metrics output
  -h, --help          show this help`;

/** The parsed command line of npm start. */
export interface StartFlags {
  kinesisPort: number;
  dynamodbPort: number;
  apiPort: number;
  host: string;
  dataDir?: string;
  demo: boolean;
  demoPort: number;
  agent: boolean;
  agentStateDir: string;
  hookSocket: string;
  alarms: ServiceAlarms;
  alarmPeriodSeconds: number;
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

function alarmPeriod(raw: string | undefined): number {
  if (raw === undefined) return 60;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 1 || value > 3600) {
    throw new UsageError(`--alarm-period must be 1-3600 seconds, got "${raw}"`);
  }
  return value;
}

/** Reads `--alarms` (JSON, or @file holding JSON) with the deployment's schema. */
export function parseAlarms(raw: string | undefined): ServiceAlarms {
  if (raw === undefined) return {};
  let text = raw;
  if (raw.startsWith('@')) {
    try {
      text = readFileSync(raw.slice(1), 'utf8');
    } catch (err) {
      throw new UsageError(`--alarms: cannot read ${raw.slice(1)}: ${(err as Error).message}`);
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--alarms is not JSON: ${(err as Error).message}`);
  }
  const parsed = ServiceAlarmsSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`--alarms ${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data;
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
        demo: { type: 'boolean' },
        'demo-port': { type: 'string' },
        'no-agent': { type: 'boolean' },
        'agent-state-dir': { type: 'string' },
        'hook-socket': { type: 'string' },
        alarms: { type: 'string' },
        'alarm-period': { type: 'string' },
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
    demo: v.demo ?? false,
    demoPort: port('demo-port', v['demo-port'], DEMO_PORT),
    agent: !(v['no-agent'] ?? false),
    agentStateDir: v['agent-state-dir'] ?? join(LOCAL_DIR, 'agent'),
    hookSocket: v['hook-socket'] ?? join(LOCAL_DIR, 'hook.sock'),
    alarms: parseAlarms(v.alarms),
    alarmPeriodSeconds: alarmPeriod(v['alarm-period']),
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

/**
 * Imports the real function handlers; called once the stack has set their
 * environment. The query handler answers GET /v1/alarms from `alarms`
 * (local mode's evaluation of `--alarms`), where a deployed one asks CloudWatch.
 */
export async function loadFunctionHandlers(alarms?: LocalAlarms): Promise<LocalHandlers> {
  const [aggregate, query, summarize, rollup, config] = await Promise.all([
    import('../functions/aggregate/handler.js'),
    import('../functions/query/handler.js'),
    import('../functions/summarize/handler.js'),
    import('../functions/rollup/handler.js'),
    import('../functions/store/config.js'),
  ]);
  // The deployed handler reads its keys from Secrets Manager; here the same
  // code path gets them from memory (the configured key, or a random one).
  const cursorKeys = new LocalCursorKeys(process.env[ENV.cursorKey]);
  return {
    aggregate: aggregate.handler as LocalHandlers['aggregate'],
    query: query.createQueryHandler(config.configFromEnv(), {
      cursorKeys,
      alarms: localAlarmSource(alarms),
    }) as LocalHandlers['query'],
    summarize: summarize.handler as LocalHandlers['summarize'],
    rollup: rollup.handler as LocalHandlers['rollup'],
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
export function readyMessage(at: Endpoints, now = Date.now(), extra: string[] = []): string {
  const api = at.apiUrl ?? '(not started)';
  const line = JSON.stringify(exampleFlowLine(now));
  return [
    '',
    'udpwatch local pipeline is running',
    `  HTTP API   ${api}        try: curl ${api}/v1/services`,
    `  Kinesis    ${at.kinesisEndpoint}   stream ${at.streamName}`,
    `  DynamoDB   ${at.dynamodbEndpoint}   table  ${at.tableName}`,
    `  data       ${at.dataDir ? `on disk in ${at.dataDir}` : 'in memory (gone on exit; --data-dir keeps it)'}`,
    ...extra,
    '',
    'Put a connection-log record with the AWS CLI (any credentials work locally):',
    `  AWS_ACCESS_KEY_ID=${LOCAL_CREDENTIALS.accessKeyId} AWS_SECRET_ACCESS_KEY=${LOCAL_CREDENTIALS.secretAccessKey} AWS_REGION=${LOCAL_REGION} \\`,
    `  aws kinesis put-record --endpoint-url ${at.kinesisEndpoint} --stream-name ${at.streamName} \\`,
    `    --partition-key cli-example --cli-binary-format raw-in-base64-out --data '${line}'`,
    '',
    `Then: udpwatch clients dns --api ${api}`,
    '      udpwatch top',
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

/** Reads active counts of the alarmed services through the local API, once per period. */
function startLocalAlarmLoop(
  flags: StartFlags,
  alarms: LocalAlarms | undefined,
  apiUrl: string | undefined,
): NodeJS.Timeout | undefined {
  if (!alarms || !apiUrl) return undefined;
  const tick = async () => {
    const counts = new Map<string, ServiceCounts>();
    for (const service of alarms.services()) {
      try {
        const res = await fetch(`${apiUrl}/v1/services/${encodeURIComponent(service)}/count`);
        if (!res.ok) continue;
        const body = (await res.json()) as { endpoints: number; ips: number };
        counts.set(service, { endpoints: body.endpoints, ips: body.ips });
      } catch {
        // An unanswered period is missing data, as in CloudWatch.
      }
    }
    for (const t of alarms.evaluate(counts, Date.now())) {
      console.log(`alarm: ${new Date(t.at).toISOString()} ${describeTransition(t)}`);
    }
  };
  const timer = setInterval(() => void tick(), flags.alarmPeriodSeconds * 1000);
  timer.unref();
  return timer;
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
  // One evaluation: the loop below feeds it, the API's /v1/alarms shows it.
  const alarms = Object.keys(flags.alarms).length > 0 ? new LocalAlarms(flags.alarms) : undefined;
  console.log('… building the web view');
  // The pipeline does not need the page: without it the API still runs, and says why.
  const page = await buildPage().then(
    (built) => built.html,
    (err: unknown) => {
      console.warn(`warning: the web view is not served: ${(err as Error).message}`);
      return undefined;
    },
  );
  try {
    stack = await startLocalStack({
      ...(page !== undefined ? { page } : {}),
      host: flags.host,
      ports: { kinesis: flags.kinesisPort, dynamodb: flags.dynamodbPort, api: flags.apiPort },
      dataDir: flags.dataDir,
      loadHandlers: () => loadFunctionHandlers(alarms),
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
  const children: LocalChild[] = [];
  let demoClients: ReturnType<typeof startDemoClients> | undefined;
  const extra: string[] = [];
  if (stack.api && page !== undefined) {
    extra.push(`  web view   ${stack.api.url}/   (docs/ui.md)`);
  }
  // Clients first, then the daemon and the agent (newest first), then the AWS side.
  const stopAll = async () => {
    await demoClients?.stop();
    for (const c of children.reverse()) await c.stop();
    await stack.stop();
  };
  try {
    if (flags.agent) {
      console.log('… host agent');
      const agent = await startLocalAgent({
        kinesisEndpoint: stack.emulators.kinesisEndpoint,
        streamName: stack.emulators.streamName,
        stateDir: flags.agentStateDir,
        hookSocket: flags.hookSocket,
        services: flags.demo ? [{ name: DEMO_SERVICE, port: flags.demoPort }] : [],
        onLine: (line) => console.log(`agent: ${line.replace(/^\S+ udpwatch-agent: /, '')}`),
      });
      children.push(agent);
      extra.push(
        `  agent      pid ${agent.pid}, state in ${flags.agentStateDir}`,
        `  hook       node --import ${HOOK_PATH} your-daemon.js`,
        `             with UDPWATCH_HOOK_SOCKET=${flags.hookSocket}`,
      );
    }
    if (flags.demo) {
      if (!flags.agent) throw new UsageError('--demo needs the agent; leave out --no-agent');
      console.log('… demo daemon and clients');
      const daemon = await startDemoDaemon({
        host: '127.0.0.1',
        port: flags.demoPort,
        hookSocket: flags.hookSocket,
        onLine: (line) => flags.verbose && console.log(`demo: ${line}`),
      });
      children.push(daemon);
      demoClients = startDemoClients({ target: { host: '127.0.0.1', port: flags.demoPort } });
      extra.push(
        `  demo       ${DEMO_SERVICE} on 127.0.0.1:${flags.demoPort} (pid ${daemon.pid}), clients on 127.0.0.2-5`,
        `             try: udpwatch clients ${DEMO_SERVICE}   (or udpwatch top ${DEMO_SERVICE})`,
      );
    }
  } catch (err) {
    await stopAll();
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    const message = (err as Error).message;
    console.error(`error: ${message}`);
    if (flags.demo && message.includes('EADDRINUSE')) {
      console.error(
        `UDP port ${flags.demoPort} is taken; choose another with --demo-port <port> (e.g. npm start -- --demo --demo-port ${flags.demoPort + 100})`,
      );
    }
    return 1;
  }
  // The schedule's first run is a minute away. An early one summarizes at once
  // the latest complete minute (it ended 2-3 minutes ago) of each listed
  // service, so services kept on disk (--data-dir) get fresh counts. On a fresh
  // start that minute is before every service's first traffic: it reads its
  // window, finds no blocks and writes no summary, so counts show "-" (not
  // counted yet) until the first minute with traffic is complete.
  setTimeout(() => void stack.summarize?.runOnce().catch(() => {}), 5_000).unref();
  if (stack.summarize) {
    extra.push(
      '  summaries  every 60 s, of each minute once its blocks are in ' +
        `(${SUMMARY_LAG_SECONDS} s after it ends): client counts show up within ~3 minutes`,
    );
  }
  const alarmTimer = startLocalAlarmLoop(flags, alarms, stack.api?.url);
  if (alarmTimer)
    extra.push(
      `  alarms     ${Object.keys(flags.alarms).join(', ')} every ${flags.alarmPeriodSeconds}s`,
    );
  console.log(readyMessage(stackEndpoints(stack, flags.dataDir), Date.now(), extra));

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  console.log(`\n${signal}: stopping…`);
  // A second Ctrl-C while stopping means "now".
  process.once('SIGINT', () => process.exit(130));
  if (alarmTimer) clearInterval(alarmTimer);
  await stopAll();
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
