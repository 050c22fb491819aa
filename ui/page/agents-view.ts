/**
 * The agents: when each last reported, whether it is within the window, its
 * live sources and why the others are not live, the busy services it cannot
 * observe, the hook reports it could not place, and what it had to drop or
 * spool.
 */
import type { AgentsResponse } from '../../contract/api-schemas.js';
import { agents } from './api-fetch.js';
import { formatRoute, type Route } from './deep-link.js';
import { h, KeyedTable, setText } from './dom.js';
import { formatAgo, formatCount, formatUtc, formatWindow } from './format.js';
import { sourcesNotLive } from './source-states.js';
import type { View } from './view.js';

type Agent = AgentsResponse['agents'][number];

/** The agents view of a route. */
export function agentsView(route: Extract<Route, { view: 'agents' }>): View {
  let now = Date.now();
  const w = route.window ? { window: route.window } : {};
  const summary = h('p', { class: 'summary' });
  const table = new KeyedTable<Agent>(
    'Agents',
    [
      { title: 'Host', text: (a) => a.host },
      { title: 'Agent', text: (a) => a.agentId },
      {
        title: 'Reporting',
        text: (a) => (a.reporting ? 'yes' : 'NO — no heartbeat in the window'),
      },
      {
        title: 'Last report',
        text: (a) => `${formatAgo(a.lastHeartbeat, now)} (${formatUtc(a.lastHeartbeat)})`,
      },
      { title: 'Live sources', text: (a) => a.sources.join(', ') || 'none' },
      {
        title: 'Sources not live, and why',
        text: (a) =>
          (a.sourceStates ?? []).length === 0
            ? 'not reported by this agent'
            : sourcesNotLive(a) || 'none',
      },
      {
        title: 'Peers unobserved',
        text: (a) =>
          (a.unobserved ?? [])
            .map((u) => `${u.service} (port ${u.port}): ${u.reason}`)
            .join('; ') || 'none',
      },
      {
        // Reports of hooked daemons the agent cannot place: their socket health goes unseen.
        title: 'Hook reports unmatched',
        text: (a) =>
          a.hookUnmatched > 0
            ? `${formatCount(a.hookUnmatched)} (a hooked daemon in another network namespace?)`
            : '0',
        numeric: true,
      },
      { title: 'Flows', text: (a) => formatCount(a.flows), numeric: true },
      { title: 'Dropped', text: (a) => formatCount(a.dropped), numeric: true },
      { title: 'Spooled', text: (a) => formatCount(a.spooled), numeric: true },
    ],
    (a) => a.agentId,
  );
  table.element.dataset.testid = 'agents';
  const element = h(
    'section',
    { 'aria-labelledby': 'view-title' },
    h(
      'p',
      { class: 'crumbs' },
      h('a', { href: formatRoute({ view: 'services', q: '', ...w }) }, 'Services'),
      ' / ',
    ),
    h('h1', { id: 'view-title' }, 'Agents'),
    summary,
    h(
      'p',
      { class: 'note' },
      "An older agent does not report its sources' states; its log and ",
      h('code', {}, 'udpwatch-agent snapshot'),
      ' on its host say why a source is off.',
    ),
    h('div', { class: 'scroll' }, table.element),
  );
  return {
    element,
    title: 'Agents',
    async refresh() {
      const answer = await agents(route.window);
      now = answer.now;
      const list = [...answer.agents].sort(
        (a, b) => Number(a.reporting) - Number(b.reporting) || (a.host < b.host ? -1 : 1),
      );
      table.update(list);
      const silent = list.filter((a) => !a.reporting).length;
      setText(
        summary,
        `${formatCount(list.length)} agents, ${formatCount(silent)} not reporting in the last ${formatWindow(answer.window)}; ` +
          `${formatCount(list.reduce((n, a) => n + a.dropped, 0))} flow lines dropped, ${formatCount(list.reduce((n, a) => n + a.spooled, 0))} records spooled`,
      );
    },
  };
}
