/**
 * The API's routes: path, parameters, answer schema and what each does. The
 * same table drives request routing, validation and the OpenAPI description.
 */
import type { z } from 'zod';
import {
  AgentsResponse,
  ClientIpQuery,
  ClientIpResponse,
  ClientsQuery,
  ClientsResponse,
  CountQuery,
  CountResponse,
  HostClientsQuery,
  HostClientsResponse,
  HostParam,
  IpParam,
  ServiceParam,
  ServicesResponse,
  WindowQuery,
} from '../../contract/api-schemas.js';
import {
  allShards,
  type ClientView,
  clientIpPartition,
  hostActivityPartition,
  serviceActivityPartition,
} from '../../contract/table-keys.js';
import {
  countActive,
  type ReaderOptions,
  readActivityPage,
  readAgents,
  readClientIp,
  readServices,
  type ShardPosition,
} from '../store/item-reader.js';
import { agentEntry, clientEntry, serviceEntry } from './answers.js';
import { type CursorCodec, CursorError } from './cursor.js';
import { badRequest } from './problem.js';

/** What a route's action may use. */
export interface RouteDeps {
  reader: ReaderOptions;
  cursors: CursorCodec;
  activeWindowSeconds: number;
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

/** Reads one page of a sharded listing, continuing from a cursor if given. */
async function pagedRead(
  deps: RouteDeps,
  scope: string,
  partitions: string[],
  window: number,
  limit: number,
  cursor: string | undefined,
  now: number,
) {
  let since = now - window * 1000;
  let positions: ShardPosition[] = partitions.map(() => 'start');
  if (cursor !== undefined) {
    try {
      const state = deps.cursors.decode(cursor, scope, partitions.length);
      since = state.since;
      positions = state.positions;
    } catch (err) {
      if (err instanceof CursorError) throw badRequest('cursor', err.message);
      throw err;
    }
  }
  const page = await readActivityPage(deps.reader, partitions, since, limit, positions);
  const nextCursor = page.done
    ? null
    : deps.cursors.encode({ scope, since, positions: page.positions });
  return { since, items: page.items, nextCursor };
}

/** Every route but the OpenAPI document itself. */
export const ROUTES: Route[] = [
  route({
    path: '/v1/services',
    summary:
      'Services seen within the retention, with their last-seen time and active client counts.',
    pathParams: {},
    query: WindowQuery,
    response: ServicesResponse,
    async run({ query, deps, now }) {
      const window = windowOf(query.window, deps);
      const since = now - window * 1000;
      const items = await readServices(deps.reader);
      return { window, since, now, services: items.map((i) => serviceEntry(i, since)) };
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
      const by: ClientView = query.by;
      const partitions = allShards().map((s) => serviceActivityPartition(by, params.service, s));
      const scope = `clients|${params.service}|${by}|${window}`;
      const page = await pagedRead(deps, scope, partitions, window, query.limit, query.cursor, now);
      return {
        service: params.service,
        by,
        window,
        since: page.since,
        now,
        clients: page.items.map(clientEntry),
        nextCursor: page.nextCursor,
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
      const since = now - window * 1000;
      const shards = allShards();
      const [endpoints, ips] = await Promise.all([
        countActive(
          deps.reader,
          shards.map((s) => serviceActivityPartition('endpoint', params.service, s)),
          since,
        ),
        countActive(
          deps.reader,
          shards.map((s) => serviceActivityPartition('ip', params.service, s)),
          since,
        ),
      ]);
      return { service: params.service, window, since, now, endpoints, ips };
    },
  }),
  route({
    path: '/v1/clients/{ip}',
    summary: 'Everything one client IP talked to within the window, one entry per service.',
    pathParams: { ip: IpParam },
    query: ClientIpQuery,
    response: ClientIpResponse,
    async run({ params, query, deps, now }) {
      const window = windowOf(query.window, deps);
      const since = now - window * 1000;
      const read = await readClientIp(
        deps.reader,
        clientIpPartition(params.ip),
        since,
        query.limit,
      );
      return {
        ip: params.ip,
        window,
        since,
        now,
        services: read.items.map(clientEntry),
        truncated: read.truncated,
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
      const partitions = allShards().map((s) => hostActivityPartition(params.host, s));
      const scope = `host|${params.host}|${window}`;
      const page = await pagedRead(deps, scope, partitions, window, query.limit, query.cursor, now);
      return {
        host: params.host,
        window,
        since: page.since,
        now,
        clients: page.items.map(clientEntry),
        nextCursor: page.nextCursor,
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
      const since = now - window * 1000;
      const items = await readAgents(deps.reader);
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
