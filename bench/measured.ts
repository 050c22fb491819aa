/**
 * Per-flow costs measured by earlier cases of the same run, for the scale
 * model. A case records what it measured; the scale model uses it, or a
 * documented default (and says so) when that case did not run.
 */

/** The measurements the scale model can use. */
export type MeasurementName =
  | 'wireBytesPerLine'
  | 'aggregatorLinesPerSecond'
  | 'writesPerClientBatch'
  | 'agentCpuMsPerSecondPer1000Flows';

const measured = new Map<MeasurementName, number>();

/** Records a measurement of this run. */
export function recordMeasurement(name: MeasurementName, value: number): void {
  if (Number.isFinite(value)) measured.set(name, value);
}

/** A measurement of this run, if a case recorded it. */
export function measurement(name: MeasurementName): number | undefined {
  return measured.get(name);
}
