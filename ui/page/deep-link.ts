/**
 * The page's address: the URL hash names the view and its settings, so a
 * link pasted into a chat reopens the same view with the same filter.
 *
 *   #/?q=<text>                         services (those whose name holds the text)
 *   #/service/<name>?filter=..&sort=..&dir=..   one service's clients
 *   #/client/<ip>                       everything one client IP talks to
 *   #/agents                            agents
 *
 * Every view also takes `window` (seconds); names are percent-encoded.
 */

/** Columns the client table sorts by. */
export const SORT_KEYS = ['lastSeen', 'packets', 'bytes'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

/** Which view, and its settings. */
export type Route =
  | { view: 'services'; q: string; window?: number }
  | {
      view: 'service';
      service: string;
      filter: string;
      sort: SortKey;
      dir: 'asc' | 'desc';
      by: 'endpoint' | 'ip';
      window?: number;
    }
  | { view: 'client'; ip: string; window?: number }
  | { view: 'agents'; window?: number };

/** Longest hash the page reads; anything longer is not a link it made. */
const MAX_HASH = 2048;
/** The API's window bounds (1 s to a week). */
const MAX_WINDOW = 7 * 24 * 3600;

function decode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

function windowOf(params: URLSearchParams): number | undefined {
  const w = params.get('window');
  if (w === null || !/^[1-9][0-9]{0,6}$/.test(w)) return undefined;
  const n = Number(w);
  return n <= MAX_WINDOW ? n : undefined;
}

/** The route a hash names; the services view for anything it does not recognise. */
export function parseRoute(hash: string): Route {
  const text = hash.replace(/^#/, '').slice(0, MAX_HASH);
  const q = text.indexOf('?');
  const path = q < 0 ? text : text.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : text.slice(q + 1));
  const window = windowOf(params);
  const w = window !== undefined ? { window } : {};
  const [, kind, raw, ...rest] = path.split('/');
  const name = raw !== undefined && rest.length === 0 ? decode(raw) : undefined;
  if (kind === 'service' && name) {
    const sort = params.get('sort');
    return {
      view: 'service',
      service: name,
      filter: (params.get('filter') ?? '').slice(0, 512),
      sort: (SORT_KEYS as readonly string[]).includes(sort ?? '') ? (sort as SortKey) : 'lastSeen',
      dir: params.get('dir') === 'asc' ? 'asc' : 'desc',
      by: params.get('by') === 'ip' ? 'ip' : 'endpoint',
      ...w,
    };
  }
  if (kind === 'client' && name) return { view: 'client', ip: name, ...w };
  if (kind === 'agents') return { view: 'agents', ...w };
  return { view: 'services', q: (params.get('q') ?? '').slice(0, 128), ...w };
}

/** The hash of a route (defaults left out, so links stay short). */
export function formatRoute(route: Route): string {
  const params = new URLSearchParams();
  let path: string;
  switch (route.view) {
    case 'services':
      path = '/';
      if (route.q) params.set('q', route.q);
      break;
    case 'agents':
      path = '/agents';
      break;
    case 'client':
      path = `/client/${encodeURIComponent(route.ip)}`;
      break;
    case 'service':
      path = `/service/${encodeURIComponent(route.service)}`;
      if (route.filter) params.set('filter', route.filter);
      if (route.sort !== 'lastSeen') params.set('sort', route.sort);
      if (route.dir !== 'desc') params.set('dir', route.dir);
      if (route.by !== 'endpoint') params.set('by', route.by);
      break;
  }
  if (route.window !== undefined) params.set('window', String(route.window));
  const query = params.toString();
  return `#${path}${query ? `?${query}` : ''}`;
}

/** Routes with the same key are one view: only the filter or the sort differ. */
export function viewKey(route: Route): string {
  const w = route.window ?? '';
  switch (route.view) {
    case 'service':
      return `service|${route.service}|${route.by}|${w}`;
    case 'client':
      return `client|${route.ip}|${w}`;
    default:
      return `${route.view}|${w}`;
  }
}
