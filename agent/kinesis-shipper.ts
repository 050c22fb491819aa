/**
 * Ships packed records to Kinesis with PutRecords, preserving order per
 * partition key, retrying only what failed, and spooling to disk while
 * Kinesis is unreachable.
 *
 * Sealed blocks are stored by content under (agent, seq, part), so the
 * store needs no order; the shipper still keeps it per key, which costs
 * little and keeps v1 records (heartbeats) in the order they were written:
 * - a PutRecords call holds at most one record per partition key, and only
 *   one call is in flight;
 * - a failed record stays first of its key and is retried before any later
 *   record of that key is sent;
 * - the queue is one FIFO: spooled records (older) go before memory records,
 *   and memory is only used while the spool is empty.
 * A record whose call failed ambiguously may arrive twice; both copies are
 * the same bytes (the spool keeps the encoded record), which the store
 * writes once.
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

export interface ShipperOptions {
  kinesis: KinesisClient;
  /** Stream name, or its ARN. */
  stream: string;
  spool: DiskSpool;
  /** Records held in memory before they are moved to the spool. */
  maxMemoryRecords?: number;
  /** Exponential backoff with full jitter: base and cap, in ms. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
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
  memoryRecords: number;
  spooledRecords: number;
  /** Lines lost because the spool was full (oldest first). */
  droppedLines: number;
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

/** The shipper; `start()` runs its send loop until `stop()`. */
export class KinesisShipper {
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
  private outage = false;
  private readonly random: () => number;

  constructor(private readonly options: ShipperOptions) {
    this.random = options.random ?? Math.random;
  }

  /** Queues records (in order) for shipping. */
  enqueue(records: readonly ShipRecord[]): void {
    if (records.length === 0) return;
    const spool = this.options.spool;
    let toMemory = !(this.outage || !spool.empty);
    if (!toMemory) {
      try {
        spool.append(records);
      } catch (err) {
        // Disk full or read-only: hold them in memory (newer than the spool, so order holds).
        this.options.log?.(
          `spool write failed (${(err as Error).message}); holding records in memory`,
        );
        toMemory = true;
      }
    }
    if (toMemory) {
      for (const record of records) {
        this.memory.push({ id: `m${this.memoryNo++}`, record, fromSpool: false });
      }
      if (this.memory.length > (this.options.maxMemoryRecords ?? 10_000)) {
        try {
          this.spoolMemory();
        } catch {
          // Kept in memory; the next successful spool write or send takes them.
        }
      }
    }
    this.wake?.();
  }

  /** Moves memory records to the spool (they are the newest, so order holds). */
  private spoolMemory(): void {
    if (this.memory.length === 0) return;
    this.options.spool.append(this.memory.map((q) => q.record));
    this.memory = [];
  }

  /** Starts the send loop. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops sending, waits for the call in flight, and spools what is left in memory. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    this.loop = null;
    this.spoolMemory();
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
      spooledRecords: spool.records,
      droppedLines: spool.droppedLines,
      outage: this.outage,
    };
  }

  /** The next call's records: the first pending record of each key, within the call limits. */
  private pickBatch(): Queued[] {
    const spool = this.options.spool;
    const source: Queued[] = spool.empty
      ? this.memory
      : spool.peek(MAX_RECORDS_PER_CALL * 4).map((s) => ({ ...s, fromSpool: true }));
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

  private async run(): Promise<void> {
    const log = this.options.log ?? (() => {});
    const stream = this.options.stream;
    const target = stream.startsWith('arn:') ? { StreamARN: stream } : { StreamName: stream };
    while (this.running) {
      const batch = this.pickBatch();
      if (batch.length === 0) {
        await this.sleep(1_000);
        continue;
      }
      const entries: PutRecordsRequestEntry[] = batch.map((q) => ({
        PartitionKey: q.record.partitionKey,
        Data: q.record.data,
      }));
      this.counters.calls++;
      try {
        const res = await this.options.kinesis.send(
          new PutRecordsCommand({ ...target, Records: entries }),
        );
        if (this.outage) {
          log(
            `Kinesis reachable again; draining ${this.options.spool.stats().records} spooled records`,
          );
          this.outage = false;
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
        if (failed > 0) {
          this.counters.retriedRecords += failed;
          this.attempt++;
          if (this.attempt === 1 || this.attempt % 10 === 0) {
            log(
              `PutRecords: ${failed} of ${batch.length} records failed (${firstError}); retrying`,
            );
          }
          await this.sleep(this.backoffMs());
        } else {
          this.attempt = 0;
        }
      } catch (err) {
        this.counters.failedCalls++;
        this.attempt++;
        if (!this.outage) {
          log(`PutRecords failed (${describeError(err)}); spooling to disk until Kinesis answers`);
          this.outage = true;
        }
        try {
          this.spoolMemory();
        } catch (spoolErr) {
          log(`spool write failed: ${(spoolErr as Error).message}; keeping records in memory`);
        }
        await this.sleep(this.backoffMs());
      }
    }
  }
}
