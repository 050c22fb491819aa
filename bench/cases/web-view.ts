/**
 * Web view: how long the page takes, in headless Chromium, to show a service
 * with 10,000 active clients (first render: from navigation to the first
 * complete table, ten pages of 1,000 fetched), and each refresh after it
 * (fetch plus DOM update, and the DOM update alone); the first render
 * includes the chart's stored hour and the service's alarms. The API is a
 * small local server answering schema-shaped pages instantly, so the figures
 * are the page's own cost, not the store's (store-reads measures that).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import type {
  AlarmsResponse,
  ClientEntry,
  ClientsResponse,
  HistoryResponse,
} from '../../contract/api-schemas.js';
import { buildPage } from '../../ui/build-page.js';
import { type BenchCase, type Figure, plain } from '../harness.js';

const SERVICE = 'bench-10k';
const CLIENTS = 10_000;
const PAGE = 1_000;
const CHROMIUM = '/usr/bin/chromium';

/** Deterministic synthetic clients: 2,500 IPs with four ports each, some behind NAT. */
function syntheticClients(n: number, now: number): ClientEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const ipN = i >> 2;
    const ip = `10.${(ipN >> 16) & 255}.${(ipN >> 8) & 255}.${ipN & 255}`;
    const port = 20_000 + (i % 4) * 1_000 + (i % 997);
    const pkts = 1 + ((i * 7919) % 5_000);
    return {
      service: SERVICE,
      ip,
      port,
      endpoint: `${ip}:${port}`,
      firstSeen: now - 290_000,
      lastSeen: now - ((i * 13) % 290) * 1000,
      pktsIn: pkts,
      bytesIn: pkts * 180,
      pktsOut: i % 50 === 0 ? 0 : pkts,
      bytesOut: i % 50 === 0 ? 0 : pkts * 200,
      hosts: [`host-${i % 40}`],
      sources: ['hook'],
      natFrom: i % 10 === 0 ? [`192.168.${i % 200}.${i % 250}:${port}`] : [],
      owners: [],
      clientIds: [],
    };
  });
}

/** Serves the page and the routes its service view calls, from memory. */
async function startFixtureApi(html: string) {
  const now = Date.now();
  const clients = syntheticClients(CLIENTS, now).sort((a, b) => b.lastSeen - a.lastSeen);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    } else if (url.pathname === '/v1/services') {
      json({
        window: 300,
        since: now - 300_000,
        now: Date.now(),
        services: [
          {
            service: SERVICE,
            firstSeen: now - 3_600_000,
            lastSeen: now,
            active: true,
            activeClients: CLIENTS,
            activeClientIps: CLIENTS / 4,
            countsAt: now,
            summary: null,
          },
        ],
      });
    } else if (url.pathname === `/v1/services/${SERVICE}/history`) {
      // A full stored hour, as a fresh page gets it once.
      const b = Math.floor(now / 60_000) - 1;
      const body: HistoryResponse = {
        service: SERVICE,
        minutes: 60,
        from: (b - 59) * 60_000,
        until: (b + 1) * 60_000,
        now: Date.now(),
        points: Array.from({ length: 60 }, (_, i) => ({
          minute: b - 59 + i,
          at: (b - 58 + i) * 60_000,
          endpoints: CLIENTS - 59 + i,
          ips: CLIENTS / 4,
        })),
        skipped: 0,
      };
      json(body);
    } else if (url.pathname === '/v1/alarms') {
      const body: AlarmsResponse = {
        now: Date.now(),
        source: 'cloudwatch',
        readAt: now,
        truncated: false,
        alarms: [
          {
            name: `udpwatch-${SERVICE}-ActiveClients-below-100`,
            service: SERVICE,
            metric: 'ActiveClients',
            bound: 'min',
            threshold: 100,
            state: 'OK',
            reason: 'Threshold Crossed: no datapoints were below the threshold.',
            changedAt: now - 600_000,
          },
        ],
      };
      json(body);
    } else if (url.pathname === `/v1/services/${SERVICE}/clients`) {
      const start = Number(url.searchParams.get('cursor') ?? 0);
      const body: ClientsResponse = {
        service: SERVICE,
        by: 'endpoint',
        window: 300,
        since: now - 300_000,
        now: Date.now(),
        clients: clients.slice(start, start + PAGE),
        nextCursor: start + PAGE < clients.length ? String(start + PAGE) : null,
      };
      json(body);
    } else {
      res.writeHead(404, { 'content-type': 'application/problem+json' });
      res.end(
        JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404, detail: 'no' }),
      );
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The few page globals the case touches. */
interface PageGlobals {
  document: {
    body: { dataset: Record<string, string | undefined> };
    dispatchEvent(e: Event): boolean;
  };
}

export const webView: BenchCase = {
  id: 'web-view',
  title: 'web view: first render and refresh of a 10,000-client service in Chromium',
  async run({ quick, log }) {
    const loads = quick ? 2 : 5;
    const refreshes = quick ? 3 : 10;
    const page = await buildPage();
    log(`page: ${page.html.length} bytes (script ${page.scriptBytes}, styles ${page.styleBytes})`);
    const api = await startFixtureApi(page.html);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const first: number[] = [];
    const refresh: number[] = [];
    const render: number[] = [];
    try {
      for (let l = 0; l < loads; l++) {
        const tab = await browser.newPage({ viewport: { width: 1280, height: 800 } });
        await tab.goto(`${api.url}#/service/${SERVICE}`);
        // This file is type-checked without the DOM library: the page's globals are cast.
        const refreshed = (n: number) =>
          tab.waitForFunction(
            (want) =>
              Number((globalThis as unknown as PageGlobals).document.body.dataset.refreshes ?? 0) >=
              want,
            n,
            { timeout: 60_000 },
          );
        await refreshed(1);
        const rows = await tab.locator('[data-testid=clients] tbody tr').count();
        if (rows === 0) throw new Error('the service view showed no clients');
        // The first render includes the stored hour: 60 minutes and the page's own sample
        // (one minute fewer when a minute turns between the fixture's hour and the page's).
        const points = Number(await tab.locator('figure.chart').getAttribute('data-points'));
        if (points < 60) throw new Error(`the chart drew ${points} points, not the stored hour`);
        for (let r = 0; r < refreshes; r++) {
          // The page refreshes at once when it becomes visible again: no 5 s wait.
          await tab.evaluate(() => {
            const g = globalThis as unknown as PageGlobals;
            g.document.dispatchEvent(new Event('visibilitychange'));
          });
          await refreshed(r + 2);
        }
        const m = await tab.evaluate(() => ({
          refresh: performance.getEntriesByName('udpwatch:refresh').map((e) => ({
            end: e.startTime + e.duration,
            duration: e.duration,
          })),
          render: performance.getEntriesByName('udpwatch:render').map((e) => e.duration),
        }));
        first.push(m.refresh[0]!.end);
        refresh.push(...m.refresh.slice(1).map((e) => e.duration));
        render.push(...m.render.slice(1));
        log(
          `load ${l + 1}: first render ${m.refresh[0]!.end.toFixed(0)} ms, ${rows} rows shown, chart of ${points} points`,
        );
        await tab.close();
      }
    } finally {
      await browser.close();
      await api.stop();
    }
    const note = `${CLIENTS.toLocaleString('en-US')} clients in ${CLIENTS / PAGE} pages from a local fixture API; the table shows the first 500`;
    const figures: Figure[] = [
      plain('first render, navigation to complete service view', 'ms', first, {
        goal: 'under 2 s',
        note,
      }),
      plain('refresh (10 pages fetched, table redrawn in place)', 'ms', refresh, {
        goal: 'under 1 s',
        note,
      }),
      plain('refresh, DOM update alone', 'ms', render, { goal: 'under 100 ms', note }),
    ];
    return figures;
  },
};
