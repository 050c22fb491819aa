/**
 * Figures measured by earlier cases of the same run, for the scale model. A
 * case records what it measured; the scale model uses it, or measures it
 * itself when cheap, or uses a documented default and says so.
 */
import type { PartSize } from './scale-model.js';

/** The measurements the scale model can use, with their types. */
export interface Measurements {
  /** blocks case: the main parts of one 1,000-endpoint host minute, as the agent encodes them. */
  hostMinuteParts: PartSize[];
  /** blocks case: the same parts encoded at the smallest brotli quality (the agent's earlier one). */
  hostMinutePartsSmallest: PartSize[];
  /** blocks case: share of a host's endpoints per service. */
  serviceMix: number[];
  /** blocks case: one early part of a few new endpoints. */
  earlyPart: PartSize;
  /** blocks case: a v1 heartbeat record's bytes and the agent item's billed size. */
  heartbeat: { recordBytes: number; itemBytes: number };
  /** blocks case: endpoint-minutes decoded and merged per second on one core. */
  mergeEndpointMinutesPerSecond: number;
  /** aggregator case: endpoint-minutes stored per second per invocation (wall). */
  aggregateEndpointMinutesPerSecond: number;
  /** aggregator case: wall ms of an invocation with one tiny record. */
  aggregateFixedMs: number;
  /** aggregator case: endpoint-minutes stored per CPU second of the handler's process. */
  aggregateCpuEndpointMinutesPerSecond: number;
  /** aggregator case: resident memory an invocation took, per record, and the process's peak. */
  aggregateMemory: { records: number; rssGrowthMbPerRecord: number; rssPeakMb: number };
  /** blocks case: endpoints per second one core encodes (serialize + brotli), host-minute parts. */
  encodeEndpointsPerSecond: number;
  /** agent-cost case. */
  agentCpuMsPerSecondPer1000Flows: number;
}

/** A measurement's name. */
export type MeasurementName = keyof Measurements;

const measured = new Map<MeasurementName, unknown>();

/** Records a measurement of this run (non-finite numbers are ignored). */
export function recordMeasurement<K extends MeasurementName>(
  name: K,
  value: Measurements[K],
): void {
  if (typeof value === 'number' && !Number.isFinite(value)) return;
  measured.set(name, value);
}

/** A measurement of this run, if a case recorded it. */
export function measurement<K extends MeasurementName>(name: K): Measurements[K] | undefined {
  return measured.get(name) as Measurements[K] | undefined;
}
