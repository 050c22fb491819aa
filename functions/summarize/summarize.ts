/**
 * One run of the summarize function. For every listed service seen within
 * the retention it summarizes each minute not yet summarized up to the last
 * complete minute (`floor(now / 60 s) - 1 - ceil(SUMMARY_LAG / 60)`, at most
 * MAX_CATCH_UP_MINUTES of them), re-summarizes the minutes late marks name
 * (and the later summaries whose window includes them), marks each hour's
 * roll-up as due once its last minute is summarized (and again when a late
 * block lands in it; the roll-up function builds it), and deletes the late
 * marks it handled. A minute before a service's
 * listed firstSeen whose window holds none of its parts gets no summary: the
 * service was not counted yet, which is not a count of 0 (the API answers
 * null until the first summary).
 *
 * A minute is read once (BLOCK_SHARDS Queries) and merged into its minute
 * state; a warm instance keeps settled states across runs (minute-cache.ts),
 * so a run reads only the minutes it has not read yet, or whose late mark
 * dropped them. Cold, a run reads the whole window, as the summaries need.
 * Windows that hold a whole hour read it from roll-ups, uncached.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { MINUTE_MS, SUMMARY_LAG_SECONDS } from '../../contract/block.js';
import { SummaryItem } from '../../contract/summary.js';
import {
  hourOf,
  parseLateSortKey,
  ROLLUP_MINUTES,
  summaryKey,
  ttlFor,
} from '../../contract/table-keys.js';
import {
  addCost,
  newCost,
  type RawItem,
  type ReadCost,
  type ReaderOptions,
  readAgents,
  readBlockParts,
  readLateMarks,
  readLatestSummary,
  readServices,
  SERVICE_LAST_SEEN_SLACK_MS,
  wholeHours,
} from '../store/block-reader.js';
import { mapBounded } from '../store/bounded-map.js';
import { markRollupDue } from '../store/rollup-marks.js';
import { deleteUnlessChanged } from '../store/unchanged-delete.js';
import { MinuteCache } from './minute-cache.js';
import { putMinuteCounts } from './minute-counts-writer.js';
import { buildMinuteState, type MinuteState } from './minute-state.js';
import { buildSummary, summariesIncluding, summaryWindow } from './summary-builder.js';
import { summarizeStates } from './window-summary.js';

/** Minutes one run summarizes per service at most when it has fallen behind. */
export const MAX_CATCH_UP_MINUTES = 10;

/** Settings of a run. */
export interface SummarizeSettings {
  activeWindowSeconds: number;
  retentionHours: number;
}

/** What one run did for one service. */
export interface ServiceRun {
  service: string;
  /** The summary of the newest minute summarized (or re-stated) in this run. */
  latest: SummaryItem | null;
  summarized: number[];
  /** Hours whose roll-up this run marked as due (built by the roll-up function). */
  rollupsDue: number[];
}

/** What one run did. */
export interface SummarizeResult {
  now: number;
  /** The last complete minute. */
  minute: number;
  services: ServiceRun[];
  agentsReporting: number;
  /**
   * The `dropped` counters of every stored agent's latest heartbeat, summed:
   * reporting or not, so an agent that goes quiet and comes back (its
   * counter is a total across restarts) neither lowers nor raises the sum;
   * only TTL removing a long-gone agent lowers it.
   */
  agentsDropped: number;
  lateMarksHandled: number;
  cost: ReadCost;
  /** Service-minutes read from the table and taken from the instance's cache in this run. */
  minutes: { read: number; cached: number };
}

/** The last minute whose blocks have all arrived at `now`. */
export function lastCompleteMinute(now: number): number {
  return Math.floor(now / MINUTE_MS) - 1 - Math.ceil(SUMMARY_LAG_SECONDS / 60);
}

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

/** The oldest minute a run may need: the window of the oldest minute it may catch up on. */
export function oldestUsefulMinute(minute: number, windowSeconds: number): number {
  return minute - MAX_CATCH_UP_MINUTES + 1 - Math.ceil(windowSeconds / 60);
}

/**
 * Summarizes every service; see the module comment. `cache` is the
 * instance's minute cache (a fresh one, i.e. a cold run, when omitted).
 */
export async function summarizeAll(
  reader: ReaderOptions,
  settings: SummarizeSettings,
  now: number,
  cache: MinuteCache = new MinuteCache(),
): Promise<SummarizeResult> {
  const cost = newCost();
  const minute = lastCompleteMinute(now);
  const minutes = { read: 0, cached: 0 };
  const retainedSince = now - settings.retentionHours * 3600_000;
  const [services, agents, marks] = await Promise.all([
    readServices(reader, cost),
    readAgents(reader, cost),
    readLateMarks(reader, cost),
  ]);
  const lateByService = new Map<string, { minute: number; item: RawItem }[]>();
  for (const item of marks) {
    const parsed = parseLateSortKey(String(item.sk));
    if (!parsed) continue;
    // Before anything is read: the minute got a block after its state was kept.
    cache.drop(parsed.service, parsed.minute);
    if (parsed.minute > minute) continue;
    const list = lateByService.get(parsed.service) ?? [];
    list.push({ minute: parsed.minute, item });
    lateByService.set(parsed.service, list);
  }
  cache.evictBefore(oldestUsefulMinute(minute, settings.activeWindowSeconds));
  let lateMarksHandled = 0;
  const runs = await mapBounded(
    services.filter(
      (s) => typeof s.service === 'string' && (num(s.lastSeen) ?? 0) >= retainedSince,
    ),
    4,
    async (item): Promise<ServiceRun> => {
      const service = String(item.service);
      const run = await summarizeService(reader, settings, cost, {
        service,
        firstSeen: num(item.firstSeen),
        lastSeen: num(item.lastSeen) ?? 0,
        minute,
        now,
        late: lateByService.get(service) ?? [],
        cache,
        minutes,
      });
      lateMarksHandled += run.marksDeleted;
      return {
        service,
        latest: run.latest,
        summarized: run.summarized,
        rollupsDue: run.rollupsDue,
      };
    },
  );
  const reportingSince = now - settings.activeWindowSeconds * 1000;
  const reporting = agents.filter((a) => (num(a.lastHeartbeat) ?? -1) >= reportingSince);
  return {
    now,
    minute,
    services: runs,
    agentsReporting: reporting.length,
    agentsDropped: agents.reduce((n, a) => n + Math.max(0, num(a.dropped) ?? 0), 0),
    lateMarksHandled,
    cost,
    minutes,
  };
}

interface ServiceJob {
  service: string;
  /** The services list's firstSeen (epoch ms); absent on an item without one. */
  firstSeen: number | undefined;
  lastSeen: number;
  minute: number;
  now: number;
  late: { minute: number; item: RawItem }[];
  cache: MinuteCache;
  minutes: { read: number; cached: number };
}

/**
 * The minute states of one service for one run: from the run's own reads,
 * then the instance's cache, then the table (each minute read at most once
 * a run). A minute whose late mark this run handles is not kept past the
 * run: its late block was stored just before the mark, and an eventually
 * consistent read may not see it yet, so the next run reads it again.
 */
class ServiceMinutes {
  private readonly run = new Map<number, MinuteState>();

  constructor(
    private readonly reader: ReaderOptions,
    private readonly cost: ReadCost,
    private readonly job: ServiceJob,
    private readonly marked: ReadonlySet<number>,
  ) {}

  /** The states of minutes [a, b]. */
  async states(a: number, b: number): Promise<MinuteState[]> {
    const missing: number[] = [];
    for (let m = a; m <= b; m++) {
      if (this.run.has(m)) continue;
      const kept = this.job.cache.get(this.job.service, m);
      if (kept) {
        this.run.set(m, kept);
        this.job.minutes.cached++;
      } else missing.push(m);
    }
    await mapBounded(missing, 4, async (m) => {
      const local = newCost();
      const parts = await readBlockParts(this.reader, this.job.service, m, m, local, {
        rollups: false,
      });
      addCost(this.cost, local);
      const state = buildMinuteState(this.job.service, m, parts, local.badParts);
      this.run.set(m, state);
      this.job.minutes.read++;
      if (!this.marked.has(m)) this.job.cache.offer(state, this.job.now);
    });
    const out: MinuteState[] = [];
    for (let m = a; m <= b; m++) out.push(this.run.get(m)!);
    return out;
  }
}

async function summarizeService(
  reader: ReaderOptions,
  settings: SummarizeSettings,
  cost: ReadCost,
  job: ServiceJob,
) {
  const window = settings.activeWindowSeconds;
  const latestRaw = await readLatestSummary(reader, job.service, cost);
  const latestParsed = latestRaw ? SummaryItem.safeParse(latestRaw) : undefined;
  const previous = latestParsed?.success ? latestParsed.data : undefined;
  const done = previous?.minute;
  const toSummarize = new Set<number>();
  if (done === undefined || done < job.minute) {
    const from = Math.max(
      done === undefined ? job.minute : done + 1,
      job.minute - MAX_CATCH_UP_MINUTES + 1,
    );
    for (let m = from; m <= job.minute; m++) toSummarize.add(m);
  }
  const frontier = Math.max(done ?? -1, job.minute);
  const rollups = new Set<number>();
  for (const mark of job.late) {
    const [a, b] = summariesIncluding(mark.minute, window);
    for (let m = a; m <= Math.min(b, frontier); m++) toSummarize.add(m);
    const h = hourOf(mark.minute);
    // That hour's roll-up already exists (or is due now): rebuild it with the late block.
    if ((h + 1) * ROLLUP_MINUTES - 1 <= frontier) rollups.add(h);
  }
  for (const m of toSummarize) {
    if ((m + 1) % ROLLUP_MINUTES === 0 && (done === undefined || m > done)) rollups.add(hourOf(m));
  }
  // The service's first listed minute: earlier minutes are summarized only if they hold parts.
  const born = job.firstSeen === undefined ? undefined : Math.floor(job.firstSeen / MINUTE_MS);
  const summarized: number[] = [];
  let latest: SummaryItem | null = previous ?? null;
  const states = new ServiceMinutes(
    reader,
    cost,
    job,
    new Set(job.late.map((mark) => mark.minute)),
  );
  for (const m of [...toSummarize].sort((a, b) => a - b)) {
    const { since, firstMinute } = summaryWindow(m, window);
    let summary: SummaryItem;
    if (job.lastSeen < since - SERVICE_LAST_SEEN_SLACK_MS) {
      // Surely idle over the whole window: a zero summary without reading blocks,
      // written only when it changes what the latest summary says.
      summary = buildSummary({
        service: job.service,
        minute: m,
        windowSeconds: window,
        computedAt: job.now,
        parts: [],
        badParts: 0,
      });
      if (!previous || (previous.activeClients === 0 && previous.minute < m)) {
        latest = previous ?? null;
        continue;
      }
    } else if (wholeHours(firstMinute, m - 1).length === 0) {
      summary = summarizeStates({
        service: job.service,
        minute: m,
        windowSeconds: window,
        computedAt: job.now,
        states: await states.states(firstMinute, m),
      });
    } else {
      // A window holding a whole hour reads it from its roll-up: not per minute, not cached.
      const local = newCost();
      const [before, own] = await Promise.all([
        readBlockParts(reader, job.service, firstMinute, m - 1, local),
        readBlockParts(reader, job.service, m, m, local, { rollups: false }),
      ]);
      addCost(cost, local);
      summary = buildSummary({
        service: job.service,
        minute: m,
        windowSeconds: window,
        computedAt: job.now,
        parts: [...before, ...own],
        badParts: local.badParts,
      });
    }
    // Nothing of the service up to m (m before its firstSeen): not counted yet, not 0. Parts
    // there (a block stored after a later one set firstSeen, or a late one) make it a real count.
    if (born !== undefined && m < born && summary.partsRead === 0 && summary.badParts === 0) {
      continue;
    }
    // Counts first: if the summary's put then fails, the next run redoes both; the other
    // order could leave a stored summary whose minute the history never gets.
    await putMinuteCounts(reader, summary, settings.retentionHours);
    await reader.doc.send(
      new PutCommand({
        TableName: reader.table,
        Item: {
          ...summaryKey(job.service, m),
          ...summary,
          ttl: ttlFor(summary.until, settings.retentionHours),
        },
      }),
    );
    summarized.push(m);
    if (!latest || m >= latest.minute) latest = summary;
  }
  // The roll-up function builds the hour (functions/rollup/): this run only says so.
  const rollupsDue: number[] = [];
  for (const h of [...rollups].sort((a, b) => a - b)) {
    if (job.lastSeen < h * ROLLUP_MINUTES * MINUTE_MS - SERVICE_LAST_SEEN_SLACK_MS) continue;
    await markRollupDue(reader, job.service, h, job.now, settings.retentionHours);
    rollupsDue.push(h);
  }
  let marksDeleted = 0;
  for (const mark of job.late) {
    if (await deleteUnlessChanged(reader, mark.item)) marksDeleted++;
  }
  return { latest, summarized, rollupsDue, marksDeleted };
}
