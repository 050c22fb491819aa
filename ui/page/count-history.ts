/**
 * The last hour of each service's active counts: the stored per-minute
 * counts (GET /v1/services/{service}/history, read once per service when the
 * page first shows it) merged with the samples the page takes at each
 * refresh. sessionStorage keeps the samples across reloads of the tab.
 */

/** One service's samples: times (epoch seconds), endpoints, IPs. */
export interface Series {
  t: number[];
  endpoints: number[];
  ips: number[];
}

const KEY = 'udpwatch:count-history:v1';
const HOUR_S = 3600;
/** Bounds: a sample every 5 s for an hour, for the services one page shows. */
const MAX_SAMPLES = 800;
const MAX_SERVICES = 200;

/** What the history keeps its samples in (the tab's sessionStorage). */
export interface SampleStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** One stored minute: the end of the minute (epoch ms) and its counts. */
export interface StoredPoint {
  at: number;
  endpoints: number;
  ips: number;
}

/** Samples of every service the page has counted within the last hour. */
export class CountHistory {
  private readonly series = new Map<string, Series>();
  /** Services whose stored hour this page has merged in (once each). */
  private readonly seededServices = new Set<string>();

  constructor(private readonly storage?: SampleStore) {
    try {
      const saved = JSON.parse(storage?.getItem(KEY) ?? '{}') as Record<string, Series>;
      for (const [name, s] of Object.entries(saved).slice(0, MAX_SERVICES)) {
        if (Array.isArray(s.t) && Array.isArray(s.endpoints) && Array.isArray(s.ips)) {
          this.series.set(name, { t: s.t, endpoints: s.endpoints, ips: s.ips });
        }
      }
    } catch {
      // A damaged entry only loses the history the tab had.
    }
  }

  /** Adds a sample of one service at `nowMs` and drops samples older than an hour. */
  add(service: string, nowMs: number, endpoints: number, ips: number): void {
    let s = this.series.get(service);
    if (!s) {
      if (this.series.size >= MAX_SERVICES) return;
      s = { t: [], endpoints: [], ips: [] };
      this.series.set(service, s);
    }
    const t = Math.floor(nowMs / 1000);
    if (s.t.length > 0 && s.t[s.t.length - 1]! >= t) return;
    s.t.push(t);
    s.endpoints.push(endpoints);
    s.ips.push(ips);
    let drop = 0;
    while (drop < s.t.length && s.t[drop]! < t - HOUR_S) drop++;
    drop = Math.max(drop, s.t.length - MAX_SAMPLES);
    if (drop > 0) {
      s.t.splice(0, drop);
      s.endpoints.splice(0, drop);
      s.ips.splice(0, drop);
    }
  }

  /** Whether the stored hour of `service` was merged in by this page already. */
  seeded(service: string): boolean {
    return this.seededServices.has(service);
  }

  /**
   * Merges a service's stored minutes into its samples (a sample the page
   * took at the same second wins) and keeps the hour up to the newest one.
   */
  seed(service: string, points: readonly StoredPoint[]): void {
    this.seededServices.add(service);
    let s = this.series.get(service);
    if (!s) {
      if (this.series.size >= MAX_SERVICES) return;
      s = { t: [], endpoints: [], ips: [] };
      this.series.set(service, s);
    }
    const byT = new Map<number, [number, number]>();
    for (const p of points) byT.set(Math.floor(p.at / 1000), [p.endpoints, p.ips]);
    for (let i = 0; i < s.t.length; i++) byT.set(s.t[i]!, [s.endpoints[i]!, s.ips[i]!]);
    const ts = [...byT.keys()].sort((a, b) => a - b);
    const newest = ts.length > 0 ? ts[ts.length - 1]! : 0;
    const kept = ts.filter((t) => t >= newest - HOUR_S).slice(-MAX_SAMPLES);
    s.t = kept;
    s.endpoints = kept.map((t) => byT.get(t)![0]);
    s.ips = kept.map((t) => byT.get(t)![1]);
  }

  /** A service's samples (empty before the first). */
  get(service: string): Series {
    return this.series.get(service) ?? { t: [], endpoints: [], ips: [] };
  }

  /** Writes the samples to storage (quota errors only lose the history). */
  save(): void {
    try {
      this.storage?.setItem(KEY, JSON.stringify(Object.fromEntries(this.series)));
    } catch {
      // storage full or disabled
    }
  }
}
