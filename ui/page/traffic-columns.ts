/** The columns every table of client entries shares: counters, times, hosts, sources, pre-NAT. */
import type { ClientEntry } from '../../contract/api-schemas.js';
import type { Column } from './dom.js';
import { formatAgo, formatBytes, formatCount } from './format.js';

/** Counter, time and where-seen columns; `now` is the answer's clock, read when a cell is drawn. */
export function trafficColumns(now: () => number): Column<ClientEntry>[] {
  return [
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
    { title: 'First seen', text: (c) => formatAgo(c.firstSeen, now()) },
    { title: 'Last seen', text: (c) => formatAgo(c.lastSeen, now()) },
    { title: 'Hosts', text: (c) => c.hosts.join(', ') },
    { title: 'Sources', text: (c) => c.sources.join(', ') },
    { title: 'Pre-NAT', text: (c) => (c.natFrom ?? []).join(', ') },
  ];
}
