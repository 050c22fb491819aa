/**
 * The web view in a real browser against `npm start -- --demo`: served at the
 * API's root, and by `udpwatch ui` with its API calls signed by the CLI.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { get } from 'node:http';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HistoryResponse } from '../../../contract/api-schemas.js';
import { RESOURCE_NAMES } from '../../../contract/resources.js';
import { createDocumentClient } from '../../../functions/store/document-client.js';
import { putMinuteCounts } from '../../../functions/summarize/minute-counts-writer.js';
import { writePage } from '../../../ui/build-page.js';
import { useLocalCredentials } from '../functions/harness.js';
import { type DemoStack, launchChromium, REPO, startDemoStack, until } from './demo-stack.js';
import { startSigV4CheckingProxy } from './sigv4-checking-proxy.js';

const DEMO = 'demo-echo';
/** The demo's clients send from these four addresses. */
const DEMO_IPS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

/** The demo's one alarm: a minimum it never reaches, evaluated every 2 s, so it fires at once. */
const DEMO_ALARMS = { [DEMO]: { min: 1000, evaluationPeriods: 1 } };

let stack: DemoStack;
let browser: Browser;
/** The epoch minute the stack started in: minutes before it hold no summary of the demo. */
let startMinute: number;
/** Console errors and CSP violations of every page, checked at the end of each test. */
const pageErrors: string[] = [];

beforeAll(async () => {
  startMinute = Math.floor(Date.now() / 60_000);
  [stack, browser] = await Promise.all([
    startDemoStack(['--alarms', JSON.stringify(DEMO_ALARMS), '--alarm-period', '2']),
    launchChromium(),
  ]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function open(url: string, before?: (page: Page) => Promise<unknown>): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await before?.(page);
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(url);
  return page;
}

/** The client column of the clients table. */
async function clientCells(page: Page): Promise<string[]> {
  return page.locator('[data-testid=clients] tbody tr td:first-child').allInnerTexts();
}

/** Waits until the demo service's card shows counts and returns them. */
async function demoCard(page: Page): Promise<{ endpoints: number; ips: number }> {
  const card = page.locator(`[data-service="${DEMO}"][data-counts=live]`);
  const number = async (field: string) =>
    Number(((await card.locator(`[data-field=${field}]`).textContent()) ?? '').replace(/,/g, ''));
  let counts = { endpoints: 0, ips: 0 };
  await until(
    'the demo service with its live client counts',
    async () => {
      if ((await card.count()) === 0) return false;
      counts = { endpoints: await number('endpoints'), ips: await number('ips') };
      return counts.ips === DEMO_IPS.length && Number.isInteger(counts.endpoints);
    },
    60_000,
  );
  return counts;
}

describe('the web view at the root of the local API', () => {
  it('shows the demo service with its live client counts, as the API counts them', async () => {
    const page = await open(`${stack.apiUrl}/#/?q=${DEMO}`);
    const counts = await demoCard(page);
    expect(counts.ips).toBe(4);
    // The demo keeps at least one client per address, so never fewer endpoints than IPs.
    expect(counts.endpoints).toBeGreaterThanOrEqual(4);
    const api = (await (await fetch(`${stack.apiUrl}/v1/services/${DEMO}/count`)).json()) as {
      endpoints: number;
    };
    // Both counted within seconds: the demo adds a few endpoints at most in between.
    expect(Math.abs(api.endpoints - counts.endpoints)).toBeLessThanOrEqual(6);
    await expect(page.locator(`[data-service="${DEMO}"] .warning`).isHidden()).resolves.toBe(true);
    await expect(page.locator(`[data-service="${DEMO}"] .state`).textContent()).resolves.toBe(
      'active',
    );
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it("draws a fresh page's chart from the stored hour of counts, then adds live samples", async () => {
    // Ten minutes before the stack started, as the summarizer would have kept them.
    useLocalCredentials();
    const doc = createDocumentClient({ endpoint: stack.dynamodbEndpoint });
    const stored = Array.from({ length: 10 }, (_, i) => ({
      minute: startMinute - 12 + i,
      // About what the demo runs (10 endpoints, 4 IPs), varying so each point is its own.
      endpoints: 8 + (i % 4),
      ips: 4 - (i % 2),
    }));
    for (const m of stored) {
      await putMinuteCounts(
        { doc, table: RESOURCE_NAMES.table },
        { service: DEMO, minute: m.minute, activeClients: m.endpoints, activeClientIps: m.ips },
        24,
      );
    }
    const api = (await (
      await fetch(`${stack.apiUrl}/v1/services/${DEMO}/history`)
    ).json()) as HistoryResponse;
    expect(api.points.slice(0, 10)).toEqual(
      stored.map((m) => ({ ...m, at: (m.minute + 1) * 60_000 })),
    );
    const page = await open(`${stack.apiUrl}/#/?q=${DEMO}`);
    await demoCard(page);
    const chart = page.locator(`[data-service="${DEMO}"] figure.chart`);
    // Right after the first refresh: every stored minute and the page's own sample.
    await until(
      'the chart with the stored minutes',
      async () => Number(await chart.getAttribute('data-points')) >= stored.length + 1,
      20_000,
    );
    await page.goto(`${stack.apiUrl}/#/service/${DEMO}`);
    const inView = page.locator('section > figure.chart');
    await until(
      'the service view chart with the stored minutes',
      async () => Number(await inView.getAttribute('data-points')) >= stored.length + 1,
      20_000,
    );
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it('shows the alarm state in words and a symbol on the card and in the service view', async () => {
    const page = await open(`${stack.apiUrl}/#/?q=${DEMO}`);
    const line = page.locator(`[data-service="${DEMO}"] .alarm`);
    await until(
      'the alarm line in ALARM',
      async () => (await line.getAttribute('data-alarm-state')) === 'ALARM',
      30_000,
    );
    await expect(line.textContent()).resolves.toBe('Alarms: ✖ ALARM — ActiveClients below 1000');
    await expect(page.getByTestId('alarms-note').textContent()).resolves.toBe(
      'Alarms (local mode): 1 configured, 1 in ALARM.',
    );
    await page.goto(`${stack.apiUrl}/#/service/${DEMO}`);
    const rows = page.getByTestId('alarms').locator('tbody tr');
    await until('the alarms table', async () => (await rows.count()) === 1, 20_000);
    const cells = await rows.first().locator('td').allInnerTexts();
    expect(cells.slice(0, 2)).toEqual(['✖ ALARM', 'ActiveClients below 1000']);
    expect(cells[2]).toMatch(
      /^1 of the last 1 periods breached .*latest: ActiveClients = \d+, min 1000$/,
    );
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it('warns "peers unobserved" with its reason when a service entry says so', async () => {
    const reason = 'the daemon runs in a network namespace no agent reads';
    // The services answer gains these fields in another change; here they are added to the real answer.
    const page = await open(`${stack.apiUrl}/#/?q=${DEMO}`, (p) =>
      p.route('**/v1/services*', async (route) => {
        const response = await route.fetch();
        const body = (await response.json()) as { services: { service: string }[] };
        for (const entry of body.services) {
          if (entry.service === DEMO)
            Object.assign(entry, { peersUnobserved: true, unobservedReason: reason });
        }
        await route.fulfill({ response, json: body });
      }),
    );
    const warning = page.locator(`[data-service="${DEMO}"] .warning`);
    await until('the warning', () => warning.isVisible(), 30_000);
    await expect(warning.textContent()).resolves.toBe(
      `Warning: peers unobserved — ${reason}. The counts miss the clients the agents cannot see.`,
    );
    await page.goto(`${stack.apiUrl}/#/service/${DEMO}`);
    const inView = page.locator('section > .warning');
    await until('the warning in the service view', () => inView.isVisible(), 30_000);
    await expect(inView.textContent()).resolves.toContain(reason);
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it("lists each agent's live sources and the hook reports it could not place", async () => {
    // The demo agent's real heartbeat, with unmatched hook reports added to the answer.
    const page = await open(`${stack.apiUrl}/#/agents`, (p) =>
      p.route('**/v1/agents*', async (route) => {
        const response = await route.fetch();
        const body = (await response.json()) as { agents: { hookUnmatched: number }[] };
        for (const a of body.agents) a.hookUnmatched = 1234;
        await route.fulfill({ response, json: body });
      }),
    );
    const table = page.locator('[data-testid=agents]');
    const column = async (title: string) => {
      const titles = await table.locator('thead th').allInnerTexts();
      const i = titles.indexOf(title);
      if (i < 0) throw new Error(`no column ${title} in ${titles.join(', ')}`);
      return table.locator(`tbody tr td:nth-child(${i + 1})`).allInnerTexts();
    };
    await until('an agent row', async () => (await table.locator('tbody tr').count()) > 0, 30_000);
    const live = await column('Live sources');
    expect(live.length).toBeGreaterThan(0);
    for (const cell of live) expect(cell.split(', ')).toContain('hook');
    for (const cell of await column('Hook reports unmatched'))
      expect(cell).toBe('1,234 (a hooked daemon in another network namespace?)');
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it("lists a service's clients, narrows them with a filter, and a link reopens the same view", async () => {
    const page = await open(`${stack.apiUrl}/#/service/${DEMO}`);
    await until('client rows', async () => (await clientCells(page)).length >= 4, 30_000);
    const all = await clientCells(page);
    for (const c of all) expect(c).toMatch(/^127\.0\.0\.[2-5]:\d+$/);
    expect(new Set(all.map((c) => c.split(':')[0]))).toEqual(new Set(DEMO_IPS));

    await page.locator('#filter').fill('127.0.0.3');
    const narrowed = await clientCells(page);
    expect(narrowed.length).toBeGreaterThan(0);
    expect(narrowed.length).toBeLessThan(all.length);
    for (const c of narrowed) expect(c.startsWith('127.0.0.3:')).toBe(true);
    await expect(page.getByTestId('match-count').textContent()).resolves.toMatch(
      /^\d+ of \d+ clients match "127\.0\.0\.3"/,
    );

    await page.locator('#filter').fill('127.0.0.4/31');
    const cidr = await clientCells(page);
    expect(new Set(cidr.map((c) => c.split(':')[0]))).toEqual(new Set(['127.0.0.4', '127.0.0.5']));

    await page.locator('#filter').fill('127.0.0.300');
    await expect(page.locator('#filter-error').textContent()).resolves.toContain(
      '127.0.0.300: not an IP',
    );
    await expect(page.locator('#filter').getAttribute('aria-invalid')).resolves.toBe('true');

    await page.locator('#filter').fill('127.0.0.3');
    await page.locator('button[data-sort=packets]').click();
    expect(new URL(page.url()).hash).toBe(`#/service/${DEMO}?filter=127.0.0.3&sort=packets`);
    const packets = async (p: Page) =>
      (await p.locator('[data-testid=clients] tbody tr td:nth-child(2)').allInnerTexts()).map((t) =>
        Number(t.split(' in')[0]!.replace(/,/g, '')),
      );
    const sorted = await packets(page);
    expect(sorted).toEqual([...sorted].sort((a, b) => b - a));

    // The link, opened in a fresh tab, shows the same filter and sort.
    const again = await open(page.url());
    await until('filtered rows', async () => (await clientCells(again)).length > 0, 30_000);
    await expect(again.locator('#filter').inputValue()).resolves.toBe('127.0.0.3');
    for (const c of await clientCells(again)) expect(c.startsWith('127.0.0.3:')).toBe(true);
    await expect(
      again.locator('th:has(button[data-sort=packets])').getAttribute('aria-sort'),
    ).resolves.toBe('descending');
    // The docs' screenshot: rewritten only when asked, so a test run leaves the checkout clean.
    const shot = await page.screenshot({
      path:
        process.env.UDPWATCH_UPDATE_SCREENSHOT === '1' ? join(REPO, 'docs', 'ui.png') : undefined,
    });
    expect(shot.subarray(1, 4).toString()).toBe('PNG');
    await page.close();
    await again.close();
    expect(pageErrors).toEqual([]);
  });

  it('is usable from the keyboard: Tab reaches the service link and Enter opens it', async () => {
    const page = await open(`${stack.apiUrl}/#/?q=${DEMO}`);
    await demoCard(page);
    let reached = false;
    for (let i = 0; i < 80 && !reached; i++) {
      await page.keyboard.press('Tab');
      const focused = page.locator('a:focus');
      reached = (await focused.count()) === 1 && (await focused.textContent()) === DEMO;
    }
    expect(reached).toBe(true);
    await page.keyboard.press('Enter');
    await until('the service view', () => new URL(page.url()).hash === `#/service/${DEMO}`, 5_000);
    await until('client rows', async () => (await clientCells(page)).length > 0, 30_000);
    await page.close();
  });

  it("shows the API's error message (problem+json detail) instead of swallowing it", async () => {
    const page = await open(`${stack.apiUrl}/#/client/not-an-ip`);
    const error = page.locator('#error');
    await until('the error', () => error.isVisible(), 20_000);
    await expect(error.textContent()).resolves.toContain(
      'GET v1/clients/not-an-ip: 400 Bad Request: ip: not an IPv4 or IPv6 address: "not-an-ip"',
    );
    await expect(error.getAttribute('role')).resolves.toBe('alert');
    // A good address clears it.
    await page.locator('#client-ip').fill('127.0.0.2');
    await page.locator('#client-ip').press('Enter');
    await until('the error to clear', async () => !(await error.isVisible()), 20_000);
    await until(
      'the client view',
      async () =>
        (await page.getByTestId('client-services').locator('tbody tr').allInnerTexts()).some((r) =>
          r.startsWith(DEMO),
        ),
      20_000,
    );
    await page.close();
    // The failed request is logged by the browser itself; nothing else went wrong.
    expect(pageErrors.filter((e) => !e.includes('400'))).toEqual([]);
    pageErrors.length = 0;
  });
});

describe('udpwatch ui', () => {
  const credentials = {
    accessKeyId: 'AKIDUIEXAMPLE',
    secretAccessKey: 'ui-suite-secret-key-not-real',
  };
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    // The CLI serves the built page, as the installed package ships it.
    await writePage(join(REPO, 'dist', 'ui'));
  });

  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  });

  /** Starts `udpwatch ui` and resolves to the URL it prints. */
  async function udpwatchUi(args: string[]): Promise<string> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: 'us-east-1',
    };
    for (const k of ['AWS_SESSION_TOKEN', 'AWS_PROFILE', 'UDPWATCH_API']) delete env[k];
    const child = spawn(process.execPath, ['bin/udpwatch.js', 'ui', '--port', '0', ...args], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr?.on('data', (c: Buffer) => {
      out += c.toString();
    });
    let url = '';
    await until(
      'udpwatch ui to print its URL',
      () => {
        if (child.exitCode !== null)
          throw new Error(`udpwatch ui exited ${child.exitCode}:\n${out}`);
        url = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1] ?? '';
        return url !== '';
      },
      30_000,
    );
    return url;
  }

  it("signs the page's API calls with SigV4 in the CLI (--sign), never in the browser", async () => {
    const proxy = await startSigV4CheckingProxy({
      host: '127.0.0.2',
      upstream: stack.apiUrl,
      credentials,
      region: 'us-east-1',
    });
    try {
      const url = await udpwatchUi(['--api', proxy.url, '--sign']);
      const page = await open(`${url}#/?q=${DEMO}`);
      const browserAuth: string[] = [];
      page.on('request', (r) => {
        const h = r.headers();
        if (h.authorization || h['x-amz-date']) browserAuth.push(r.url());
      });
      const counts = await demoCard(page);
      expect(counts.ips).toBe(4);
      expect(proxy.log.refused).toEqual([]);
      expect(proxy.log.verified.some((t) => t.startsWith('/v1/services'))).toBe(true);
      expect(proxy.log.verified.some((t) => t.startsWith(`/v1/services/${DEMO}/count`))).toBe(true);
      expect(browserAuth).toEqual([]);
      expect(await page.content()).not.toContain(credentials.secretAccessKey);

      // Deep links work the same through udpwatch ui; the client IP path is signed as sent.
      await page.goto(`${url}#/service/${DEMO}?filter=127.0.0.5`);
      await until('filtered rows', async () => (await clientCells(page)).length > 0, 30_000);
      for (const c of await clientCells(page)) expect(c.startsWith('127.0.0.5:')).toBe(true);
      expect(proxy.log.refused).toEqual([]);
      await page.close();
      // Another name for this machine (DNS rebinding) is refused before anything is forwarded.
      const forwarded = proxy.log.verified.length;
      const rebound = await new Promise<number>((resolve, reject) => {
        const u = new URL(`${url}v1/services`);
        get(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname,
            headers: { host: 'rebound.example' },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        ).on('error', reject);
      });
      expect(rebound).toBe(403);
      expect(proxy.log.verified.length).toBe(forwarded);
    } finally {
      await proxy.stop();
    }
  });

  it('without signing, the IAM-protected API refuses, and the page shows its message', async () => {
    const proxy = await startSigV4CheckingProxy({
      host: '127.0.0.2',
      upstream: stack.apiUrl,
      credentials,
      region: 'us-east-1',
    });
    try {
      // http on a loopback address: the CLI does not sign unless told to.
      const url = await udpwatchUi(['--api', proxy.url]);
      const page = await open(url);
      const error = page.locator('#error');
      await until('the error', () => error.isVisible(), 20_000);
      await expect(error.textContent()).resolves.toContain(
        'GET v1/services: 403 Forbidden: Missing Authentication Token',
      );
      expect(proxy.log.verified).toEqual([]);
      expect(proxy.log.refused.length).toBeGreaterThan(0);
      // The check is real: a well-formed signature that is wrong is refused too.
      const forged = await fetch(`${proxy.url}/v1/services`, {
        headers: {
          'x-amz-date': '20261202T000000Z',
          authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/20261202/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`,
        },
      });
      expect(forged.status).toBe(403);
      await expect(forged.text()).resolves.toContain('does not match');
      await page.close();
      pageErrors.length = 0;
    } finally {
      await proxy.stop();
    }
  });
});
