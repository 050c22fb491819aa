/** One client IP: every service it talked to within the window, with counters and the hosts that saw it. */
import type { ClientEntry } from '../../contract/api-schemas.js';
import { clientIp } from './api-fetch.js';
import { formatRoute, type Route } from './deep-link.js';
import { h, KeyedTable, setText } from './dom.js';
import { formatCount, formatUtc, formatWindow } from './format.js';
import { trafficColumns } from './traffic-columns.js';
import type { View } from './view.js';

/** The client view of a route. */
export function clientView(route: Extract<Route, { view: 'client' }>): View {
  let now = Date.now();
  const w = route.window ? { window: route.window } : {};
  const summary = h('p', { class: 'summary', 'data-testid': 'client-summary' });
  const table = new KeyedTable<ClientEntry>(
    `Services ${route.ip} talks to`,
    [
      {
        title: 'Service',
        text: (c) => c.service,
        href: (c) =>
          formatRoute({
            view: 'service',
            service: c.service,
            filter: c.ip,
            sort: 'lastSeen',
            dir: 'desc',
            by: 'endpoint',
            ...w,
          }),
      },
      ...trafficColumns(() => now),
    ],
    (c) => c.service,
  );
  table.element.dataset.testid = 'client-services';
  const element = h(
    'section',
    { 'aria-labelledby': 'view-title' },
    h(
      'p',
      { class: 'crumbs' },
      h('a', { href: formatRoute({ view: 'services', q: '', ...w }) }, 'Services'),
      ' / client',
    ),
    h('h1', { id: 'view-title' }, route.ip),
    summary,
    h('div', { class: 'scroll' }, table.element),
  );
  return {
    element,
    title: `client ${route.ip}`,
    async refresh() {
      const answer = await clientIp(route.ip, route.window);
      now = answer.now;
      table.update(answer.services);
      setText(
        summary,
        `${answer.ip} talked to ${formatCount(answer.services.length)}${answer.truncated ? '+ (list cut short)' : ''} services in the last ${formatWindow(answer.window)}, as of ${formatUtc(now)}`,
      );
    },
  };
}
