/**
 * The services view: each retained service with its active endpoints and
 * distinct IPs (counted live from the blocks), a chart of the last hour (the
 * stored per-minute counts, then the page's own samples), its alarm state,
 * its latest summary's one-way clients and socket drops, and the warning when
 * the agents cannot see its peers.
 */
import type { AlarmEntry } from '../../contract/api-schemas.js';
import { alarmsNote, serviceAlarmLine, worstState } from './alarm-state.js';
import { alarms, count, history, type ServiceRow, services } from './api-fetch.js';
import { CountChart } from './count-chart.js';
import { formatRoute, type Route } from './deep-link.js';
import { h, setText } from './dom.js';
import { formatAgo, formatCount, formatWindow } from './format.js';
import type { View, ViewContext } from './view.js';

/**
 * Active services counted live each refresh (each count reads the service's
 * window of blocks); the others show their latest summary's counts.
 */
const MAX_COUNTED = 20;
/** Services shown at once; the name filter finds the others. */
const MAX_CARDS = 100;

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
  alarm: HTMLElement;
  chart: CountChart;
}

/** Fetches the stored hour of each service not yet seeded, 4 at a time; a failure leaves only the samples. */
export async function seedHistories(
  names: string[],
  ctx: Pick<ViewContext, 'history'>,
): Promise<void> {
  const todo = names.filter((n) => !ctx.history.seeded(n));
  await mapLimit(todo, 4, async (name) => {
    try {
      const answer = await history(name);
      ctx.history.seed(name, answer.points);
    } catch {
      // An API without the route (or a failed read): the chart starts from the page's samples.
      ctx.history.seed(name, []);
    }
  });
}

/** The page's first view. */
export function servicesView(route: Extract<Route, { view: 'services' }>, ctx: ViewContext): View {
  const list = h('div', { class: 'cards', 'data-testid': 'services' });
  const filterInput = h('input', {
    id: 'service-filter',
    type: 'search',
    value: route.q,
    placeholder: 'part of a name',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  filterInput.addEventListener('input', () =>
    ctx.navigate({ ...route, q: filterInput.value }, true),
  );
  let last: Awaited<ReturnType<typeof services>> | undefined;
  const alarmNote = h('p', { class: 'note', 'data-testid': 'alarms-note' }, 'Alarms: reading…');
  /** The last alarm answer's entries by service. */
  let alarmsByService = new Map<string, AlarmEntry[]>();
  const summary = h('p', { class: 'summary' });
  const empty = h('p', { class: 'empty', hidden: true }, 'No service reported yet.');
  const element = h(
    'section',
    { 'aria-labelledby': 'view-title' },
    h('h1', { id: 'view-title' }, 'Services'),
    h(
      'form',
      { class: 'controls' },
      h('label', { for: 'service-filter' }, 'Services named'),
      filterInput,
    ),
    summary,
    alarmNote,
    empty,
    list,
  );
  const cards = new Map<string, Card>();
  /** Services whose card shows a live count (not a summary's). */
  const live = new Set<string>();
  const showCounts = (c: Card, endpoints: number | null, ips: number | null, note: string) => {
    setText(c.endpoints, `${formatCount(endpoints)}${note}`);
    setText(c.ips, `${formatCount(ips)}${note}`);
    // Tells tests and the benchmark whether the numbers are this refresh's live counts.
    c.root.dataset.counts = note ? 'summary' : 'live';
  };

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
      alarm: h('p', { class: 'alarm', hidden: true }),
      chart: new CountChart(`${name}: active endpoints and IPs, last hour`),
    };
    c.root.append(
      h('h2', {}, link, ' ', c.state),
      c.alarm,
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

  /** Shows the cards of an answer's services that match the name filter. */
  const render = (answer: Awaited<ReturnType<typeof services>>) => {
    const q = route.q.toLowerCase();
    const all = answer.services.filter((r) => r.service.toLowerCase().includes(q));
    const rows = [...all].sort(
      (a, b) => Number(b.active) - Number(a.active) || b.lastSeen - a.lastSeen,
    );
    const active = rows.filter((r) => r.active);
    const shown = rows.slice(0, MAX_CARDS);
    const names = new Set(shown.map((r) => r.service));
    // Cards first (with the counts of the last refresh), live counts as they come in.
    let order: HTMLElement | null = null;
    for (const row of shown) {
      const c = card(row.service);
      setText(c.state, row.active ? 'active' : 'idle');
      c.state.className = row.active ? 'state active' : 'state idle';
      setText(c.lastSeen, formatAgo(row.lastSeen, answer.now));
      setText(c.oneWay, row.summary ? formatCount(row.summary.oneWay) : '–');
      setText(c.drops, row.summary?.socket ? formatCount(row.summary.socket.drops) : '–');
      showWarning(c.warning, row);
      showAlarm(c.alarm, alarmsByService.get(row.service) ?? []);
      if (!row.active) showCounts(c, 0, 0, '');
      else if (!live.has(row.service)) {
        showCounts(c, row.activeClients, row.activeClientIps, ' (latest summary)');
      }
      const expected: ChildNode | null = order ? order.nextSibling : list.firstChild;
      if (expected !== c.root) list.insertBefore(c.root, expected);
      order = c.root;
    }
    for (const [name, c] of cards) {
      if (!names.has(name)) {
        c.root.remove();
        cards.delete(name);
        live.delete(name);
      }
    }
    empty.hidden = rows.length > 0;
    setText(empty, route.q ? `No service name holds "${route.q}".` : 'No service reported yet.');
    setText(
      summary,
      `${active.length} of ${rows.length} services active in the last ${formatWindow(answer.window)}` +
        (route.q ? ` named *${route.q}*` : '') +
        (rows.length > MAX_CARDS ? `; showing the first ${MAX_CARDS}, narrow by name` : '') +
        (Math.min(active.length, MAX_CARDS) > MAX_COUNTED
          ? `; the first ${MAX_COUNTED} counted live, the others from their latest summary`
          : ''),
    );
    return { answer, rows: shown, active: active.filter((r) => names.has(r.service)) };
  };

  return {
    element,
    title: 'Services',
    setRoute(next) {
      if (next.view !== 'services') return;
      route = next;
      if (filterInput.value !== route.q) filterInput.value = route.q;
      if (last) render(last);
    },
    async refresh() {
      last = await services(route.window);
      const { answer, rows, active } = render(last);
      const readAlarms = async () => {
        try {
          const a = await alarms();
          alarmsByService = new Map();
          for (const entry of a.alarms) {
            if (entry.service === null) continue;
            alarmsByService.set(entry.service, [
              ...(alarmsByService.get(entry.service) ?? []),
              entry,
            ]);
          }
          setText(alarmNote, alarmsNote(a));
        } catch (err) {
          // The cards stay useful without alarm states: say why they are missing.
          setText(alarmNote, `Alarm state unavailable: ${(err as Error).message}`);
          alarmsByService = new Map();
        }
        for (const row of rows) {
          const c = cards.get(row.service);
          if (c) showAlarm(c.alarm, alarmsByService.get(row.service) ?? []);
        }
      };
      await Promise.all([
        mapLimit(active.slice(0, MAX_COUNTED), 4, async (row) => {
          const n = await count(row.service, route.window);
          live.add(row.service);
          const c = cards.get(row.service);
          if (c) showCounts(c, n.endpoints, n.ips, '');
          ctx.history.add(row.service, n.now, n.endpoints, n.ips);
        }),
        seedHistories(
          rows.map((r) => r.service),
          ctx,
        ),
        readAlarms(),
      ]);
      for (const row of rows) {
        if (!row.active) ctx.history.add(row.service, answer.now, 0, 0);
        cards.get(row.service)?.chart.update(ctx.history.get(row.service));
      }
      ctx.history.save();
    },
  };
}

/** Shows a service's alarm state (word and symbol), or hides the line when it has no alarms. */
export function showAlarm(el: HTMLElement, list: readonly AlarmEntry[]): void {
  const line = serviceAlarmLine(list);
  el.hidden = line === undefined;
  setText(el, line ?? '');
  const worst = worstState(list);
  if (worst) el.dataset.alarmState = worst;
  else delete el.dataset.alarmState;
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
