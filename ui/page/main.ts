/**
 * The page: reads the route from the address, builds its view, refreshes it
 * every few seconds (one refresh at a time) and shows API errors with their
 * message. Each refresh records a `udpwatch:refresh` performance measure (the
 * service view also `udpwatch:render`, its DOM work), which the benchmark reads.
 */
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { agentsView } from './agents-view.js';
import { ApiError } from './api-fetch.js';
import { clientView } from './client-view.js';
import { CountHistory } from './count-history.js';
import { formatRoute, parseRoute, type Route, viewKey } from './deep-link.js';
import { setText } from './dom.js';
import { formatUtc } from './format.js';
import { serviceView } from './service-view.js';
import { servicesView } from './services-view.js';
import type { View, ViewContext } from './view.js';

/** Seconds between refreshes. */
const REFRESH_S = 5;

const main = document.getElementById('view')!;
const errorBox = document.getElementById('error')!;
const status = document.getElementById('status')!;
const clientForm = document.getElementById('client-form') as HTMLFormElement;
const clientInput = document.getElementById('client-ip') as HTMLInputElement;

let current: View | undefined;
let currentKey = '';
let generation = 0;
let timer: ReturnType<typeof setTimeout> | undefined;
let refreshes = 0;
/** The generation whose refresh is under way (-1: none). */
let running = -1;

const context: ViewContext = {
  history: new CountHistory(window.sessionStorage),
  navigate(route, replace = false) {
    const hash = formatRoute(route);
    if (replace) {
      history.replaceState(null, '', hash);
      show(route);
    } else location.hash = hash;
  },
};

function build(route: Route): View {
  switch (route.view) {
    case 'services':
      return servicesView(route, context);
    case 'service':
      return serviceView(route, context);
    case 'client':
      return clientView(route);
    case 'agents':
      return agentsView(route);
  }
}

function showError(err: unknown): void {
  const text =
    err instanceof ApiError ? `GET ${err.path}: ${err.message}` : `The page failed: ${String(err)}`;
  setText(errorBox, text);
  errorBox.hidden = false;
  document.body.dataset.error = 'true';
}

function clearError(): void {
  errorBox.hidden = true;
  setText(errorBox, '');
  delete document.body.dataset.error;
}

/** Runs one refresh of the current view, then schedules the next. */
async function refresh(): Promise<void> {
  const view = current;
  const mine = generation;
  // One refresh of a view at a time; a new view starts its own at once.
  if (!view || running === mine) return;
  running = mine;
  clearTimeout(timer);
  const start = performance.now();
  try {
    await view.refresh();
    if (mine !== generation) return;
    clearError();
    setText(status, `Updated ${formatUtc(Date.now())}, every ${REFRESH_S} s`);
  } catch (err) {
    if (mine !== generation) return;
    showError(err);
    setText(status, `Update failed at ${formatUtc(Date.now())}; retrying every ${REFRESH_S} s`);
  }
  if (running === mine) running = -1;
  const end = performance.now();
  performance.measure('udpwatch:refresh', { start, end, detail: { view: currentKey } });
  refreshes++;
  document.body.dataset.refreshes = String(refreshes);
  timer = setTimeout(() => void refresh(), REFRESH_S * 1000);
}

/** Shows a route: in place when the current view shows it, else a new view. */
function show(route: Route): void {
  const key = viewKey(route);
  if (current && currentKey === key && current.setRoute) {
    current.setRoute(route);
    return;
  }
  const next = build(route);
  generation++;
  current = next;
  currentKey = key;
  main.replaceChildren(next.element);
  document.title = `${next.title} – udpwatch`;
  for (const a of document.querySelectorAll('nav a')) {
    const here = a.getAttribute('data-view') === route.view;
    if (here) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clearError();
  void refresh();
}

clientForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const ip = clientInput.value.trim();
  if (ip) context.navigate({ view: 'client', ip });
});
window.addEventListener('hashchange', () => show(parseRoute(location.hash)));
// A hidden tab does not poll; it refreshes at once when shown again.
document.addEventListener('visibilitychange', () => {
  if (document.hidden) clearTimeout(timer);
  else void refresh();
});

show(parseRoute(location.hash));
