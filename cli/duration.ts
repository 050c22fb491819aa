/**
 * Durations as a person types them (`5m`, `300s`, `1h`, `300`) and as the
 * CLI shows them (`12s ago`, `3m ago`).
 */

const UNIT_SECONDS: Record<string, number> = {
  ms: 0.001,
  s: 1,
  sec: 1,
  m: 60,
  min: 60,
  h: 3600,
  d: 86_400,
};

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/;

/** A duration the user typed that cannot be understood. */
export class DurationError extends Error {}

/**
 * Parses `5m`, `300s`, `1.5h`, `2d`, `500ms` or a bare number of seconds into
 * seconds (possibly fractional).
 */
export function parseDuration(text: string): number {
  const match = DURATION_RE.exec(text.trim().toLowerCase());
  const unit = match?.[2] === '' ? 's' : match?.[2];
  const factor = unit === undefined ? undefined : UNIT_SECONDS[unit];
  if (!match || factor === undefined) {
    throw new DurationError(
      `${JSON.stringify(text)} is not a duration (examples: 300, 300s, 5m, 1h, 2d)`,
    );
  }
  return Number(match[1]) * factor;
}

/** Parses a duration that must come to a whole, positive number of seconds within `max`. */
export function parseWholeSeconds(text: string, max: number): number {
  const seconds = parseDuration(text);
  if (!Number.isInteger(seconds) || seconds < 1) {
    throw new DurationError(
      `${JSON.stringify(text)} must be a whole number of seconds, at least 1s`,
    );
  }
  if (seconds > max) {
    throw new DurationError(
      `${JSON.stringify(text)} is longer than the maximum of ${formatSpan(max)}`,
    );
  }
  return seconds;
}

/** A span of seconds in its largest sensible unit: `300ms`, `1.5s`, `45s`, `5m`, `1h30m`, `2d3h`. */
export function formatSpan(seconds: number): string {
  // Sub-second and fractional spans come from --interval; windows are whole seconds.
  if (seconds > 0 && seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60 && !Number.isInteger(seconds)) return `${Number(seconds.toFixed(1))}s`;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    const rest = s % 60;
    return rest ? `${m}m${rest}s` : `${m}m`;
  }
  if (s < 86_400) {
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return m ? `${h}h${m}m` : `${h}h`;
  }
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  return h ? `${d}d${h}h` : `${d}d`;
}

/** How long ago `thenMs` was, seen from `nowMs`: `just now`, `12s ago`, `3m ago`, `in 2s` (clock skew). */
export function formatAgo(thenMs: number, nowMs: number): string {
  const diff = (nowMs - thenMs) / 1000;
  if (diff < 0) {
    // A host whose clock runs ahead reports the future; say so rather than hide it.
    return diff > -1 ? 'just now' : `in ${formatSpan(-diff)}`;
  }
  if (diff < 1) return 'just now';
  // Keep one unit for a glanceable column: 1h30m ago reads as 1h ago.
  const text = formatSpan(Math.floor(diff)).replace(/^(\d+[a-z]).*$/, '$1');
  return `${text} ago`;
}
