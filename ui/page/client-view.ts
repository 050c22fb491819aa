/** One client IP: every service it talked to within the window, with counters and the hosts that saw it. */
import type { ClientEntry } from '../../contract/api-schemas.js';
import { clientIp } from './api-fetch.js';
import { formatRoute, type Route } from './deep-link.js';
import { h, KeyedTable, setText } from './dom.js';
import { formatAgo, formatBytes, formatCount, formatUtc, formatWindow } from './format.js';
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
      {
        title: 'Packets',
        text: (c) => `${formatCount(c.pktsIn)} in / ${formatCount(c.pktsOut)} out`,
        numeric: true,
      },
      {
        title: 'Bytes',
        text: (c) => `${formatBytes(c.bytesIn)} in / ${formatBytes(c.bytesOut)} out`,
        numeric: true,
      },
      { title: 'First seen', text: (c) => formatAgo(c.firstSeen, now) },
      { title: 'Last seen', text: (c) => formatAgo(c.lastSeen, now) },
      { title: 'Hosts', text: (c) => c.hosts.join(', ') },
      { title: 'Sources', text: (c) => c.sources.join(', ') },
      { title: 'Pre-NAT', text: (c) => (c.natFrom ?? []).join(', ') },
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
