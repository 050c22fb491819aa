/**
 * `udpwatch replay-failures`: reads the aggregate's on-failure queue (SQS)
 * and replays each message's range of stream records (see failure-replay.ts).
 */
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import {
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { CliError, EXIT, UsageError } from './cli-errors.js';
import {
  type FailureMessageEnvelope,
  type FailureMessageSource,
  replayFailures,
} from './failure-replay.js';
import { isLoopbackHost } from './sigv4-fetch.js';

const COMMAND = 'replay-failures';

/** The command's help text. */
export const REPLAY_HELP = `Usage: udpwatch replay-failures --queue-url <url> [options]

Puts the stream records the aggregate function gave up on back into the stream.
Each message of the on-failure queue names a shard and a sequence-number range,
not the data: the records of that range are read back from the stream and put
again byte for byte (the store ignores a part it already holds). A message is
deleted only after every record of its range was put again; a message that
cannot be replayed (records past the stream retention, not a failure record)
stays in the queue and is reported. Fix what made the batches fail first.

Options:
  --queue-url <url>         the on-failure queue (stack output OnFailureQueueUrl)
  --stream <name|arn>       stream to read and put to (default: the one in each message)
  --dry-run                 read the queue and the ranges, report, change nothing
  --max-messages <n>        handle at most n messages, 1..10000 (default: 10000)
  --region <region>         AWS region (default: from the queue URL, else $AWS_REGION)
  --kinesis-endpoint <url>  Kinesis endpoint override (local mode: http://127.0.0.1:4567)
  -h, --help                show help

Exit codes: 0 every message replayed, 2 bad usage, 3 the queue could not be read,
5 some message left in the queue.`;

/** One line of the tool's help that lists this command. */
export const REPLAY_SUMMARY = {
  usage: 'replay-failures --queue-url <url>',
  summary: 'Put the records the aggregate gave up on back into the stream.',
};

/** What the command needs besides its arguments. */
export interface ReplayCommandIo {
  stdout: Writable;
  stderr: Writable;
  env: Record<string, string | undefined>;
}

/** The region in an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>). */
function regionOfQueue(url: URL): string | undefined {
  return /^sqs[.-]([a-z0-9-]+)\.amazonaws\.com/.exec(url.host)?.[1];
}

/** Reads a queue's messages once each (under dry run they stay visible for others). */
export function sqsFailureSource(
  sqs: SQSClient,
  queueUrl: string,
  options: { dryRun: boolean },
): FailureMessageSource {
  const seen = new Set<string>();
  const handles = new Map<string, string>();
  return {
    async receive(max) {
      // Visibility long enough for a replay of 10 messages; under dry run short, so nothing is held.
      for (let polls = 0; polls < 3; polls++) {
        const res = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: Math.min(10, Math.max(1, max)),
            WaitTimeSeconds: 1,
            VisibilityTimeout: options.dryRun ? 1 : 300,
          }),
        );
        const fresh = (res.Messages ?? []).filter(
          (m: Message) => m.MessageId && !seen.has(m.MessageId),
        );
        if ((res.Messages ?? []).length === 0) return [];
        if (fresh.length === 0) continue;
        return fresh.map((m) => {
          seen.add(m.MessageId!);
          if (m.ReceiptHandle) handles.set(m.MessageId!, m.ReceiptHandle);
          return { id: m.MessageId!, body: m.Body ?? '' };
        });
      }
      return [];
    },
    async delete(message: FailureMessageEnvelope) {
      const handle = handles.get(message.id);
      if (!handle) throw new Error(`no receipt handle for message ${message.id}`);
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: handle }));
    },
  };
}

function write(stream: Writable, text: string): void {
  stream.write(text);
}

/** Runs `udpwatch replay-failures <args>`; returns the exit code. */
export async function runReplayFailures(
  args: readonly string[],
  io: ReplayCommandIo,
): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(args).values;
  } catch (err) {
    throw new UsageError((err as Error).message, COMMAND);
  }
  if (values.help) {
    write(io.stdout, `${REPLAY_HELP}\n`);
    return EXIT.ok;
  }
  if (!values['queue-url']) throw new UsageError('--queue-url is required', COMMAND);
  let queueUrl: URL;
  try {
    queueUrl = new URL(values['queue-url']);
  } catch {
    throw new UsageError(
      `--queue-url: ${JSON.stringify(values['queue-url'])} is not a URL (example: https://sqs.eu-west-1.amazonaws.com/123456789012/udpwatch-aggregate-failures)`,
      COMMAND,
    );
  }
  let maxMessages = 10_000;
  if (values['max-messages'] !== undefined) {
    const text = values['max-messages'];
    if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 10_000) {
      throw new UsageError(
        `--max-messages must be a whole number from 1 to 10000, got ${JSON.stringify(text)}`,
        COMMAND,
      );
    }
    maxMessages = Number(text);
  }
  let kinesisEndpoint: string | undefined;
  if (values['kinesis-endpoint'] !== undefined) {
    try {
      kinesisEndpoint = new URL(values['kinesis-endpoint']).toString();
    } catch {
      throw new UsageError(
        `--kinesis-endpoint: ${JSON.stringify(values['kinesis-endpoint'])} is not a URL`,
        COMMAND,
      );
    }
  }
  const region = values.region ?? regionOfQueue(queueUrl) ?? io.env.AWS_REGION;
  const local = isLoopbackHost(queueUrl.hostname);
  if (!region && !local) {
    throw new UsageError(
      `cannot tell the AWS region of ${queueUrl.host}: pass --region or set AWS_REGION`,
      COMMAND,
    );
  }
  // Emulators take any credentials; a real account uses the default chain.
  const localCreds =
    local && !io.env.AWS_ACCESS_KEY_ID && !io.env.AWS_PROFILE
      ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }
      : {};
  const sqs = new SQSClient({
    region: region ?? 'us-east-1',
    ...(local ? { endpoint: queueUrl.origin } : {}),
    ...localCreds,
  });
  const kinesis = new KinesisClient({
    region: region ?? 'us-east-1',
    ...(kinesisEndpoint ? { endpoint: kinesisEndpoint } : {}),
    ...localCreds,
  });
  const dryRun = values['dry-run'] ?? false;
  try {
    const report = await replayFailures({
      kinesis,
      source: sqsFailureSource(sqs, queueUrl.toString(), { dryRun }),
      ...(values.stream !== undefined ? { stream: values.stream } : {}),
      dryRun,
      maxMessages,
      log: (line) => write(io.stdout, `${line}\n`),
    });
    const verb = dryRun ? 'would replay' : 'replayed';
    write(
      io.stdout,
      `${report.messages} messages: ${verb} ${report.replayed} (${report.records} records), ${report.failed} left in the queue\n`,
    );
    return report.failed > 0 ? EXIT.failed : EXIT.ok;
  } catch (err) {
    // The queue itself could not be read: nothing was deleted.
    throw new CliError(
      `cannot read the on-failure queue ${queueUrl}: ${(err as Error).message}; nothing was deleted`,
      EXIT.unreachable,
    );
  } finally {
    sqs.destroy();
    kinesis.destroy();
  }
}

function parse(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    options: {
      'queue-url': { type: 'string' },
      stream: { type: 'string' },
      'dry-run': { type: 'boolean' },
      'max-messages': { type: 'string' },
      region: { type: 'string' },
      'kinesis-endpoint': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
    strict: true,
  });
}
