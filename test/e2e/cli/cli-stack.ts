/**
 * The real local pieces the CLI suites run against: kinesalite and dynalite,
 * the aggregate handler fed by the event-source poller, and the query handler
 * behind the API Gateway adapter. Also runs the CLI as a child process.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { encodeRecords, type UnsequencedLine } from '../../../contract/codec.js';
import { flowBucket, partitionKey } from '../../../contract/partitioning.js';
import { createAggregateHandler } from '../../../functions/aggregate/handler.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import type { FunctionConfig } from '../../../functions/store/config.js';
import { type ApiServer, startApiServer } from '../../../local/api-gateway-adapter.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { startEventSourcePoller } from '../../../local/event-source-poller.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** Credentials and region the functions' SDK reads (the emulators accept any). */
export function useLocalCredentials(): void {
  process.env.AWS_ACCESS_KEY_ID = 'local';
  process.env.AWS_SECRET_ACCESS_KEY = 'local';
  process.env.AWS_REGION = 'us-east-1';
  process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
}

/** The emulators with the real handlers wired to them and an API in front. */
export interface CliStack {
  emulators: Emulators;
  api: ApiServer;
  config: FunctionConfig;
  /** Puts agent records into the stream and waits until the aggregate handler has folded them. */
  ingest(agentId: string, lines: readonly UnsequencedLine[]): Promise<void>;
  stop(): Promise<void>;
}

/** Starts emulators, an event-source poller with the aggregate handler, and the query API. */
export async function startCliStack(): Promise<CliStack> {
  useLocalCredentials();
  const emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  const config: FunctionConfig = {
    table: emulators.tableName,
    dynamodbEndpoint: emulators.dynamodbEndpoint,
    activeWindowSeconds: 300,
    retentionHours: 24,
    cursorKey: 'cli-suite-cursor-key',
  };
  const aggregate = createAggregateHandler(config);
  const api = await startApiServer({ handler: createQueryHandler(config), port: 0 });
  const seqs = new Map<string, number>();
  // One poller for the whole run, as in `npm start`: each record is delivered once (plus retries).
  const failures: string[] = [];
  const poller = startEventSourcePoller({
    kinesis: emulators.kinesis,
    streamName: emulators.streamName,
    handler: aggregate,
    startingPosition: 'TRIM_HORIZON',
    onFailure: (f) => {
      failures.push(`${f.records.length} records: ${f.lastError}`);
    },
  });
  return {
    emulators,
    api,
    config,
    async ingest(agentId, lines) {
      // As an agent ships: one record per (agent, bucket), a fresh seq each.
      const byBucket = new Map<number, UnsequencedLine[]>();
      for (const l of lines) {
        const bucket = l.type === 'flow' ? flowBucket(l.service, l.remoteIp) : 0;
        byBucket.set(bucket, [...(byBucket.get(bucket) ?? []), l]);
      }
      const records = [...byBucket].flatMap(([bucket, group]) =>
        encodeRecords(group, {
          nextSeq: () => {
            const next = (seqs.get(agentId) ?? 0) + 1;
            seqs.set(agentId, next);
            return next;
          },
        }).map((r) => ({ PartitionKey: partitionKey(agentId, bucket), Data: r.data })),
      );
      const out = await emulators.kinesis.send(
        new PutRecordsCommand({ StreamName: emulators.streamName, Records: records }),
      );
      if (out.FailedRecordCount) throw new Error(`${out.FailedRecordCount} records were not put`);
      failures.length = 0;
      await poller.drain(30_000);
      if (failures.length)
        throw new Error(`the aggregate handler failed on ${failures.join('; ')}`);
    },
    async stop() {
      await poller.stop();
      await api.stop();
      await emulators.stop();
    },
  };
}

/** What a CLI run printed and how it ended. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node bin/udpwatch.js ...args` without blocking this process (the
 * emulators and API live here and must keep answering), bounded in time.
 */
export function runCli(
  args: readonly string[],
  options: {
    env?: Record<string, string>;
    command?: readonly string[];
    input?: (child: ReturnType<typeof spawn>, stdout: () => string) => void;
    timeoutMs?: number;
  } = {},
): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (!options.env?.UDPWATCH_API) delete env.UDPWATCH_API;
  const [cmd, ...cmdArgs] = options.command ?? [process.execPath, 'bin/udpwatch.js', ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, cmdArgs, { cwd: REPO, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `udpwatch ${args.join(' ')} did not finish in time\nstdout:\n${stdout}\nstderr:\n${stderr}`,
        ),
      );
    }, options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (options.input) options.input(child, () => stdout);
    else child.stdin!.end();
  });
}

/** The data rows of the first table in some output: lines after the heading, up to a blank line. */
export function tableRows(output: string, heading: RegExp): string[][] {
  const lines = output.split('\n');
  const start = lines.findIndex((l) => heading.test(l));
  if (start < 0) throw new Error(`no table headed ${heading} in:\n${output}`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    rows.push(line.trim().split(/\s{2,}/));
  }
  return rows;
}
