/**
 * A bounded, durable FIFO of records on disk: the agent's queue while Kinesis
 * is unreachable. Each append is one segment file, written to a temp name,
 * fsync'd and renamed, so a crash leaves whole segments or none. Segments are
 * read back in order; a segment is deleted once all its records are acked.
 * When the spool would exceed its byte bound, the oldest segments go first and
 * their records and lines are counted as dropped (a record of a dropped
 * segment that is in a call at that moment counts only if the call fails).
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { fsyncDir } from './agent-state.js';
import type { ShipRecord } from './record-packer.js';

const MAGIC = Buffer.from('UWS1');
const NAME_RE = /^(\d{12})\.r(\d+)\.l(\d+)\.spool$/;

interface Segment {
  no: number;
  file: string;
  bytes: number;
  records: number;
  lines: number;
  /** Loaded lazily; null until peeked. */
  loaded: ShipRecord[] | null;
  acked: Set<number>;
}

/** A spooled record with the id to ack it by. */
export interface SpooledRecord {
  id: string;
  record: ShipRecord;
}

/** Serializes records into a segment file's bytes. */
export function encodeSegment(records: readonly ShipRecord[]): Buffer {
  const parts: Buffer[] = [MAGIC];
  for (const r of records) {
    const key = Buffer.from(r.partitionKey);
    const head = Buffer.alloc(2 + key.length + 8 + 4 + 4);
    let o = head.writeUInt16BE(key.length, 0);
    o += key.copy(head, o);
    o = head.writeDoubleBE(r.seq, o);
    o = head.writeUInt32BE(r.lines, o);
    head.writeUInt32BE(r.data.length, o);
    parts.push(head, r.data);
  }
  return Buffer.concat(parts);
}

/** Parses a segment file's bytes; throws naming the offset when it is damaged. */
export function decodeSegment(buf: Buffer): ShipRecord[] {
  if (buf.length < 4 || !buf.subarray(0, 4).equals(MAGIC)) throw new Error('bad magic');
  const out: ShipRecord[] = [];
  let o = 4;
  while (o < buf.length) {
    if (o + 2 > buf.length) throw new Error(`truncated at byte ${o}`);
    const keyLen = buf.readUInt16BE(o);
    o += 2;
    if (o + keyLen + 16 > buf.length) throw new Error(`truncated at byte ${o}`);
    const partitionKey = buf.toString('utf8', o, o + keyLen);
    o += keyLen;
    const seq = buf.readDoubleBE(o);
    const lines = buf.readUInt32BE(o + 8);
    const len = buf.readUInt32BE(o + 12);
    o += 16;
    if (o + len > buf.length) throw new Error(`truncated record at byte ${o}`);
    out.push({ partitionKey, seq, lines, data: Buffer.from(buf.subarray(o, o + len)) });
    o += len;
  }
  return out;
}

export interface DiskSpoolStats {
  records: number;
  bytes: number;
  segments: number;
  droppedRecords: number;
  droppedLines: number;
  /** Segment files found damaged and set aside (renamed *.bad). */
  badSegments: number;
}

/** The on-disk queue. */
export class DiskSpool {
  private segments: Segment[] = [];
  private nextNo = 1;
  private counters = { droppedRecords: 0, droppedLines: 0, badSegments: 0 };
  /** Ids of records in the call in flight. */
  private readonly inFlight = new Set<string>();
  /** In-flight records whose segment was dropped meanwhile: id -> lines. */
  private readonly orphans = new Map<string, number>();

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly onError: (message: string) => void = () => {},
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    for (const file of readdirSync(dir).sort()) {
      const m = NAME_RE.exec(file);
      if (!m) {
        // A write a crash cut short; a spool that refuses the unlink still starts.
        if (file.endsWith('.tmp')) this.removeFile(file);
        continue;
      }
      const no = Number(m[1]);
      this.segments.push({
        no,
        file,
        bytes: statSync(join(dir, file)).size,
        records: Number(m[2]),
        lines: Number(m[3]),
        loaded: null,
        acked: new Set(),
      });
      this.nextNo = Math.max(this.nextNo, no + 1);
    }
  }

  /** Appends records as one durable segment; drops the oldest segments past the bound. */
  append(records: readonly ShipRecord[]): void {
    if (records.length === 0) return;
    const data = encodeSegment(records);
    const lines = records.reduce((n, r) => n + r.lines, 0);
    const no = this.nextNo++;
    const file = `${String(no).padStart(12, '0')}.r${records.length}.l${lines}.spool`;
    const tmp = join(this.dir, `${file}.tmp`);
    try {
      const fd = openSync(tmp, 'w', 0o640);
      try {
        writeSync(fd, data);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, join(this.dir, file));
      fsyncDir(this.dir);
    } catch (err) {
      // A partial temp file (disk full) would only take space: remove it, then report.
      try {
        unlinkSync(tmp);
      } catch {
        // Never created, or the directory refuses changes.
      }
      throw new Error(
        `spool ${this.dir}: cannot write ${records.length} records (${data.length} bytes): ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.segments.push({
      no,
      file,
      bytes: data.length,
      records: records.length,
      lines,
      loaded: [...records],
      acked: new Set(),
    });
    while (this.totalBytes() > this.maxBytes && this.segments.length > 1) {
      const old = this.segments.shift()!;
      this.countDropped(old);
      this.remove(old);
    }
  }

  private countDropped(seg: Segment): void {
    const records = seg.loaded ?? null;
    if (records) {
      records.forEach((r, i) => {
        if (seg.acked.has(i)) return;
        const id = `${seg.no}:${i}`;
        // In a call right now: lost only if that call fails (see endSend).
        if (this.inFlight.has(id)) this.orphans.set(id, r.lines);
        else {
          this.counters.droppedRecords++;
          this.counters.droppedLines += r.lines;
        }
      });
    } else {
      this.counters.droppedRecords += seg.records;
      this.counters.droppedLines += seg.lines;
    }
  }

  private remove(seg: Segment): void {
    this.removeFile(seg.file);
  }

  private removeFile(file: string): void {
    try {
      unlinkSync(join(this.dir, file));
    } catch (err) {
      this.onError(`spool ${file}: ${(err as Error).message}`);
    }
  }

  private totalBytes(): number {
    let n = 0;
    for (const s of this.segments) n += s.bytes;
    return n;
  }

  private load(seg: Segment): ShipRecord[] | null {
    if (seg.loaded) return seg.loaded;
    try {
      seg.loaded = decodeSegment(readFileSync(join(this.dir, seg.file)));
      return seg.loaded;
    } catch (err) {
      this.counters.badSegments++;
      this.onError(`spool ${seg.file} is damaged (${(err as Error).message}); set aside`);
      try {
        renameSync(join(this.dir, seg.file), join(this.dir, `${seg.file}.bad`));
      } catch {
        // Leave it; it is no longer tracked.
      }
      this.segments = this.segments.filter((s) => s !== seg);
      return null;
    }
  }

  /** Up to `max` unacked records from the head, in order. */
  peek(max: number): SpooledRecord[] {
    const out: SpooledRecord[] = [];
    for (const seg of [...this.segments]) {
      if (out.length >= max) break;
      const records = this.load(seg);
      if (!records) continue;
      for (let i = 0; i < records.length && out.length < max; i++) {
        if (!seg.acked.has(i)) out.push({ id: `${seg.no}:${i}`, record: records[i]! });
      }
    }
    return out;
  }

  /** Marks records as being in a call, so dropping their segment meanwhile does not yet count them. */
  beginSend(ids: readonly string[]): void {
    for (const id of ids) this.inFlight.add(id);
  }

  /** The call of `beginSend` ended (after `ack` of what it delivered): its dropped, undelivered records count now. */
  endSend(ids: readonly string[]): void {
    for (const id of ids) {
      this.inFlight.delete(id);
      const lines = this.orphans.get(id);
      if (lines === undefined) continue;
      this.orphans.delete(id);
      this.counters.droppedRecords++;
      this.counters.droppedLines += lines;
    }
  }

  /** Marks records delivered; deletes segments that are fully delivered. */
  ack(ids: readonly string[]): void {
    for (const id of ids) {
      // Delivered after all, though its segment was dropped: not a loss.
      this.orphans.delete(id);
      const [no, i] = id.split(':').map(Number) as [number, number];
      const seg = this.segments.find((s) => s.no === no);
      seg?.acked.add(i);
    }
    const done = this.segments.filter((s) => s.acked.size >= s.records);
    if (done.length === 0) return;
    this.segments = this.segments.filter((s) => s.acked.size < s.records);
    for (const s of done) this.remove(s);
  }

  /** Whether anything is waiting. */
  get empty(): boolean {
    return this.segments.length === 0;
  }

  /** Counters for heartbeats and logs. */
  stats(): DiskSpoolStats {
    let records = 0;
    for (const s of this.segments) records += s.records - s.acked.size;
    return {
      records,
      bytes: this.totalBytes(),
      segments: this.segments.length,
      ...this.counters,
    };
  }
}
