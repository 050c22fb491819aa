/**
 * Packs connection-log lines into Kinesis record payloads and unpacks them.
 *
 * The decoder never throws: it returns the good lines and, for each bad one,
 * where it was and why, so one bad line never sinks its neighbours.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import type { z } from 'zod';
import { type Line, LineSchema } from './wire.js';

/** Kinesis caps a record at 1 MiB, partition key included; keys are at most 256 bytes. */
export const MAX_RECORD_BYTES = 1024 * 1024 - 256;
/** Largest payload a decoder will inflate a gzip'd record to (guards against zip bombs). */
export const MAX_INFLATED_BYTES = 16 * 1024 * 1024;
/** Longest single line accepted; real lines are a few hundred bytes. */
export const MAX_LINE_BYTES = 64 * 1024;

const GZIP_MAGIC = [0x1f, 0x8b] as const;

/** A line as handed to the encoder: the encoder stamps each record's `seq`. */
export type UnsequencedLine = Line extends infer L
  ? L extends Line
    ? Omit<L, 'seq'>
    : never
  : never;

export interface EncodeOptions {
  /** Gzip each record (default true). */
  gzip?: boolean;
  /** Upper bound of a record's data in bytes (default MAX_RECORD_BYTES). */
  maxRecordBytes?: number;
  /** Upper bound of a record's NDJSON before compression (default 4 MiB gzip'd, else maxRecordBytes). */
  maxUncompressedBytes?: number;
  /** Called once per record for its sequence number. */
  nextSeq: () => number;
}

/** One packed Kinesis record payload. */
export interface EncodedRecord {
  seq: number;
  data: Buffer;
  lines: number;
}

/** Serializes one line with its record's sequence number, envelope fields first. */
export function serializeLine(line: UnsequencedLine, seq: number): string {
  const { v, type, agentId, ...rest } = line;
  return JSON.stringify({ v, type, agentId, seq, ...rest });
}

/** Whether a payload starts with the gzip magic bytes. */
export function isGzip(data: Uint8Array): boolean {
  return data.length >= 2 && data[0] === GZIP_MAGIC[0] && data[1] === GZIP_MAGIC[1];
}

/**
 * Packs lines into as few records as the size limits allow, in order.
 * Every line of a record gets that record's `seq`.
 */
export function encodeRecords(
  lines: readonly UnsequencedLine[],
  options: EncodeOptions,
): EncodedRecord[] {
  const gzip = options.gzip ?? true;
  const maxRecord = options.maxRecordBytes ?? MAX_RECORD_BYTES;
  const maxRaw = options.maxUncompressedBytes ?? (gzip ? 4 * 1024 * 1024 : maxRecord);
  // Room for the largest seq a line can carry, so sizing before stamping is safe.
  const SEQ_ROOM = 24;
  const groups: UnsequencedLine[][] = [];
  let current: UnsequencedLine[] = [];
  let size = 0;
  for (const line of lines) {
    const bytes = Buffer.byteLength(serializeLine(line, 0)) + 1 + SEQ_ROOM;
    if (bytes > Math.min(maxRaw, gzip ? maxRaw : maxRecord)) {
      throw new RangeError(`line of ${bytes} bytes exceeds the record size limit`);
    }
    if (current.length > 0 && size + bytes > maxRaw) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(line);
    size += bytes;
  }
  if (current.length > 0) groups.push(current);

  const out: EncodedRecord[] = [];
  const emit = (group: UnsequencedLine[]): void => {
    const seq = options.nextSeq();
    const text = `${group.map((l) => serializeLine(l, seq)).join('\n')}\n`;
    const data = gzip ? gzipSync(text) : Buffer.from(text);
    // Incompressible lines can gzip larger than the limit: split and retry
    // (the seq just taken stays unused; seqs increase but may have gaps).
    if (data.length > maxRecord && group.length > 1) {
      const half = Math.ceil(group.length / 2);
      emit(group.slice(0, half));
      emit(group.slice(half));
      return;
    }
    if (data.length > maxRecord)
      throw new RangeError(`a single line encodes to ${data.length} bytes`);
    out.push({ seq, data, lines: group.length });
  };
  for (const g of groups) emit(g);
  return out;
}

/** Why one line (or, with line 0, the whole record) was rejected. */
export interface LineError {
  /** 1-based line number in the record; 0 for the record as a whole. */
  line: number;
  /** The offending field's path, when one field is to blame. */
  field?: string;
  reason: string;
}

/** Good lines and located errors of one record. */
export interface DecodedRecord {
  lines: Line[];
  /** The 1-based line number in the record of each good line (parallel to `lines`). */
  lineNumbers: number[];
  errors: LineError[];
  gzip: boolean;
}

function describeIssues(error: z.ZodError): { field?: string; reason: string } {
  const issue = error.issues[0];
  if (!issue) return { reason: 'invalid line' };
  const field = issue.path.map(String).join('.');
  return field ? { field, reason: `${field}: ${issue.message}` } : { reason: issue.message };
}

/**
 * Decodes one record's data. Lines that fail validation, or whose agentId/seq
 * differ from the record's first good line, are reported and left out.
 */
export function decodeRecord(data: Uint8Array): DecodedRecord {
  const gzip = isGzip(data);
  let text: string;
  try {
    text = gzip
      ? gunzipSync(data, { maxOutputLength: MAX_INFLATED_BYTES }).toString('utf8')
      : Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return {
      lines: [],
      lineNumbers: [],
      errors: [{ line: 0, reason: `record is not valid gzip: ${why}` }],
      gzip,
    };
  }
  const lines: Line[] = [];
  const lineNumbers: number[] = [];
  const errors: LineError[] = [];
  let envelope: { agentId: string; seq: number } | undefined;
  const rows = text.split('\n');
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!.trim();
    if (row === '') continue;
    const lineNo = i + 1;
    if (row.length > MAX_LINE_BYTES) {
      errors.push({ line: lineNo, reason: `line is longer than ${MAX_LINE_BYTES} bytes` });
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(row);
    } catch {
      errors.push({ line: lineNo, reason: `not JSON: ${JSON.stringify(row.slice(0, 40))}` });
      continue;
    }
    const parsed = LineSchema.safeParse(json);
    if (!parsed.success) {
      errors.push({ line: lineNo, ...describeIssues(parsed.error) });
      continue;
    }
    const line = parsed.data;
    if (!envelope) envelope = { agentId: line.agentId, seq: line.seq };
    else if (line.agentId !== envelope.agentId || line.seq !== envelope.seq) {
      errors.push({
        line: lineNo,
        field: line.agentId !== envelope.agentId ? 'agentId' : 'seq',
        reason: `agentId/seq ${line.agentId}/${line.seq} differs from the record's ${envelope.agentId}/${envelope.seq}`,
      });
      continue;
    }
    lines.push(line);
    lineNumbers.push(lineNo);
  }
  return { lines, lineNumbers, errors, gzip };
}
