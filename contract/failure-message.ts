/**
 * The message a Kinesis event source mapping puts in its on-failure queue
 * when it gives a batch up: where the records are (shard and sequence-number
 * range), not the records themselves, which stay in the stream until its
 * retention ends. The local poller's failures and `udpwatch replay-failures`
 * read and write this one shape.
 */
import { z } from 'zod';

/** Kinesis sequence numbers: decimal digits, up to 128 of them. */
const SEQUENCE_NUMBER = z.string().regex(/^\d{1,128}$/, 'must be a Kinesis sequence number');

/** The part of the message that locates the records. */
export const KinesisBatchInfoSchema = z.object({
  shardId: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[\w.-]+$/, 'must be a shard id'),
  startSequenceNumber: SEQUENCE_NUMBER,
  endSequenceNumber: SEQUENCE_NUMBER,
  batchSize: z.number().int().min(1).max(10_000),
  streamArn: z.string().min(1).max(2048),
  approximateArrivalOfFirstRecord: z.string().max(64).optional(),
  approximateArrivalOfLastRecord: z.string().max(64).optional(),
});

/** The on-failure message; fields other than the batch info are kept but not needed. */
export const KinesisFailureMessageSchema = z.looseObject({
  requestContext: z.looseObject({ condition: z.string().max(256).optional() }).optional(),
  timestamp: z.string().max(64).optional(),
  KinesisBatchInfo: KinesisBatchInfoSchema,
});

export type KinesisBatchInfo = z.output<typeof KinesisBatchInfoSchema>;
export type KinesisFailureMessage = z.output<typeof KinesisFailureMessageSchema>;

/** Builds the message for a given-up range, as the deployed mapping would. */
export function kinesisFailureMessage(
  info: KinesisBatchInfo,
  condition = 'RetryAttemptsExhausted',
  at: Date = new Date(),
): KinesisFailureMessage {
  return { requestContext: { condition }, timestamp: at.toISOString(), KinesisBatchInfo: info };
}
