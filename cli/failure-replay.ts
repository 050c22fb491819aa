/**
 * Replays what the aggregate's event source gave up on: each on-failure
 * message names a shard and a sequence-number range; the records of that
 * range are read back from the stream and put into it again, byte for byte,
 * with their partition keys. The store writes every block part by content,
 * so a record that had partly landed, or lands twice, changes nothing. A
 * message is deleted only once every record of its range was put again.
 */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { type KinesisBatchInfo, KinesisFailureMessageSchema } from '../contract/failure-message.js';

/** One message of the on-failure queue. */
export interface FailureMessageEnvelope {
  /** The queue's id of the message (for logs). */
  id: string;
  body: string;
}

/** Where on-failure messages come from: the SQS queue, or anything else in tests. */
export interface FailureMessageSource {
  /** Up to `max` messages not handed out before in this run; empty when there are no more. */
  receive(max: number): Promise<FailureMessageEnvelope[]>;
  /** Removes a message for good. */
  delete(message: FailureMessageEnvelope): Promise<void>;
}

export interface ReplayOptions {
  kinesis: KinesisClient;
  source: FailureMessageSource;
  /** Stream to read and put to; default: the stream ARN in each message. */
  stream?: string;
  /** Read and report, put and delete nothing. */
  dryRun?: boolean;
  /** Messages handled at most (default 10 000). */
  maxMessages?: number;
  /** Records read per range at most (a message names at most 10 000). */
  maxRecordsPerRange?: number;
  /** One line per message, and problems. */
  log: (line: string) => void;
  /** Pause between retries of records Kinesis refused (ms, default 200). */
  retryDelayMs?: number;
}

/** What a replay did. */
export interface ReplayReport {
  /** Messages read. */
  messages: number;
  /** Messages whose range was put again (and deleted), or would be under dry run. */
  replayed: number;
  /** Records put again (or found, under dry run). */
  records: number;
  /** Messages left in the queue because something failed; each was logged. */
  failed: number;
}

/** Kinesis PutRecords limits. */
const MAX_RECORDS_PER_CALL = 500;
const MAX_BYTES_PER_CALL = 5 * 1024 * 1024;
/** GetRecords calls per range at most, so a stream that keeps answering empty pages cannot loop us. */
const MAX_PAGES_PER_RANGE = 1_000;
/** Attempts of a PutRecords chunk whose records Kinesis keeps refusing (throttling). */
const PUT_ATTEMPTS = 6;

interface RangeRecord {
  partitionKey: string;
  data: Uint8Array;
  sequenceNumber: string;
}

/** A problem with one message: logged, the message stays in the queue. */
class MessageProblem extends Error {}

const target = (stream: string) =>
  stream.startsWith('arn:') ? { StreamARN: stream } : { StreamName: stream };

const describe = (err: unknown) =>
  err instanceof Error ? `${err.name}: ${err.message}` : String(err);

/** Reads the records of one range, in order; throws MessageProblem if the range is not all there. */
async function readRange(
  kinesis: KinesisClient,
  stream: string,
  info: KinesisBatchInfo,
  maxRecords: number,
): Promise<RangeRecord[]> {
  const start = BigInt(info.startSequenceNumber);
  const end = BigInt(info.endSequenceNumber);
  if (end < start) {
    throw new MessageProblem(
      `its range ends (${info.endSequenceNumber}) before it starts (${info.startSequenceNumber})`,
    );
  }
  let iterator: string | undefined;
  try {
    const res = await kinesis.send(
      new GetShardIteratorCommand({
        ...target(stream),
        ShardId: info.shardId,
        ShardIteratorType: 'AT_SEQUENCE_NUMBER',
        StartingSequenceNumber: info.startSequenceNumber,
      }),
    );
    iterator = res.ShardIterator;
  } catch (err) {
    throw new MessageProblem(
      `cannot read shard ${info.shardId} of ${stream} at ${info.startSequenceNumber} (${describe(err)}); ` +
        'if the records are older than the stream retention they are gone',
    );
  }
  const out: RangeRecord[] = [];
  for (let page = 0; iterator && page < MAX_PAGES_PER_RANGE; page++) {
    const res = await kinesis.send(
      new GetRecordsCommand({
        ShardIterator: iterator,
        Limit: Math.min(10_000, maxRecords - out.length + 1),
      }),
    );
    for (const r of res.Records ?? []) {
      const seq = BigInt(r.SequenceNumber ?? '0');
      if (seq > end) return checkStart(out, info);
      if (seq < start) continue;
      if (out.length >= maxRecords) {
        throw new MessageProblem(`its range holds more than ${maxRecords} records`);
      }
      out.push({
        partitionKey: r.PartitionKey ?? '',
        data: r.Data ?? new Uint8Array(),
        sequenceNumber: r.SequenceNumber ?? '',
      });
      if (seq === end) return checkStart(out, info);
    }
    iterator = res.NextShardIterator;
    // At the tip with the end not reached: the range's end is not in the stream.
    if ((res.Records ?? []).length === 0 && (res.MillisBehindLatest ?? 0) === 0) break;
  }
  throw new MessageProblem(
    `read ${out.length} records of shard ${info.shardId} but not its end ${info.endSequenceNumber}`,
  );
}

function checkStart(records: RangeRecord[], info: KinesisBatchInfo): RangeRecord[] {
  if (records[0]?.sequenceNumber !== info.startSequenceNumber) {
    throw new MessageProblem(
      `the record at ${info.startSequenceNumber} is no longer in shard ${info.shardId} (past the stream retention?)`,
    );
  }
  return records;
}

/** Puts records again, in chunks within the call limits, retrying what Kinesis refuses. */
async function putAgain(
  kinesis: KinesisClient,
  stream: string,
  records: RangeRecord[],
  retryDelayMs: number,
): Promise<void> {
  let i = 0;
  while (i < records.length) {
    let chunk: RangeRecord[] = [];
    let bytes = 0;
    while (i < records.length && chunk.length < MAX_RECORDS_PER_CALL) {
      const r = records[i]!;
      const size = r.data.length + Buffer.byteLength(r.partitionKey);
      if (chunk.length > 0 && bytes + size > MAX_BYTES_PER_CALL) break;
      chunk.push(r);
      bytes += size;
      i++;
    }
    for (let attempt = 1; chunk.length > 0; attempt++) {
      let refused: RangeRecord[] = chunk;
      let why = '';
      try {
        const res = await kinesis.send(
          new PutRecordsCommand({
            ...target(stream),
            Records: chunk.map((r) => ({ PartitionKey: r.partitionKey, Data: r.data })),
          }),
        );
        const results = res.Records ?? [];
        refused = chunk.filter((_, k) => !results[k]?.SequenceNumber || results[k]?.ErrorCode);
        why = results.find((r) => r.ErrorCode)?.ErrorCode ?? 'no result';
      } catch (err) {
        why = describe(err);
      }
      chunk = refused;
      if (chunk.length === 0) break;
      if (attempt >= PUT_ATTEMPTS) {
        throw new MessageProblem(
          `Kinesis refused ${chunk.length} records ${PUT_ATTEMPTS} times (${why}); run again later`,
        );
      }
      await new Promise((r) => setTimeout(r, retryDelayMs * attempt));
    }
  }
}

/** Replays every message the source hands out (up to maxMessages). */
export async function replayFailures(options: ReplayOptions): Promise<ReplayReport> {
  const { kinesis, source, log } = options;
  const maxMessages = options.maxMessages ?? 10_000;
  const maxRecords = options.maxRecordsPerRange ?? 10_000;
  const report: ReplayReport = { messages: 0, replayed: 0, records: 0, failed: 0 };
  while (report.messages < maxMessages) {
    const batch = await source.receive(Math.min(10, maxMessages - report.messages));
    if (batch.length === 0) break;
    for (const message of batch) {
      report.messages++;
      try {
        let parsed: unknown;
        try {
          parsed = JSON.parse(message.body);
        } catch {
          throw new MessageProblem('its body is not JSON');
        }
        const checked = KinesisFailureMessageSchema.safeParse(parsed);
        if (!checked.success) {
          const issue = checked.error.issues[0];
          throw new MessageProblem(
            `not a Kinesis event source failure record (${issue?.path.join('.') || 'body'}: ${issue?.message})`,
          );
        }
        const info = checked.data.KinesisBatchInfo;
        const stream = options.stream ?? info.streamArn;
        const records = await readRange(kinesis, stream, info, maxRecords);
        const what = `shard ${info.shardId}, ${info.startSequenceNumber}..${info.endSequenceNumber}, ${records.length} records`;
        if (options.dryRun) {
          log(`would replay message ${message.id}: ${what}`);
        } else {
          await putAgain(kinesis, stream, records, options.retryDelayMs ?? 200);
          await source.delete(message);
          log(`replayed message ${message.id}: ${what}`);
        }
        report.replayed++;
        report.records += records.length;
      } catch (err) {
        report.failed++;
        const why = err instanceof MessageProblem ? err.message : describe(err);
        log(`message ${message.id} left in the queue: ${why}`);
      }
    }
  }
  return report;
}
