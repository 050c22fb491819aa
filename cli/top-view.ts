/**
 * `udpwatch top`: the busiest services and clients, refreshed in place like
 * `top` on a terminal, or printed frame after frame into a pipe.
 *
 * Busiest means packets per second since the previous refresh (counters are
 * totals, so a rate needs two samples); on the first frame, and between equal
 * rates, total packets decide.
 */
import type { Writable } from 'node:stream';
import type { ClientEntry } from '../contract/api-schemas.js';
import { MAX_LIMIT } from '../contract/api-schemas.js';
import type { ApiClient } from './api-client.js';
import { CliError } from './cli-errors.js';
import { formatAgo, formatSpan } from './duration.js';
import { formatBytes, formatCount, formatRate } from './human-units.js';
import { renderTable, truncateLine } from './tables.js';

/** Pages of one service's clients read per refresh (bounds a refresh's cost). */
const MAX_PAGES_PER_SERVICE = 5;
/** Services read per refresh without a service argument: the most recently active ones. */
const MAX_SERVICES = 20;
/** Services shown in the services table. */
const SERVICE_ROWS = 10;

/** One refresh's worth of data. */
export interface TopSample {
  /** The API's clock when answering (epoch ms). */
  at: number;
  window: number;
  clients: ClientEntry[];
  /** Services whose clients did not all fit in the pages read. */
  truncated: string[];
  /** Busy services whose peers no live source of their agent observes. */
  unobserved?: string[];
}

/** A client with what top derives for it. */
export interface RankedClient {
  key: string;
  entry: ClientEntry;
  packets: number;
  bytes: number;
  /** Packets per second since the previous sample; null on the first. */
  rate: number | null;
}

/** A service summed over its clients in a sample. */
export interface RankedService {
  service: string;
  endpoints: number;
  ips: number;
  packets: number;
  bytes: number;
  rate: number | null;
  lastSeen: number;
  truncated: boolean;
}

function keyOf(c: ClientEntry): string {
  return `${c.service}|${c.endpoint ?? c.ip}`;
}

/** Ranks a sample's clients: rate, then total packets, then recency; `previous` gives the rates. */
export function rankClients(current: TopSample, previous?: TopSample): RankedClient[] {
  const before = new Map(previous?.clients.map((c) => [keyOf(c), c]));
  const elapsed = previous ? (current.at - previous.at) / 1000 : 0;
  const ranked = current.clients.map((entry): RankedClient => {
    const packets = entry.pktsIn + entry.pktsOut;
    const key = keyOf(entry);
    let rate: number | null = null;
    if (previous && elapsed > 0) {
      const old = before.get(key);
      if (old) rate = Math.max(0, packets - old.pktsIn - old.pktsOut) / elapsed;
      // New since the previous sample: all its packets are recent.
      else rate = entry.firstSeen >= previous.at ? packets / elapsed : 0;
    }
    return { key, entry, packets, bytes: entry.bytesIn + entry.bytesOut, rate };
  });
  return ranked.sort(
    (a, b) =>
      (b.rate ?? 0) - (a.rate ?? 0) ||
      b.packets - a.packets ||
      b.entry.lastSeen - a.entry.lastSeen ||
      a.key.localeCompare(b.key),
  );
}

/** Sums ranked clients per service, busiest first. */
export function rankServices(
  clients: readonly RankedClient[],
  truncated: readonly string[],
): RankedService[] {
  const byService = new Map<string, RankedService & { ipSet: Set<string> }>();
  for (const c of clients) {
    const name = c.entry.service;
    let s = byService.get(name);
    if (!s) {
      s = {
        service: name,
        endpoints: 0,
        ips: 0,
        packets: 0,
        bytes: 0,
        rate: null,
        lastSeen: 0,
        truncated: truncated.includes(name),
        ipSet: new Set(),
      };
      byService.set(name, s);
    }
    s.endpoints++;
    s.ipSet.add(c.entry.ip);
    s.packets += c.packets;
    s.bytes += c.bytes;
    if (c.rate !== null) s.rate = (s.rate ?? 0) + c.rate;
    s.lastSeen = Math.max(s.lastSeen, c.entry.lastSeen);
  }
  return [...byService.values()]
    .map(({ ipSet, ...s }) => ({ ...s, ips: ipSet.size }))
    .sort(
      (a, b) =>
        (b.rate ?? 0) - (a.rate ?? 0) ||
        b.packets - a.packets ||
        a.service.localeCompare(b.service),
    );
}

/** What a frame shows besides the data. */
export interface FrameOptions {
  title: string;
  /** Client rows at most. */
  limit: number;
  /** Terminal size when drawing in place; lines are clipped to it. */
  columns?: number;
  rows?: number;
  /** A failed refresh, shown above the last good data. */
  error?: string;
}

function plural(n: number, one: string): string {
  return `${n} ${one}${n === 1 ? '' : 's'}`;
}

const rateCell = (rate: number | null) => (rate === null ? '-' : formatRate(rate));

/** Renders one frame of top as lines. */
export function renderTopFrame(
  sample: TopSample,
  previous: TopSample | undefined,
  options: FrameOptions,
): string[] {
  const clients = rankClients(sample, previous);
  const services = rankServices(clients, sample.truncated);
  const ips = new Set(clients.map((c) => `${c.entry.service}|${c.entry.ip}`)).size;
  const lines = [
    `${options.title} - ${new Date(sample.at).toISOString().slice(0, 19).replace('T', ' ')} UTC`,
    `${plural(services.length, 'service')}, ${plural(clients.length, 'endpoint')}, ${plural(ips, 'client IP')} active in the last ${formatSpan(sample.window)}`,
  ];
  if (options.error) lines.push(`! ${options.error}`);
  if (sample.unobserved?.length) {
    // Their clients are missing from the counts below, not absent.
    lines.push(`! peers unobserved: ${sample.unobserved.join(', ')} (why: udpwatch services)`);
  }
  lines.push('');
  if (clients.length === 0) {
    lines.push('no active clients');
  } else {
    lines.push(
      ...renderTable(
        [
          { header: 'service', cell: (s: RankedService) => s.service },
          {
            header: 'endpoints',
            align: 'right',
            cell: (s) => `${s.endpoints}${s.truncated ? '+' : ''}`,
          },
          { header: 'ips', align: 'right', cell: (s) => `${s.ips}${s.truncated ? '+' : ''}` },
          { header: 'pkts/s', align: 'right', cell: (s) => rateCell(s.rate) },
          { header: 'pkts', align: 'right', cell: (s) => formatCount(s.packets) },
          { header: 'bytes', align: 'right', cell: (s) => formatBytes(s.bytes) },
          { header: 'last seen', align: 'right', cell: (s) => formatAgo(s.lastSeen, sample.at) },
        ],
        services.slice(0, SERVICE_ROWS),
      ),
      '',
      ...renderTable(
        [
          { header: 'client', cell: (c: RankedClient) => c.entry.endpoint ?? c.entry.ip },
          { header: 'service', cell: (c) => c.entry.service },
          { header: 'pkts/s', align: 'right', cell: (c) => rateCell(c.rate) },
          { header: 'pkts', align: 'right', cell: (c) => formatCount(c.packets) },
          { header: 'bytes', align: 'right', cell: (c) => formatBytes(c.bytes) },
          {
            header: 'last seen',
            align: 'right',
            cell: (c) => formatAgo(c.entry.lastSeen, sample.at),
          },
          { header: 'hosts', cell: (c) => c.entry.hosts.join(',') || '-' },
        ],
        clients.slice(0, options.limit),
      ),
    );
  }
  const clipped = options.rows ? lines.slice(0, Math.max(1, options.rows - 1)) : lines;
  return options.columns ? clipped.map((l) => truncateLine(l, options.columns!)) : clipped;
}

/** A frame as one JSON object (for `--json`): the ranked rows top would show. */
export function topFrameJson(sample: TopSample, previous: TopSample | undefined, limit: number) {
  const clients = rankClients(sample, previous);
  return {
    now: sample.at,
    window: sample.window,
    services: rankServices(clients, sample.truncated).map((s) => ({ ...s, pktsPerSecond: s.rate })),
    clients: clients.slice(0, limit).map((c) => ({
      ...c.entry,
      packets: c.packets,
      bytes: c.bytes,
      pktsPerSecond: c.rate,
    })),
  };
}

/** Reads up to MAX_PAGES_PER_SERVICE pages of a service's active endpoints. */
async function serviceClients(api: ApiClient, service: string, window: number | undefined) {
  const clients: ClientEntry[] = [];
  let cursor: string | undefined;
  let at = 0;
  let answeredWindow = 0;
  for (let page = 0; page < MAX_PAGES_PER_SERVICE; page++) {
    const { data } = await api.clients(service, {
      window,
      by: 'endpoint',
      limit: MAX_LIMIT,
      cursor,
    });
    if (page === 0) {
      at = data.now;
      answeredWindow = data.window;
    }
    clients.push(...data.clients);
    if (!data.nextCursor) return { clients, at, window: answeredWindow, truncated: false };
    cursor = data.nextCursor;
  }
  return { clients, at, window: answeredWindow, truncated: true };
}

/** Takes one sample: one service's clients, or those of the most recently active services. */
export async function collectTopSample(
  api: ApiClient,
  service: string | undefined,
  window: number | undefined,
): Promise<TopSample> {
  if (service !== undefined) {
    const read = await serviceClients(api, service, window);
    return {
      at: read.at,
      window: read.window,
      clients: read.clients,
      truncated: read.truncated ? [service] : [],
    };
  }
  const { data } = await api.services(window);
  const active = data.services
    .filter((s) => s.active)
    .sort((a, b) => b.lastSeen - a.lastSeen)
    .slice(0, MAX_SERVICES);
  const reads = await Promise.all(active.map((s) => serviceClients(api, s.service, window)));
  return {
    at: data.now,
    window: data.window,
    clients: reads.flatMap((r) => r.clients),
    truncated: active.filter((_, i) => reads[i]!.truncated).map((s) => s.service),
    unobserved: data.services.filter((s) => s.peersUnobserved).map((s) => s.service),
  };
}

/** What `runTop` draws on and reads keys from. */
export interface TopTerminal {
  stdout: Writable & { isTTY?: boolean; columns?: number; rows?: number };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
}

/** How `runTop` runs. */
export interface TopOptions {
  api: ApiClient;
  apiUrl: string;
  service?: string;
  window?: number;
  limit: number;
  intervalSeconds: number;
  iterations?: number;
  json: boolean;
}

const ESC = '\u001b[';
const ENTER_SCREEN = `${ESC}?1049h${ESC}?25l`;
const LEAVE_SCREEN = `${ESC}?25h${ESC}?1049l`;

/**
 * Refreshes until q / Ctrl-C or `iterations` frames. On a terminal, draws in
 * place on the alternate screen and shows a failed refresh above the last good
 * data; into a pipe, prints frames one after another and stops at the first
 * failure (a script needs the exit code).
 */
export async function runTop(options: TopOptions, term: TopTerminal): Promise<void> {
  const tty = Boolean(term.stdout.isTTY) && !options.json;
  let quit: () => void = () => {};
  const quitting = new Promise<void>((resolve) => {
    quit = resolve;
  });
  let stopped = false;
  void quitting.then(() => {
    stopped = true;
  });
  const onKey = (chunk: Buffer | string) => {
    const text = chunk.toString();
    if (text.includes('q') || text.includes('Q') || text.includes('\u0003')) quit();
  };
  const onSignal = () => quit();
  // A closed pipe (`| head`) ends top quietly.
  const onOutputError = () => quit();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  term.stdout.on('error', onOutputError);
  const keys = tty && Boolean(term.stdin.isTTY) && typeof term.stdin.setRawMode === 'function';
  if (keys) {
    term.stdin.setRawMode!(true);
    term.stdin.on('data', onKey);
    term.stdin.resume();
  }
  if (tty) term.stdout.write(ENTER_SCREEN);

  const title = `udpwatch top - ${options.service ?? 'all services'} - every ${formatSpan(options.intervalSeconds)} - ${options.apiUrl}`;
  let previous: TopSample | undefined;
  let shown: TopSample | undefined;
  try {
    for (let frame = 0; options.iterations === undefined || frame < options.iterations; frame++) {
      if (frame > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          quitting,
          new Promise((r) => {
            timer = setTimeout(r, options.intervalSeconds * 1000);
          }),
        ]);
        clearTimeout(timer);
      }
      if (stopped) break;
      // The sample to show and the one its rates are measured against.
      let sample: TopSample;
      let base: TopSample | undefined;
      let error: string | undefined;
      try {
        sample = await collectTopSample(options.api, options.service, options.window);
        base = shown;
      } catch (err) {
        // Off a terminal, or before anything was shown, a failure ends top with its exit code.
        if (!tty || !shown || !(err instanceof CliError)) throw err;
        error = `${err.message.split('\n')[0]} (retrying)`;
        sample = shown;
        base = previous;
      }
      if (stopped) break;
      if (options.json) {
        term.stdout.write(`${JSON.stringify(topFrameJson(sample, base, options.limit))}\n`);
      } else if (tty) {
        const lines = renderTopFrame(sample, base, {
          title,
          limit: options.limit,
          columns: term.stdout.columns,
          rows: term.stdout.rows,
          ...(error ? { error } : {}),
        });
        term.stdout.write(`${ESC}H${lines.map((l) => `${l}${ESC}K`).join('\n')}\n${ESC}J`);
      } else {
        const lines = renderTopFrame(sample, base, { title, limit: options.limit });
        term.stdout.write(`${lines.join('\n')}\n\n`);
      }
      if (!error) {
        previous = base;
        shown = sample;
      }
    }
  } finally {
    if (tty) term.stdout.write(LEAVE_SCREEN);
    if (keys) {
      term.stdin.off('data', onKey);
      term.stdin.setRawMode!(false);
      term.stdin.pause();
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    term.stdout.off('error', onOutputError);
  }
}
