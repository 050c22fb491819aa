/** Counts and sizes in units a person reads at a glance: `1.2k`, `3.4 MiB`. */

const COUNT_UNITS = ['', 'k', 'M', 'G', 'T', 'P'];
const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Rounds to three significant digits at most: 1.23, 12.3, 123. */
function shortNumber(value: number): string {
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1).replace(/\.0$/, '');
  return value.toFixed(2).replace(/\.?0+$/, '');
}

/** Steps `value` down by `base` until it is under `base`, returning the scaled value and unit index. */
function scale(value: number, base: number, units: number): [number, number] {
  let v = value;
  let i = 0;
  while (Math.abs(v) >= base && i < units - 1) {
    v /= base;
    i++;
  }
  // 999.96k rounds to "1000k": show it as 1M instead.
  if (Math.abs(v) >= base - 0.5 && i < units - 1 && shortNumber(Math.abs(v)) === String(base)) {
    v /= base;
    i++;
  }
  return [v, i];
}

/** A count with a decimal suffix: 999, 1.2k, 45.6M. */
export function formatCount(value: number): string {
  if (Math.abs(value) < 1000) return String(Math.round(value));
  const [v, i] = scale(value, 1000, COUNT_UNITS.length);
  return `${shortNumber(v)}${COUNT_UNITS[i]}`;
}

/** A byte size with a binary unit: 512 B, 3.4 KiB, 12 MiB. */
export function formatBytes(value: number): string {
  if (Math.abs(value) < 1024) return `${Math.round(value)} B`;
  const [v, i] = scale(value, 1024, BYTE_UNITS.length);
  return `${shortNumber(v)} ${BYTE_UNITS[i]}`;
}

/** A per-second rate of a count: 0/s, 12/s, 1.2k/s. */
export function formatRate(perSecond: number): string {
  if (perSecond > 0 && perSecond < 10) return `${shortNumber(perSecond)}/s`;
  return `${formatCount(perSecond)}/s`;
}
