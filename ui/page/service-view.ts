/**
 * One service: its active clients (sortable, filterable by IP, CIDR or port),
 * top talkers, one-way clients, the hosts that see them and the pre-NAT
 * addresses, with the service's chart (stored hour, then live samples), its
 * alarms and its "peers unobserved" warning.
 */
import type { AlarmEntry, ClientEntry } from '../../contract/api-schemas.js';
import { alarmCondition, STATE_LABEL } from './alarm-state.js';
import { alarms, allClients, MAX_CLIENT_PAGES, services } from './api-fetch.js';
import { parseClientFilter } from './client-filter.js';
import { CountChart } from './count-chart.js';
import { formatRoute, type Route, type SortKey } from './deep-link.js';
import { type Column, h, KeyedTable, setText } from './dom.js';
import { formatBytes, formatCount, formatUtc, formatWindow } from './format.js';
import { seedHistories, showWarning } from './services-view.js';
import { trafficColumns } from './traffic-columns.js';
import type { View, ViewContext } from './view.js';

type ServiceRoute = Extract<Route, { view: 'service' }>;

/** Rows the client table shows at first; "Show more" adds as many again. */
const PAGE_ROWS = 500;
/** Rows of each of the smaller tables. */
const SIDE_ROWS = 10;

const packets = (c: ClientEntry) => c.pktsIn + c.pktsOut;
const bytes = (c: ClientEntry) => c.bytesIn + c.bytesOut;
const keyOf = (c: ClientEntry) => c.endpoint ?? c.ip;

const SORTS: Record<SortKey, (c: ClientEntry) => number> = {
  lastSeen: (c) => c.lastSeen,
  packets,
  bytes,
};
const SORT_TITLES: Record<SortKey, string> = {
  lastSeen: 'Last seen',
  packets: 'Packets',
  bytes: 'Bytes',
};

/** Sorts clients by a key and direction, ties by address so the order is stable. */
export function sortClients(
  list: ClientEntry[],
  sort: SortKey,
  dir: 'asc' | 'desc',
): ClientEntry[] {
  const by = SORTS[sort];
  const sign = dir === 'asc' ? 1 : -1;
  return [...list].sort((a, b) => sign * (by(a) - by(b)) || (keyOf(a) < keyOf(b) ? -1 : 1));
}

/** The service view of a route. */
export function serviceView(route: ServiceRoute, ctx: ViewContext): View {
  let now = Date.now();
  let latest: ClientEntry[] = [];
  let shown = PAGE_ROWS;
  const clientHref = (c: ClientEntry) =>
    formatRoute({ view: 'client', ip: c.ip, ...(route.window ? { window: route.window } : {}) });

  const summary = h('p', { class: 'summary', 'data-testid': 'service-summary' });
  const warning = h('p', { class: 'warning', role: 'note', hidden: true });
  const chart = new CountChart(`${route.service}: active endpoints and IPs, last hour`, 480, 140);

  const filterInput = h('input', {
    id: 'filter',
    type: 'search',
    value: route.filter,
    placeholder: '10.0.0.0/8 :53 192.0.2.7',
    'aria-describedby': 'filter-help filter-error',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const filterError = h('p', { id: 'filter-error', class: 'field-error', 'aria-live': 'polite' });
  const bySelect = h(
    'select',
    { id: 'by' },
    h('option', { value: 'endpoint', selected: route.by === 'endpoint' }, 'endpoints (ip:port)'),
    h('option', { value: 'ip', selected: route.by === 'ip' }, 'distinct IPs'),
  );
  const matchCount = h('p', {
    class: 'summary',
    'aria-live': 'polite',
    'data-testid': 'match-count',
  });
  const more = h('button', { type: 'button', hidden: true }, 'Show more');

  const sortButtons = new Map<SortKey, { th: HTMLTableCellElement; button: HTMLButtonElement }>();
  const sortable: Record<string, SortKey> = {
    'Last seen': 'lastSeen',
    Packets: 'packets',
    Bytes: 'bytes',
  };
  const columns: Column<ClientEntry>[] = [
    { title: route.by === 'ip' ? 'Client IP' : 'Client', text: keyOf, href: clientHref },
    ...trafficColumns(() => now),
  ];
  const table = new KeyedTable<ClientEntry>(
    `Active clients of ${route.service}`,
    columns,
    keyOf,
    (column) => {
      const key = sortable[column.title];
      const th = h('th', { scope: 'col', class: column.numeric ? 'num' : undefined });
      if (!key) {
        th.textContent = column.title;
        return th;
      }
      const button = h('button', { type: 'button', class: 'sort', 'data-sort': key }, column.title);
      button.addEventListener('click', () => {
        const dir = route.sort === key && route.dir === 'desc' ? 'asc' : 'desc';
        ctx.navigate({ ...route, sort: key, dir }, true);
      });
      th.append(button);
      sortButtons.set(key, { th, button });
      return th;
    },
  );
  table.element.dataset.testid = 'clients';

  const side = (caption: string, cols: Column<ClientEntry>[]) =>
    new KeyedTable<ClientEntry>(caption, cols, keyOf);
  const talkerCols: Column<ClientEntry>[] = [
    columns[0]!,
    { title: 'Packets', text: (c) => formatCount(packets(c)), numeric: true },
    { title: 'Bytes', text: (c) => formatBytes(bytes(c)), numeric: true },
  ];
  const topPackets = side('Top talkers by packets (in + out)', talkerCols);
  const topBytes = side('Top talkers by bytes (in + out)', talkerCols);
  const oneWay = side('One-way clients: sent packets, got none back', [
    columns[0]!,
    { title: 'Packets in', text: (c) => formatCount(c.pktsIn), numeric: true },
    columns[4]!,
    columns[5]!,
  ]);
  const oneWayCount = h('p', { class: 'summary' });
  interface HostRow {
    host: string;
    clients: number;
    packets: number;
  }
  const hosts = new KeyedTable<HostRow>(
    'Hosts that see these clients',
    [
      { title: 'Host', text: (r) => r.host },
      { title: 'Clients', text: (r) => formatCount(r.clients), numeric: true },
      { title: 'Packets', text: (r) => formatCount(r.packets), numeric: true },
    ],
    (r) => r.host,
  );
  interface NatRow {
    from: string;
    client: ClientEntry;
  }
  const nat = new KeyedTable<NatRow>(
    'Pre-NAT addresses (before translation) and the client they became',
    [
      { title: 'Pre-NAT address', text: (r) => r.from },
      { title: 'Client', text: (r) => keyOf(r.client), href: (r) => clientHref(r.client) },
      { title: 'Hosts', text: (r) => r.client.hosts.join(', ') },
    ],
    (r) => `${r.from}>${keyOf(r.client)}`,
  );
  const natEmpty = h('p', { class: 'empty' });
  const alarmTable = new KeyedTable<AlarmEntry>(
    `Alarms on ${route.service}`,
    [
      { title: 'State', text: (a) => STATE_LABEL[a.state] },
      { title: 'Alarm', text: alarmCondition },
      { title: 'Reason', text: (a) => a.reason },
      { title: 'Since', text: (a) => (a.changedAt === null ? '–' : formatUtc(a.changedAt)) },
    ],
    (a) => a.name,
  );
  alarmTable.element.dataset.testid = 'alarms';
  const alarmNote = h('p', { class: 'note', 'data-testid': 'service-alarms-note' });
  /** Alarms change slowly (and are cached 30 s by the API): read them every few refreshes. */
  let alarmRefreshes = 0;
  const readAlarms = async () => {
    if (alarmRefreshes++ % 3 !== 0) return;
    try {
      const answer = await alarms(route.service);
      alarmTable.update(answer.alarms);
      alarmTable.element.hidden = answer.alarms.length === 0;
      setText(
        alarmNote,
        answer.alarms.length > 0
          ? ''
          : answer.source === 'none'
            ? 'No alarms configured.'
            : `No alarm watches ${route.service}.`,
      );
    } catch (err) {
      alarmTable.element.hidden = true;
      setText(alarmNote, `Alarm state unavailable: ${(err as Error).message}`);
    }
  };

  const element = h(
    'section',
    { 'aria-labelledby': 'view-title' },
    h(
      'p',
      { class: 'crumbs' },
      h(
        'a',
        {
          href: formatRoute({
            view: 'services',
            q: '',
            ...(route.window ? { window: route.window } : {}),
          }),
        },
        'Services',
      ),
      ' / ',
    ),
    h('h1', { id: 'view-title' }, route.service),
    warning,
    summary,
    chart.element,
    h('div', { class: 'scroll' }, alarmTable.element),
    alarmNote,
    h(
      'form',
      { class: 'controls', role: 'search' },
      h('label', { for: 'filter' }, 'Filter clients'),
      filterInput,
      h('label', { for: 'by' }, 'List'),
      bySelect,
      h(
        'p',
        { id: 'filter-help', class: 'help' },
        'IP, CIDR block (10.0.0.0/8, 2001:db8::/32) or :port; several terms must all match. Pre-NAT addresses count too.',
      ),
      filterError,
    ),
    matchCount,
    h('div', { class: 'scroll' }, table.element),
    more,
    h(
      'div',
      { class: 'side' },
      h('div', {}, topPackets.element),
      h('div', {}, topBytes.element),
      h('div', {}, oneWayCount, oneWay.element),
      h('div', {}, hosts.element),
      h('div', {}, nat.element, natEmpty),
    ),
  );

  element.querySelector('form')!.addEventListener('submit', (e) => e.preventDefault());
  filterInput.addEventListener('input', () => {
    ctx.navigate({ ...route, filter: filterInput.value }, true);
  });
  bySelect.addEventListener('change', () => {
    ctx.navigate({ ...route, by: bySelect.value === 'ip' ? 'ip' : 'endpoint' }, true);
  });
  more.addEventListener('click', () => {
    shown += PAGE_ROWS;
    draw();
  });

  /** Redraws from the last answer (filter and sort are applied here, without a request). */
  const draw = () => {
    const filter = parseClientFilter(route.filter);
    filterInput.setAttribute('aria-invalid', String(!filter.ok));
    setText(filterError, filter.ok ? '' : `Filter not applied: ${filter.error}`);
    const matching = filter.ok ? latest.filter((c) => filter.test(c)) : latest;
    const sorted = sortClients(matching, route.sort, route.dir);
    table.update(sorted.slice(0, shown));
    more.hidden = sorted.length <= shown;
    setText(
      matchCount,
      route.filter && filter.ok
        ? `${formatCount(matching.length)} of ${formatCount(latest.length)} clients match "${route.filter}"${sorted.length > shown ? `; showing the first ${formatCount(shown)}` : ''}`
        : `${formatCount(latest.length)} clients${sorted.length > shown ? `; showing the first ${formatCount(shown)}` : ''}`,
    );
    for (const [key, { th, button }] of sortButtons) {
      const active = route.sort === key;
      th.setAttribute(
        'aria-sort',
        active ? (route.dir === 'asc' ? 'ascending' : 'descending') : 'none',
      );
      setText(button, `${SORT_TITLES[key]}${active ? (route.dir === 'asc' ? ' ▲' : ' ▼') : ''}`);
    }
  };

  return {
    element,
    title: route.service,
    setRoute(next) {
      if (next.view !== 'service') return;
      if (next.filter !== route.filter) shown = PAGE_ROWS;
      route = next;
      if (filterInput.value !== route.filter) filterInput.value = route.filter;
      draw();
    },
    async refresh() {
      const [answer, list] = await Promise.all([
        allClients(route.service, route.by, route.window),
        services(route.window),
        seedHistories([route.service], ctx),
        readAlarms(),
      ]);
      const rendering = performance.now();
      now = answer.first.now;
      latest = answer.clients;
      const entry = list.services.find((s) => s.service === route.service);
      if (entry) showWarning(warning, entry);
      const ips = new Set(latest.map((c) => c.ip)).size;
      if (route.by === 'endpoint' && answer.complete)
        ctx.history.add(route.service, now, latest.length, ips);
      ctx.history.save();
      chart.update(ctx.history.get(route.service));
      setText(
        summary,
        `${formatCount(route.by === 'endpoint' ? latest.length : null)} active endpoints, ${formatCount(ips)} distinct IPs in the last ${formatWindow(answer.first.window)}, as of ${formatUtc(now)}` +
          (answer.complete
            ? ''
            : ` (only the first ${formatCount(MAX_CLIENT_PAGES * 1000)} listed)`) +
          (entry ? '' : ' — the service is not in the services list'),
      );
      if (route.by === 'ip')
        setText(
          summary,
          `${formatCount(ips)} distinct IPs active in the last ${formatWindow(answer.first.window)}, as of ${formatUtc(now)}${answer.complete ? '' : ` (only the first ${formatCount(MAX_CLIENT_PAGES * 1000)} listed)`}`,
        );
      draw();
      topPackets.update(sortClients(latest, 'packets', 'desc').slice(0, SIDE_ROWS));
      topBytes.update(sortClients(latest, 'bytes', 'desc').slice(0, SIDE_ROWS));
      const oneWayList = latest.filter((c) => c.pktsIn > 0 && c.pktsOut === 0);
      oneWay.update(sortClients(oneWayList, 'lastSeen', 'desc').slice(0, SIDE_ROWS));
      setText(oneWayCount, `${formatCount(oneWayList.length)} one-way clients`);
      const byHost = new Map<string, HostRow>();
      for (const c of latest) {
        for (const host of c.hosts) {
          const r = byHost.get(host) ?? { host, clients: 0, packets: 0 };
          r.clients++;
          r.packets += packets(c);
          byHost.set(host, r);
        }
      }
      hosts.update(
        [...byHost.values()].sort((a, b) => b.clients - a.clients || (a.host < b.host ? -1 : 1)),
      );
      const natRows = latest.flatMap((c) => (c.natFrom ?? []).map((from) => ({ from, client: c })));
      nat.update(natRows.slice(0, 200));
      setText(natEmpty, natRows.length ? '' : 'No client came through NAT that the agents saw.');
      performance.measure('udpwatch:render', { start: rendering, end: performance.now() });
    },
  };
}
