/**
 * Per-service client-count alarm bounds: the `serviceAlarms` CDK context of a
 * deployment and the `--alarms` of local mode, validated by one schema.
 * Example: `{"dns": {"min": 10, "max": 50000}, "ntp": {"minIps": 3}}`.
 */
import { z } from 'zod';

/** What an alarm does with a period that has no data, in CloudWatch's words. */
export const TREAT_MISSING_DATA = ['breaching', 'notBreaching', 'ignore', 'missing'] as const;

/** A number, also when written as a string (`-c` context values are strings). */
const numeric = <T extends z.ZodType>(schema: T) =>
  z.preprocess((raw) => (typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw), schema);
const count = numeric(z.number().nonnegative().finite());
const periods = numeric(z.number().int().min(1).max(1440));

/** Alarm bounds for one service; each bound present becomes one alarm. */
export const ServiceAlarmBoundsSchema = z
  .strictObject({
    /** Alarm when fewer client endpoints (ip:port) than this are active. */
    min: count.optional(),
    /** Alarm when more client endpoints than this are active. */
    max: count.optional(),
    /** Alarm when fewer distinct client IPs than this are active. */
    minIps: count.optional(),
    /** Alarm when more distinct client IPs than this are active. */
    maxIps: count.optional(),
    evaluationPeriods: periods.optional(),
    datapointsToAlarm: periods.optional(),
    treatMissingData: z.enum(TREAT_MISSING_DATA).optional(),
  })
  .refine((b) => [b.min, b.max, b.minIps, b.maxIps].some((x) => x !== undefined), {
    error: 'give at least one of min, max, minIps, maxIps',
  })
  .refine((b) => b.min === undefined || b.max === undefined || b.min <= b.max, {
    error: 'min must not exceed max',
  })
  .refine((b) => b.minIps === undefined || b.maxIps === undefined || b.minIps <= b.maxIps, {
    error: 'minIps must not exceed maxIps',
  });

/** Per-service alarms, keyed by the service name the agents report. */
export const ServiceAlarmsSchema = z.record(
  z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'service names are 1-128 of A-Z a-z 0-9 _ . : -'),
  ServiceAlarmBoundsSchema,
);

/** One service's alarm bounds. */
export type ServiceAlarmBounds = z.output<typeof ServiceAlarmBoundsSchema>;
/** Alarm bounds per service. */
export type ServiceAlarms = z.output<typeof ServiceAlarmsSchema>;
