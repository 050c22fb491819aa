/**
 * Decodes the records of a Kinesis event. A bad line is reported with where
 * it was and skipped; a record with nothing usable in it is reported and
 * skipped as a whole, never retried (retrying cannot make it decodable).
 */
import type { KinesisStreamRecord } from 'aws-lambda';
import { decodeRecord, type LineError } from '../../contract/codec.js';
import type { BatchRecord } from './fold.js';

/** Where a rejected line or record was. */
export interface BadInput {
  /** Kinesis event id: `<shardId>:<sequenceNumber>`. */
  eventId: string;
  sequenceNumber: string;
  partitionKey: string;
  /** Position of the record in the batch. */
  index: number;
  error: LineError;
}

/** The decoded batch and what was rejected. */
export interface DecodedBatch {
  records: BatchRecord[];
  badLines: BadInput[];
  badRecords: BadInput[];
}

/** Decodes every record of the event, in order. */
export function decodeBatch(records: readonly KinesisStreamRecord[]): DecodedBatch {
  const out: DecodedBatch = { records: [], badLines: [], badRecords: [] };
  records.forEach((r, index) => {
    const where = {
      eventId: r.eventID,
      sequenceNumber: r.kinesis.sequenceNumber,
      partitionKey: r.kinesis.partitionKey,
      index,
    };
    const decoded = decodeRecord(Buffer.from(r.kinesis.data ?? '', 'base64'));
    if (decoded.lines.length === 0) {
      const error = decoded.errors[0] ?? { line: 0, reason: 'record holds no lines' };
      const extra = decoded.errors.length > 1 ? ` (and ${decoded.errors.length - 1} more)` : '';
      out.badRecords.push({ ...where, error: { ...error, reason: error.reason + extra } });
      return;
    }
    for (const error of decoded.errors) out.badLines.push({ ...where, error });
    out.records.push({ index, lines: decoded.lines });
  });
  return out;
}
