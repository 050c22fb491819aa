/**
 * The benchmark harness: cases measure, the harness prints one table and
 * writes bench/results.json. Machines here are noisy, so a figure that
 * compares is a ratio against a baseline measured in the same run, with the
 * spread over repeated rounds.
 */

/** Min, median and max of repeated measurements. */
export interface Spread {
  min: number;
  median: number;
  max: number;
}

/** One printed figure. */
export interface Figure {
  /** What is measured, e.g. "echo throughput, 64 B, hooked". */
  name: string;
  unit: string;
  value: Spread;
  /** The same-run baseline this figure is compared with. */
  baseline?: { name: string; value: Spread };
  /** value.median / baseline.median (or the inverse when lower is better: see `better`). */
  ratio?: number;
  /** Which direction is good, for reading the ratio. */
  better?: 'higher' | 'lower';
  goal?: string;
  note?: string;
}

/** What a case gets from the harness. */
export interface BenchContext {
  /** Quick mode: small sizes and few rounds, for CI smoke (whole run under 2 minutes). */
  quick: boolean;
  log: (message: string) => void;
}

/** A benchmark case. */
export interface BenchCase {
  id: string;
  title: string;
  run(ctx: BenchContext): Promise<Figure[]>;
}

/** Min/median/max of samples. */
export function spread(samples: readonly number[]): Spread {
  if (samples.length === 0) throw new Error('spread of no samples');
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]! };
}

/** A figure compared with a baseline measured in the same run. */
export function compared(
  name: string,
  unit: string,
  value: readonly number[],
  baselineName: string,
  baseline: readonly number[],
  better: 'higher' | 'lower',
  extra: { goal?: string; note?: string } = {},
): Figure {
  const v = spread(value);
  const b = spread(baseline);
  return {
    name,
    unit,
    value: v,
    baseline: { name: baselineName, value: b },
    ratio: b.median === 0 ? Number.NaN : v.median / b.median,
    better,
    ...extra,
  };
}

/** A figure with no baseline. */
export function plain(
  name: string,
  unit: string,
  value: readonly number[],
  extra: { goal?: string; note?: string } = {},
): Figure {
  return { name, unit, value: spread(value), ...extra };
}

/** Runs `fn` `rounds` times after one warm-up and returns each round's result. */
export async function rounds<T>(count: number, fn: () => Promise<T> | T): Promise<T[]> {
  await fn();
  const out: T[] = [];
  for (let i = 0; i < count; i++) out.push(await fn());
  return out;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (a >= 100) return n.toFixed(0);
  if (a >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

/** Renders figures as a Markdown table (the README shows the latest). */
export function renderTable(results: { case: BenchCase; figures: Figure[] }[]): string {
  const rows = [
    '| case | figure | median | min..max | unit | baseline (median) | ratio | goal |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    for (const f of r.figures) {
      rows.push(
        `| ${r.case.id} | ${f.name} | ${fmt(f.value.median)} | ${fmt(f.value.min)}..${fmt(f.value.max)} | ${f.unit} | ${
          f.baseline ? `${f.baseline.name}: ${fmt(f.baseline.value.median)}` : ''
        } | ${f.ratio === undefined ? '' : `${f.ratio.toFixed(3)}×`} | ${f.goal ?? ''} |`,
      );
    }
  }
  return rows.join('\n');
}
