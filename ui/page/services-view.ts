/**
 * The services view: each retained service with its active endpoints and
 * distinct IPs (counted live from the blocks), a chart of the last hour, its
 * latest summary's one-way clients and socket drops, and the warning when the
 * agents cannot see its peers.
 */
import { count, type ServiceRow, services } from './api-fetch.js';
import { CountChart } from './count-chart.js';
import { formatRoute, type Route } from './deep-link.js';
import { h, setText } from './dom.js';
import { formatAgo, formatCount, formatWindow } from './format.js';
import type { View, ViewContext } from './view.js';

/** Active services counted live each refresh; more get their summary's counts. */
const MAX_COUNTED = 50;

/** Runs `fn` over items, `limit` at a time. */
export async function mapLimit<T, R>(
  items: T[],
  limit: number,
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

interface Card {
  root: HTMLElement;
  state: HTMLElement;
  endpoints: HTMLElement;
  ips: HTMLElement;
  lastSeen: HTMLElement;
  oneWay: HTMLElement;
  drops: HTMLElement;
  warning: HTMLElement;
  chart: CountChart;
}

/** The page's first view. */
export function servicesView(route: Extract<Route, { view: 'services' }>, ctx: ViewContext): View {
  const list = h('div', { class: 'cards', 'data-testid': 'services' });
  const summary = h('p', { class: 'summary' });
  const empty = h('p', { class: 'empty', hidden: true }, 'No service reported yet.');
  const element = h(
    'section',
    { 'aria-labelledby': 'view-title' },
    h('h1', { id: 'view-title' }, 'Services'),
    summary,
    h(
      'p',
      { class: 'note' },
      'Alarm state: the HTTP API does not expose it. Deployed stacks show it in CloudWatch alarms; ',
      h('code', {}, 'npm start -- --alarms'),
      ' prints its transitions.',
    ),
    empty,
    list,
  );
  const cards = new Map<string, Card>();

  const card = (name: string): Card => {
    const found = cards.get(name);
    if (found) return found;
    const link = h(
      'a',
      {
        href: formatRoute({
          view: 'service',
          service: name,
          filter: '',
          sort: 'lastSeen',
          dir: 'desc',
          by: 'endpoint',
          ...(route.window ? { window: route.window } : {}),
        }),
      },
      name,
    );
    const dd = () => h('dd');
    const c: Card = {
      root: h('article', { class: 'card', 'data-service': name }),
      state: h('span', { class: 'state' }),
      endpoints: dd(),
      ips: dd(),
      lastSeen: dd(),
      oneWay: dd(),
      drops: dd(),
      warning: h('p', { class: 'warning', role: 'note', hidden: true }),
      chart: new CountChart(`${name}: active endpoints and IPs, last hour`),
    };
    c.root.append(
      h('h2', {}, link, ' ', c.state),
      c.warning,
      h(
        'dl',
        {},
        h('dt', {}, 'Active endpoints'),
        c.endpoints,
        h('dt', {}, 'Distinct IPs'),
        c.ips,
        h('dt', {}, 'Last seen'),
        c.lastSeen,
        h('dt', {}, 'One-way (summary)'),
        c.oneWay,
        h('dt', {}, 'Socket drops (summary)'),
        c.drops,
      ),
      c.chart.element,
    );
    c.endpoints.dataset.field = 'endpoints';
    c.ips.dataset.field = 'ips';
    cards.set(name, c);
    return c;
  };

  return {
    element,
    title: 'Services',
    async refresh() {
      const answer = await services(route.window);
      const rows = [...answer.services].sort(
        (a, b) => Number(b.active) - Number(a.active) || b.lastSeen - a.lastSeen,
      );
      const counted = rows.filter((r) => r.active).slice(0, MAX_COUNTED);
      const counts = await mapLimit(counted, 4, (r) => count(r.service, route.window));
      const live = new Map(counts.map((c) => [c.service, c]));
      let order: HTMLElement | null = null;
      for (const row of rows) {
        const c = card(row.service);
        const n = live.get(row.service);
        const endpoints = n ? n.endpoints : row.active ? row.activeClients : 0;
        const ips = n ? n.ips : row.active ? row.activeClientIps : 0;
        if (endpoints !== null && ips !== null)
          ctx.history.add(row.service, answer.now, endpoints, ips);
        setText(c.state, row.active ? 'active' : 'idle');
        c.state.className = row.active ? 'state active' : 'state idle';
        setText(c.endpoints, formatCount(endpoints) + (n || !row.active ? '' : ' (summary)'));
        setText(c.ips, formatCount(ips) + (n || !row.active ? '' : ' (summary)'));
        setText(c.lastSeen, formatAgo(row.lastSeen, answer.now));
        setText(c.oneWay, row.summary ? formatCount(row.summary.oneWay) : '–');
        setText(c.drops, row.summary?.socket ? formatCount(row.summary.socket.drops) : '–');
        showWarning(c.warning, row);
        c.chart.update(ctx.history.get(row.service));
        const expected: ChildNode | null = order ? order.nextSibling : list.firstChild;
        if (expected !== c.root) list.insertBefore(c.root, expected);
        order = c.root;
      }
      for (const [name, c] of cards) {
        if (!rows.some((r) => r.service === name)) {
          c.root.remove();
          cards.delete(name);
        }
      }
      ctx.history.save();
      empty.hidden = rows.length > 0;
      setText(
        summary,
        `${rows.filter((r) => r.active).length} of ${rows.length} services active in the last ${formatWindow(answer.window)}` +
          (rows.filter((r) => r.active).length > MAX_COUNTED
            ? `; the first ${MAX_COUNTED} counted live, the others from their latest summary`
            : ''),
      );
    },
  };
}

/** Shows or hides the "peers unobserved" warning of a service entry. */
export function showWarning(el: HTMLElement, row: ServiceRow): void {
  el.hidden = row.peersUnobserved !== true;
  setText(
    el,
    row.peersUnobserved
      ? `Warning: peers unobserved${row.unobservedReason ? ` — ${row.unobservedReason}` : ''}. The counts miss the clients the agents cannot see.`
      : '',
  );
}
