/**
 * The API's routes: path, parameters, answer schema and what each does. The
 * same table drives request routing, validation and the OpenAPI description.
 */
import type { z } from 'zod';
import {
  AgentsResponse,
  AlarmsQuery,
  AlarmsResponse,
  ClientIpQuery,
  ClientIpResponse,
  ClientsQuery,
  ClientsResponse,
  CountQuery,
  CountResponse,
  HistoryQuery,
  HistoryResponse,
  HostClientsQuery,
  HostClientsResponse,
  HostParam,
  IpParam,
  ServiceParam,
  ServicesResponse,
  WindowQuery,
} from '../../contract/api-schemas.js';
import {
  newCost,
  type RawItem,
  type ReadCost,
  type ReaderOptions,
  readAgents,
  readBlockParts,
  readLatestSummary,
  readServices,
  SERVICE_LAST_SEEN_SLACK_MS,
  windowMinutes,
} from '../store/block-reader.js';
import { mapBounded } from '../store/bounded-map.js';
import { readCountHours } from '../store/counts-reader.js';
import {
  activeNewestFirst,
  countActive,
  EndpointMerger,
  type ListPosition,
  type MergedClient,
  type MergeView,
  mergeParts,
  pageAfter,
  windowSince,
} from '../store/endpoint-merge.js';
import { type AlarmSource, noAlarms } from './alarm-source.js';
import {
  agentEntry,
  clientEntry,
  parseSummary,
  serviceEntry,
  unobservedFields,
  unobservedOnlyEntry,
  unobservedServices,
} from './answers.js';
import { historyHours, historyMinutes, historyPoints } from './count-history.js';
import { type CursorCodec, CursorError } from './cursor.js';
import { badRequest } from './problem.js';

/** What a route's action may use. */
export interface RouteDeps {
  reader: ReaderOptions;
  cursors: CursorCodec;
  activeWindowSeconds: number;
  /** Where alarm states come from (CloudWatch, local mode's alarms); absent: none configured. */
  alarms?: AlarmSource;
  /** Told each answer's read cost (the query handler logs it). */
  onCost?: (path: string, cost: ReadCost) => void;
}

/** A validated request as a route's action sees it. */
interface RouteInput<P, Q> {
  params: P;
  query: Q;
  deps: RouteDeps;
  now: number;
}

/** One route of the API. */
export interface Route {
  method: 'GET';
  /** OpenAPI-style template, e.g. `/v1/services/{service}/clients`. */
  path: string;
  summary: string;
  pathParams: Record<string, z.ZodType>;
  query: z.ZodObject;
  response: z.ZodType;
  run(input: RouteInput<Record<string, unknown>, unknown>): Promise<unknown>;
}

function route<P extends Record<string, z.ZodType>, Q extends z.ZodObject>(definition: {
  path: string;
  summary: string;
  pathParams: P;
  query: Q;
  response: z.ZodType;
  run(input: RouteInput<{ [K in keyof P]: z.output<P[K]> }, z.output<Q>>): Promise<unknown>;
}): Route {
  return { method: 'GET', ...definition } as Route;
}

/** Resolves a window parameter against the configured default. */
function windowOf(window: number | undefined, deps: RouteDeps): number {
  return window ?? deps.activeWindowSeconds;
}

/** The window of a paged query: fixed by its cursor, or starting now. */
function pageWindow(
  deps: RouteDeps,
  scope: string,
  window: number,
  cursor: string | undefined,
  now: number,
): { since: number; now: number; after: ListPosition | null } {
  if (cursor === undefined) return { since: windowSince(now, window), now, after: null };
  try {
    const state = deps.cursors.decode(cursor, scope);
    return { since: state.since, now: state.now, after: state.after };
  } catch (err) {
    if (err instanceof CursorError) throw badRequest('cursor', err.message);
    throw err;
  }
}

/** One page of a sorted listing and its cursor. */
function page(
  deps: RouteDeps,
  scope: string,
  sorted: MergedClient[],
  at: { since: number; now: number; after: ListPosition | null },
  limit: number,
) {
  const { page: entries, next } = pageAfter(sorted, at.after, limit);
  const nextCursor = next
    ? deps.cursors.encode({ scope, since: at.since, now: at.now, after: next })
    : null;
  return { entries, nextCursor };
}

/** Services whose listed lastSeen may fall inside a window starting at `since`. */
function activeServices(items: RawItem[], since: number): string[] {
  return items
    .filter(
      (i) =>
        typeof i.service === 'string' &&
        typeof i.lastSeen === 'number' &&
        i.lastSeen >= since - SERVICE_LAST_SEEN_SLACK_MS,
    )
    .map((i) => String(i.service));
}

/** Merged entries of one service over [since, now]. */
async function serviceEntries(
  deps: RouteDeps,
  cost: ReadCost,
  service: string,
  since: number,
  now: number,
  view: MergeView,
): Promise<MergedClient[]> {
  const [a, b] = windowMinutes(since, now);
  const parts = await readBlockParts(deps.reader, service, a, b, cost);
  return mergeParts(parts, { view });
}

/** Every route but the OpenAPI document itself. */
export const ROUTES: Route[] = [
  route({
    path: '/v1/services',
    summary:
      'Services seen within the retention, with their last-seen time and their latest per-minute summary (active counts, one-way clients, socket health, top talkers).',
    pathParams: {},
    query: WindowQuery,
    response: ServicesResponse,
    async run({ query, deps, now }) {
      const window = windowOf(query.window, deps);
      const since = windowSince(now, window);
      const cost = newCost();
      const [items, agentItems] = await Promise.all([
        readServices(deps.reader, cost),
        readAgents(deps.reader, cost),
      ]);
      const summaries = await mapBounded(items, 8, (i) =>
        typeof i.service === 'string'
          ? readLatestSummary(deps.reader, i.service, cost)
          : Promise.resolve(undefined),
      );
      deps.onCost?.('/v1/services', cost);
      const unobserved = unobservedServices(agentItems, since);
      const services = items.map((i, n) =>
        serviceEntry(
          i,
          parseSummary(summaries[n]),
          since,
          unobserved.get(String(i.service))?.reason,
        ),
      );
      // Busy services no source saw a client of have no block: list them from the heartbeats.
      const listed = new Set(services.map((s) => s.service));
      for (const [service, u] of [...unobserved].sort(([a], [b]) => a.localeCompare(b)))
        if (!listed.has(service)) services.push(unobservedOnlyEntry(service, u.reason, u.at));
      return { window, since, now, services };
    },
  }),
  route({
    path: '/v1/services/{service}/clients',
    summary: 'Active clients of a service, newest first, by endpoint (ip:port) or by distinct IP.',
    pathParams: { service: ServiceParam },
    query: ClientsQuery,
    response: ClientsResponse,
    async run({ params, query, deps, now }) {
      const window = windowOf(query.window, deps);
      const by: MergeView = query.by;
      const scope = `clients|${params.service}|${by}|${window}`;
      const at = pageWindow(deps, scope, window, query.cursor, now);
      const cost = newCost();
      const entries = await serviceEntries(deps, cost, params.service, at.since, at.now, by);
      const p = page(deps, scope, activeNewestFirst(entries, at.since), at, query.limit);
      deps.onCost?.('/v1/services/{service}/clients', cost);
      return {
        service: params.service,
        by,
        window,
        since: at.since,
        now: at.now,
        clients: p.entries.map((e) => clientEntry(e)),
        nextCursor: p.nextCursor,
      };
    },
  }),
  route({
    path: '/v1/services/{service}/count',
    summary: 'Number of active endpoints and distinct client IPs of a service.',
    pathParams: { service: ServiceParam },
    query: CountQuery,
    response: CountResponse,
    async run({ params, query, deps, now }) {
      const window = windowOf(query.window, deps);
      const since = windowSince(now, window);
      const cost = newCost();
      const [entries, agentItems] = await Promise.all([
        serviceEntries(deps, cost, params.service, since, now, 'endpoint'),
        readAgents(deps.reader, cost),
      ]);
      const counted = countActive(entries, since);
      deps.onCost?.('/v1/services/{service}/count', cost);
      const reason = unobservedServices(agentItems, since).get(params.service)?.reason;
      return {
        service: params.service,
        window,
        since,
        now,
        ...counted,
        ...unobservedFields(reason),
      };
    },
  }),
  route({
    path: '/v1/services/{service}/history',
    summary:
      "A service's active endpoints and distinct IPs of each recent summarized minute (the last hour by default, a day at most), oldest first.",
    pathParams: { service: ServiceParam },
    query: HistoryQuery,
    response: HistoryResponse,
    async run({ params, query, deps, now }) {
      const [a, b] = historyMinutes(now, query.minutes);
      const [ha, hb] = historyHours(a, b);
      const cost = newCost();
      const items = await readCountHours(deps.reader, params.service, ha, hb, cost);
      deps.onCost?.('/v1/services/{service}/history', cost);
      const { points, skipped } = historyPoints(items, a, b);
      return {
        service: params.service,
        minutes: query.minutes,
        from: a * 60_000,
        until: (b + 1) * 60_000,
        now,
        points,
        skipped,
      };
    },
  }),
  route({
    path: '/v1/alarms',
    summary:
      "The stack's alarms (client-count alarms per service, operations alarms) with their state, reason and last change.",
    pathParams: {},
    query: AlarmsQuery,
    response: AlarmsResponse,
    async run({ query, deps, now }) {
      const reading = await (deps.alarms ?? noAlarms(() => now)).read();
      const alarms =
        query.service === undefined
          ? reading.alarms
          : reading.alarms.filter((a) => a.service === query.service);
      return {
        now,
        source: reading.source,
        readAt: reading.readAt,
        alarms,
        truncated: reading.truncated,
      };
    },
  }),
  route({
    path: '/v1/clients/{ip}',
    summary:
      'Everything one client IP talked to within the window (by its own or its pre-NAT address), one entry per service.',
    pathParams: { ip: IpParam },
    query: ClientIpQuery,
    response: ClientIpResponse,
    async run({ params, query, deps, now }) {
      const window = windowOf(query.window, deps);
      const since = windowSince(now, window);
      const cost = newCost();
      const services = activeServices(await readServices(deps.reader, cost), since);
      const [a, b] = windowMinutes(since, now);
      const perService = await mapBounded(services, 4, async (service) => {
        const parts = await readBlockParts(deps.reader, service, a, b, cost);
        return mergeParts(parts, { view: 'ip', ip: params.ip });
      });
      const found = activeNewestFirst(perService.flat(), since);
      deps.onCost?.('/v1/clients/{ip}', cost);
      return {
        ip: params.ip,
        window,
        since,
        now,
        services: found.slice(0, query.limit).map((e) => clientEntry(e)),
        truncated: found.length > query.limit,
      };
    },
  }),
  route({
    path: '/v1/hosts/{host}/clients',
    summary:
      'Clients one host saw within the window, one entry per (service, client IP), newest first.',
    pathParams: { host: HostParam },
    query: HostClientsQuery,
    response: HostClientsResponse,
    async run({ params, query, deps, now }) {
      const window = windowOf(query.window, deps);
      const scope = `host|${params.host}|${window}`;
      const at = pageWindow(deps, scope, window, query.cursor, now);
      const cost = newCost();
      const [serviceItems, agentItems] = await Promise.all([
        readServices(deps.reader, cost),
        readAgents(deps.reader, cost),
      ]);
      const agents = agentItems
        .filter((a) => a.host === params.host && typeof a.agentId === 'string')
        .map((a) => String(a.agentId));
      const services = activeServices(serviceItems, at.since);
      const [a, b] = windowMinutes(at.since, at.now);
      const perService = await mapBounded(services, 4, async (service) => {
        const merger = new EndpointMerger({ view: 'ip' });
        for (const agentId of agents) {
          const parts = await readBlockParts(deps.reader, service, a, b, cost, { agentId });
          // An agent id moved to another host keeps its old blocks: only this host's count.
          for (const p of parts) if (p.block.host === params.host) merger.add(p);
        }
        return merger.result();
      });
      const p = page(deps, scope, activeNewestFirst(perService.flat(), at.since), at, query.limit);
      deps.onCost?.('/v1/hosts/{host}/clients', cost);
      return {
        host: params.host,
        window,
        since: at.since,
        now: at.now,
        clients: p.entries.map((e) => clientEntry(e, params.host)),
        nextCursor: p.nextCursor,
      };
    },
  }),
  route({
    path: '/v1/agents',
    summary: 'Agents and when each last reported (heartbeat), with their drop and spool counters.',
    pathParams: {},
    query: WindowQuery,
    response: AgentsResponse,
    async run({ query, deps, now }) {
      const window = windowOf(query.window, deps);
      const since = windowSince(now, window);
      const cost = newCost();
      const items = await readAgents(deps.reader, cost);
      deps.onCost?.('/v1/agents', cost);
      return { window, since, now, agents: items.map((i) => agentEntry(i, since)) };
    },
  }),
];

/** Matches a path template against a raw path; returns the (still encoded) path parameters. */
export function matchPath(template: string, rawPath: string): Record<string, string> | null {
  const want = template.split('/');
  const got = rawPath.replace(/\/+$/, '').split('/');
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith('{') && w.endsWith('}')) {
      if (g === '') return null;
      params[w.slice(1, -1)] = g;
    } else if (w !== g) return null;
  }
  return params;
}
