/** Each API answer as the lines a person reads: an aligned table and a one-line summary. */
import type {
  AgentsResponse,
  ClientEntry,
  ClientIpResponse,
  ClientsResponse,
  CountResponse,
  HostClientsResponse,
  ServicesResponse,
} from '../contract/api-schemas.js';
import { formatAgo, formatSpan } from './duration.js';
import { formatBytes, formatCount } from './human-units.js';
import { type Column, renderTable } from './tables.js';

const dash = '-';

/** Counter columns shared by every listing of clients, ages relative to the answer's `now`. */
function counterColumns(now: number): Column<ClientEntry>[] {
  return [
    { header: 'pkts in', align: 'right', cell: (c) => formatCount(c.pktsIn) },
    { header: 'bytes in', align: 'right', cell: (c) => formatBytes(c.bytesIn) },
    { header: 'pkts out', align: 'right', cell: (c) => formatCount(c.pktsOut) },
    { header: 'bytes out', align: 'right', cell: (c) => formatBytes(c.bytesOut) },
    { header: 'first seen', align: 'right', cell: (c) => formatAgo(c.firstSeen, now) },
    { header: 'last seen', align: 'right', cell: (c) => formatAgo(c.lastSeen, now) },
  ];
}

const hostsColumn: Column<ClientEntry> = {
  header: 'hosts',
  cell: (c) => c.hosts.join(',') || dash,
};
const sourcesColumn: Column<ClientEntry> = {
  header: 'sources',
  cell: (c) => c.sources.join(',') || dash,
};
/** Pre-NAT addresses, shown only when some listed client has one (older APIs send none). */
function natColumns(clients: readonly ClientEntry[]): Column<ClientEntry>[] {
  if (!clients.some((c) => (c.natFrom ?? []).length > 0)) return [];
  return [{ header: 'pre-NAT', cell: (c) => (c.natFrom ?? []).join(',') || dash }];
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** GET /v1/services */
export function servicesView(a: ServicesResponse): string[] {
  if (a.services.length === 0) return ['no services seen yet'];
  const table = renderTable(
    [
      { header: 'service', cell: (s) => s.service },
      { header: 'active', cell: (s) => (s.active ? 'yes' : 'no') },
      {
        header: 'clients',
        align: 'right',
        cell: (s) =>
          s.peersUnobserved && !s.activeClients
            ? UNOBSERVED
            : s.activeClients === null
              ? dash
              : formatCount(s.activeClients),
      },
      {
        header: 'ips',
        align: 'right',
        cell: (s) => (s.activeClientIps === null ? dash : formatCount(s.activeClientIps)),
      },
      ...(a.services.some((s) => s.summary)
        ? [
            {
              header: 'one-way',
              align: 'right' as const,
              cell: (s: (typeof a.services)[number]) =>
                s.summary ? formatCount(s.summary.oneWay) : dash,
            },
            {
              header: 'sock drops',
              align: 'right' as const,
              cell: (s: (typeof a.services)[number]) =>
                s.summary?.socket ? formatCount(s.summary.socket.drops) : dash,
            },
          ]
        : []),
      { header: 'last seen', align: 'right', cell: (s) => formatAgo(s.lastSeen, a.now) },
      { header: 'first seen', align: 'right', cell: (s) => formatAgo(s.firstSeen, a.now) },
    ],
    a.services,
  );
  const active = a.services.filter((s) => s.active).length;
  const summary = `${plural(a.services.length, 'service')}, ${active} active in the last ${formatSpan(a.window)}`;
  const counted = a.services.some((s) => s.countsAt === null)
    ? ' (client counts come from the per-minute summaries; "-" = not summarized yet)'
    : '';
  return [...table, '', summary + counted, ...unobservedLines(a.services)];
}

/** What the clients column says of a busy service whose peers no live source sees. */
const UNOBSERVED = 'peers unobserved';

/** One line per service flagged as busy with unobserved peers, with the agent's reason. */
function unobservedLines(
  services: readonly { service: string; peersUnobserved: boolean; unobservedReason?: string }[],
): string[] {
  const flagged = services.filter((s) => s.peersUnobserved);
  if (flagged.length === 0) return [];
  return [
    '',
    `${plural(flagged.length, 'service')} busy with ${UNOBSERVED} (missing clients are not absent clients):`,
    ...flagged.map((s) => `  ${s.service}: ${s.unobservedReason ?? 'no reason given'}`),
  ];
}

/** GET /v1/services/{service}/clients (possibly several pages merged). */
export function clientsView(a: ClientsResponse): string[] {
  const what = a.by === 'ip' ? 'client IP' : 'endpoint';
  if (a.clients.length === 0) {
    return [`no active ${what}s of ${a.service} in the last ${formatSpan(a.window)}`];
  }
  const first: Column<ClientEntry> =
    a.by === 'ip'
      ? { header: 'ip', cell: (c) => c.ip }
      : { header: 'endpoint', cell: (c) => c.endpoint ?? c.ip };
  const table = renderTable(
    [first, ...counterColumns(a.now), hostsColumn, sourcesColumn, ...natColumns(a.clients)],
    a.clients,
  );
  const lines = [
    ...table,
    '',
    `${plural(a.clients.length, `active ${what}`)} of ${a.service} in the last ${formatSpan(a.window)}`,
  ];
  if (a.nextCursor) {
    lines.push(`more: add --cursor ${a.nextCursor} for the next page, or --all for every page`);
  }
  return lines;
}

/** GET /v1/services/{service}/count */
export function countView(a: CountResponse): string[] {
  return renderTable(
    [
      { header: 'service', cell: (c: CountResponse) => c.service },
      { header: 'window', align: 'right', cell: (c) => formatSpan(c.window) },
      { header: 'endpoints', align: 'right', cell: (c) => String(c.endpoints) },
      { header: 'ips', align: 'right', cell: (c) => String(c.ips) },
    ],
    [a],
  ).concat(unobservedLines([a]));
}

/** GET /v1/clients/{ip} */
export function clientIpView(a: ClientIpResponse): string[] {
  if (a.services.length === 0) {
    return [`${a.ip} talked to no service in the last ${formatSpan(a.window)}`];
  }
  const table = renderTable(
    [
      { header: 'service', cell: (c) => c.service },
      ...counterColumns(a.now),
      hostsColumn,
      sourcesColumn,
    ],
    a.services,
  );
  const lines = [
    ...table,
    '',
    `${a.ip} talked to ${plural(a.services.length, 'service')} in the last ${formatSpan(a.window)}`,
  ];
  if (a.truncated) lines.push('more services matched: raise --limit to see them');
  return lines;
}

/** GET /v1/hosts/{host}/clients (possibly several pages merged). */
export function hostClientsView(a: HostClientsResponse): string[] {
  if (a.clients.length === 0)
    return [`${a.host} saw no active client in the last ${formatSpan(a.window)}`];
  const table = renderTable(
    [
      { header: 'service', cell: (c) => c.service },
      { header: 'client', cell: (c) => c.endpoint ?? c.ip },
      ...counterColumns(a.now),
      sourcesColumn,
    ],
    a.clients,
  );
  const lines = [
    ...table,
    '',
    `${a.host} saw ${plural(a.clients.length, 'active client')} in the last ${formatSpan(a.window)}`,
  ];
  if (a.nextCursor) {
    lines.push(`more: add --cursor ${a.nextCursor} for the next page, or --all for every page`);
  }
  return lines;
}

/** GET /v1/agents */
export function agentsView(a: AgentsResponse): string[] {
  if (a.agents.length === 0) return ['no agent has reported yet'];
  const table = renderTable(
    [
      { header: 'agent', cell: (g) => g.agentId },
      { header: 'host', cell: (g) => g.host },
      { header: 'status', cell: (g) => (g.reporting ? 'reporting' : 'silent') },
      { header: 'last heartbeat', align: 'right', cell: (g) => formatAgo(g.lastHeartbeat, a.now) },
      { header: 'flows', align: 'right', cell: (g) => formatCount(g.flows) },
      { header: 'dropped', align: 'right', cell: (g) => formatCount(g.dropped) },
      { header: 'spooled', align: 'right', cell: (g) => formatCount(g.spooled) },
      { header: 'sources', cell: (g) => g.sources.join(',') || dash },
    ],
    a.agents,
  );
  const reporting = a.agents.filter((g) => g.reporting).length;
  const notLive: string[] = [];
  for (const g of a.agents) {
    for (const s of g.sourceStates) {
      if (s.state === 'live' && !s.reason) continue;
      notLive.push(`  ${g.agentId} ${s.source}: ${s.state}${s.reason ? ` - ${s.reason}` : ''}`);
    }
    for (const u of g.unobserved)
      notLive.push(`  ${g.agentId} ${UNOBSERVED}: ${u.service} (udp port ${u.port}) - ${u.reason}`);
    if (g.hookUnmatched > 0)
      notLive.push(
        `  ${g.agentId} hook: ${formatCount(g.hookUnmatched)} reports for sockets the agent does not list - a hooked daemon in another network namespace than the agent: its socket health goes unseen; run an agent in its namespace`,
      );
  }
  return [
    ...table,
    '',
    `${plural(a.agents.length, 'agent')}, ${reporting} reporting in the last ${formatSpan(a.window)}`,
    ...(notLive.length > 0 ? ['', 'sources not live, and what they miss:', ...notLive] : []),
  ];
}
