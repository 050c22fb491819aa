/**
 * Ships packed records to Kinesis with PutRecords. Every record is written to
 * the disk spool when it is queued, before any call carries it (write-ahead),
 * and leaves the spool only once Kinesis has acknowledged it; so a crash, a
 * hung call or an outage loses nothing that was queued.
 *
 * If the spool cannot be written (permissions, full disk), records wait in
 * memory (bounded, counted in `spooledRecords`) and are moved to the spool as
 * soon as it takes writes again, ahead of anything newer; only these records
 * are lost by a crash, and the log says so when the episode starts.
 *
 * What the store depends on is not order but identity: every part is put
 * under (agent, seq, part) by content, and heartbeats keep the latest `at`,
 * so arrival order is free. A re-sent record must be the same bytes: the
 * spool keeps the encoded record, never re-encodes it. The shipper still
 * keeps order per partition key (one record per key per call, a failed
 * record stays first of its key), which costs little.
 *
 * Losses (spool full, memory bound, stop with an unwritable spool) are
 * counted in `droppedLines`, and every trouble is logged once when it starts
 * and once when it ends, with how much it cost.
 */
import {
  type KinesisClient,
  PutRecordsCommand,
  type PutRecordsRequestEntry,
} from '@aws-sdk/client-kinesis';
import type { DiskSpool } from './disk-spool.js';
import type { ShipRecord } from './record-packer.js';

/** Kinesis PutRecords limits. */
export const MAX_RECORDS_PER_CALL = 500;
export const MAX_BYTES_PER_CALL = 5 * 1024 * 1024;

/** A call unanswered this long is abandoned and its records retried (they stay in the spool). */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

export interface ShipperOptions {
  kinesis: KinesisClient;
  /** Stream name, or its ARN. */
  stream: string;
  spool: DiskSpool;
  /** Records held in memory while the spool cannot be written; beyond it the oldest are dropped, counted. */
  maxMemoryRecords?: number;
  /** Exponential backoff with full jitter: base and cap, in ms. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Whole-call deadline (default DEFAULT_CALL_TIMEOUT_MS). */
  callTimeoutMs?: number;
  /** How often a failing spool is tried again while records wait in memory (default 1000 ms). */
  spoolRetryMs?: number;
  random?: () => number;
  log?: (message: string) => void;
}

/** What the shipper has done, for heartbeats and tests. */
export interface ShipperStats {
  sentRecords: number;
  sentLines: number;
  calls: number;
  failedCalls: number;
  /** Records a call returned as failed (throttled, internal error) and that were retried. */
  retriedRecords: number;
  /** Records waiting in memory because the spool could not be written. */
  memoryRecords: number;
  /** Records waiting to be delivered: in the spool plus in memory. */
  spooledRecords: number;
  /** Lines lost: spool full (oldest first), memory bound, or unwritable spool at stop. */
  droppedLines: number;
  droppedRecords: number;
  outage: boolean;
}

interface Queued {
  id: string;
  record: ShipRecord;
  fromSpool: boolean;
}

/** Describes an SDK error for a log line: its name, HTTP status and code. */
export function describeError(err: unknown): string {
  const e = err as {
    name?: string;
    message?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const status = e.$metadata?.httpStatusCode;
  return [e.name ?? 'Error', status ? `HTTP ${status}` : '', e.code ?? '', e.message ?? '']
    .filter((s) => s !== '')
    .join(' ');
}

const secondsSince = (t: number) => ((Date.now() - t) / 1000).toFixed(1);

/** The shipper; `start()` runs its send loop until `stop()`. */
export class KinesisShipper {
  /** Records the spool refused, oldest first; all newer than everything in the spool. */
  private memory: Queued[] = [];
  private memoryNo = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private attempt = 0;
  private readonly counters = {
    sentRecords: 0,
    sentLines: 0,
    calls: 0,
    failedCalls: 0,
    retriedRecords: 0,
  };
  /** Lost outside the spool: memory bound, or unwritable spool at stop. */
  private readonly lost = { records: 0, lines: 0 };
  private outage: { since: number; calls: number } | null = null;
  private spoolFailure: { since: number; lastTry: number } | null = null;
  private partial: { since: number; retried: number } | null = null;
  /** A loss episode: from the first lost record until nothing waits any more. */
  private losing: { since: number; records: number; lines: number } | null = null;
  private readonly random: () => number;

  constructor(private readonly options: ShipperOptions) {
    this.random = options.random ?? Math.random;
  }

  private log(message: string): void {
    this.options.log?.(message);
  }

  /** Queues records (in order): on disk before this returns, unless the spool refuses them. */
  enqueue(records: readonly ShipRecord[]): void {
    if (records.length === 0) return;
    this.persist(records);
    this.wake?.();
  }

  /** Writes what waits in memory, then `records`, to the spool as one segment; keeps them in memory if it fails. */
  private persist(records: readonly ShipRecord[]): void {
    const spool = this.options.spool;
    const before = this.lossSoFar();
    const spoolDropsBefore = spool.stats().droppedRecords;
    const held = this.memory.length;
    try {
      spool.append([...this.memory.map((q) => q.record), ...records]);
      this.memory = [];
      if (this.spoolFailure) {
        this.log(
          `spool writable again after ${secondsSince(this.spoolFailure.since)} s: ${held} records held in memory are on disk now`,
        );
        this.spoolFailure = null;
      }
    } catch (err) {
      const now = Date.now();
      if (!this.spoolFailure) {
        this.log(
          `${(err as Error).message}; holding records in memory (at most ${this.maxMemory}) and retrying the spool every ${this.spoolRetryMs} ms; they are lost if the agent stops or crashes meanwhile: make the spool directory writable or free disk space`,
        );
        this.spoolFailure = { since: now, lastTry: now };
      }
      this.spoolFailure.lastTry = now;
      for (const record of records) {
        this.memory.push({ id: `m${this.memoryNo++}`, record, fromSpool: false });
      }
      const over = this.memory.length - this.maxMemory;
      if (over > 0) {
        const gone = this.memory.splice(0, over);
        this.countLoss(
          gone.length,
          gone.reduce((n, q) => n + q.record.lines, 0),
          `the spool cannot be written and ${this.maxMemory} records already wait in memory`,
        );
      }
    }
    if (spool.stats().droppedRecords > spoolDropsBefore) {
      this.noteLoss(
        'the spool is full: its oldest records are dropped; raise spoolMaxBytes or restore Kinesis',
        before,
      );
    }
  }

  private get maxMemory(): number {
    return this.options.maxMemoryRecords ?? 10_000;
  }

  private get spoolRetryMs(): number {
    return this.options.spoolRetryMs ?? 1_000;
  }

  private lossSoFar(): { records: number; lines: number } {
    const st = this.stats();
    return { records: st.droppedRecords, lines: st.droppedLines };
  }

  private countLoss(records: number, lines: number, why: string): void {
    const before = this.lossSoFar();
    this.lost.records += records;
    this.lost.lines += lines;
    this.noteLoss(why, before);
  }

  /** Starts a loss episode (one log line) unless one is open; `before` is the loss count before it. */
  private noteLoss(why: string, before: { records: number; lines: number }): void {
    if (this.losing) return;
    this.losing = { since: Date.now(), ...before };
    this.log(`losing records: ${why}; counted in the heartbeat's dropped`);
  }

  /** Ends the loss episode once nothing waits, logging what it cost. */
  private endLoss(force = false): void {
    if (!this.losing) return;
    if (!force && (this.memory.length > 0 || !this.options.spool.empty)) return;
    const st = this.stats();
    this.log(
      `loss episode over after ${secondsSince(this.losing.since)} s: ${st.droppedRecords - this.losing.records} records (${st.droppedLines - this.losing.lines} lines) lost`,
    );
    this.losing = null;
  }

  /** Starts the send loop. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops sending after the call in flight; what is unsent stays in the spool (memory: one last try). */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    this.loop = null;
    if (this.memory.length > 0) this.persist([]);
    if (this.memory.length > 0) {
      const gone = this.memory.splice(0);
      this.countLoss(
        gone.length,
        gone.reduce((n, q) => n + q.record.lines, 0),
        'stopping while the spool cannot be written',
      );
    }
    this.endLoss(true);
  }

  /** Resolves true once nothing is queued, false after `timeoutMs`. */
  async drained(timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (this.memory.length === 0 && this.options.spool.empty) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  stats(): ShipperStats {
    const spool = this.options.spool.stats();
    return {
      ...this.counters,
      memoryRecords: this.memory.length,
      spooledRecords: spool.records + this.memory.length,
      droppedLines: spool.droppedLines + this.lost.lines,
      droppedRecords: spool.droppedRecords + this.lost.records,
      outage: this.outage !== null,
    };
  }

  /** The next call's records: the first pending record of each key, within the call limits. */
  private pickBatch(): Queued[] {
    const spool = this.options.spool;
    const source: Queued[] = spool.empty
      ? this.memory
      : [
          ...spool.peek(MAX_RECORDS_PER_CALL * 4).map((s) => ({ ...s, fromSpool: true })),
          ...this.memory,
        ];
    const keys = new Set<string>();
    const batch: Queued[] = [];
    let bytes = 0;
    for (const q of source) {
      if (keys.has(q.record.partitionKey)) continue;
      const size = q.record.data.length + Buffer.byteLength(q.record.partitionKey);
      if (batch.length >= MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL) break;
      keys.add(q.record.partitionKey);
      batch.push(q);
      bytes += size;
    }
    return batch;
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
    this.wake = null;
  }

  private backoffMs(): number {
    const base = this.options.backoffBaseMs ?? 100;
    const cap = this.options.backoffMaxMs ?? 10_000;
    const ceiling = Math.min(cap, base * 2 ** Math.min(this.attempt, 30));
    return Math.max(1, Math.floor(this.random() * ceiling));
  }

  private acknowledge(delivered: Queued[]): void {
    const spoolIds = delivered.filter((q) => q.fromSpool).map((q) => q.id);
    if (spoolIds.length > 0) this.options.spool.ack(spoolIds);
    const memoryIds = new Set(delivered.filter((q) => !q.fromSpool).map((q) => q.id));
    if (memoryIds.size > 0) this.memory = this.memory.filter((q) => !memoryIds.has(q.id));
    for (const q of delivered) {
      this.counters.sentRecords++;
      this.counters.sentLines += q.record.lines;
    }
  }

  /** Sends one batch; true when every record was accepted. */
  private async send(batch: Queued[]): Promise<boolean> {
    const stream = this.options.stream;
    const target = stream.startsWith('arn:') ? { StreamARN: stream } : { StreamName: stream };
    const entries: PutRecordsRequestEntry[] = batch.map((q) => ({
      PartitionKey: q.record.partitionKey,
      Data: q.record.data,
    }));
    const spoolIds = batch.filter((q) => q.fromSpool).map((q) => q.id);
    this.options.spool.beginSend(spoolIds);
    this.counters.calls++;
    try {
      const res = await this.options.kinesis.send(
        new PutRecordsCommand({ ...target, Records: entries }),
        { abortSignal: AbortSignal.timeout(this.options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS) },
      );
      if (this.outage) {
        this.log(
          `Kinesis reachable again after ${secondsSince(this.outage.since)} s and ${this.outage.calls} failed calls; delivering ${this.stats().spooledRecords} waiting records`,
        );
        this.outage = null;
      }
      const results = res.Records ?? [];
      const delivered: Queued[] = [];
      let failed = 0;
      let firstError = '';
      batch.forEach((q, i) => {
        const r = results[i];
        if (r && !r.ErrorCode && r.SequenceNumber) delivered.push(q);
        else {
          failed++;
          firstError ||= `${r?.ErrorCode ?? 'no result'} ${r?.ErrorMessage ?? ''}`.trim();
        }
      });
      this.acknowledge(delivered);
      if (failed === 0) {
        if (this.partial) {
          this.log(
            `PutRecords accepts every record again after ${secondsSince(this.partial.since)} s; ${this.partial.retried} records were retried`,
          );
          this.partial = null;
        }
        return true;
      }
      this.counters.retriedRecords += failed;
      if (!this.partial) {
        this.log(
          `PutRecords: ${failed} of ${batch.length} records failed (${firstError}); retrying them`,
        );
        this.partial = { since: Date.now(), retried: 0 };
      }
      this.partial.retried += failed;
      return false;
    } catch (err) {
      this.counters.failedCalls++;
      if (!this.outage) {
        this.log(
          `PutRecords failed (${describeError(err)}); records wait in the spool until Kinesis answers`,
        );
        this.outage = { since: Date.now(), calls: 0 };
      }
      this.outage.calls++;
      return false;
    } finally {
      const before = this.lossSoFar();
      this.options.spool.endSend(spoolIds);
      if (this.lossSoFar().records > before.records) {
        this.noteLoss('the spool is full: records dropped from it while in a failed call', before);
      }
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      if (this.spoolFailure && Date.now() - this.spoolFailure.lastTry >= this.spoolRetryMs) {
        this.persist([]);
      }
      const batch = this.pickBatch();
      if (batch.length === 0) {
        this.endLoss();
        await this.sleep(this.spoolFailure ? this.spoolRetryMs : 1_000);
        continue;
      }
      if (await this.send(batch)) {
        this.attempt = 0;
        if (this.spoolFailure && this.memory.length === 0) {
          // Delivered straight from memory: the episode ends; the next records try the spool afresh.
          this.log(
            `records held in memory all delivered after ${secondsSince(this.spoolFailure.since)} s; the spool is tried again with the next records`,
          );
          this.spoolFailure = null;
        }
        if (this.memory.length === 0 && this.options.spool.empty) this.endLoss();
      } else {
        this.attempt++;
        await this.sleep(
          this.spoolFailure ? Math.min(this.backoffMs(), this.spoolRetryMs) : this.backoffMs(),
        );
      }
    }
  }
}
