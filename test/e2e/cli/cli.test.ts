/**
 * The `udpwatch` CLI as a user runs it (a child process), against the real
 * query handler behind the API adapter, reading what the real aggregate
 * handler folded from agent-format records put into kinesalite.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UnsequencedLine } from '../../../contract/codec.js';
import { createQueryHandler } from '../../../functions/query/handler.js';
import { type ApiServer, startApiServer } from '../../../local/api-gateway-adapter.js';
import { type CliStack, runCli, startCliStack, tableRows } from './cli-stack.js';

let stack: CliStack;
let api: string;
const now = Date.now();

function flow(
  host: string,
  agentId: string,
  service: string,
  remote: string,
  port: number,
  agoSeconds: number,
  pktsIn: number,
  bytesIn: number,
  pktsOut = 0,
  bytesOut = 0,
): UnsequencedLine {
  return {
    v: 1,
    type: 'flow',
    agentId,
    host,
    service,
    source: 'hook',
    localIp: '192.0.2.1',
    localPort: 5353,
    remoteIp: remote,
    remotePort: port,
    firstSeen: now - agoSeconds * 1000 - 30_000,
    lastSeen: now - agoSeconds * 1000,
    pktsIn,
    bytesIn,
    pktsOut,
    bytesOut,
    sampleRate: 1,
  };
}

function heartbeat(host: string, agentId: string, dropped: number): UnsequencedLine {
  return {
    v: 1,
    type: 'heartbeat',
    agentId,
    host,
    at: now - 1000,
    flows: 3,
    dropped,
    spooled: 0,
    sources: ['hook'],
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

beforeAll(async () => {
  stack = await startCliStack();
  api = stack.api.url;
  // Two agents. dns has three active endpoints on two IPs and one that went
  // quiet 15 minutes ago; 192.0.2.10 also talks to ntp on the other host.
  await stack.ingest('agent-a', [
    flow('web-1', 'agent-a', 'dns', '192.0.2.10', 40001, 5, 1000, 100_000, 500, 50_000),
    flow('web-1', 'agent-a', 'dns', '192.0.2.10', 40002, 20, 20, 2000),
    flow('web-1', 'agent-a', 'dns', '203.0.113.9', 1234, 900, 7, 700),
    heartbeat('web-1', 'agent-a', 3),
  ]);
  await stack.ingest('agent-b', [
    flow('web-2', 'agent-b', 'dns', '198.51.100.7', 53000, 2, 300, 30_000),
    flow('web-2', 'agent-b', 'ntp', '192.0.2.10', 123, 10, 40, 4000),
    flow('web-2', 'agent-b', 'ntp', '2001:db8::5', 4000, 30, 9, 900),
    heartbeat('web-2', 'agent-b', 0),
  ]);
  // A second delivery of more packets from a known endpoint adds up.
  await stack.ingest('agent-a', [
    flow('web-1', 'agent-a', 'dns', '192.0.2.10', 40001, 4, 500, 50_000),
  ]);
});

afterAll(async () => {
  await stack?.stop();
});

describe('udpwatch against the local API', () => {
  it('services: lists both services as active', async () => {
    const run = await runCli(['services', '--api', api]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const rows = tableRows(run.stdout, /^SERVICE\s+ACTIVE/);
    expect(rows.map((r) => [r[0], r[1]]).sort()).toEqual([
      ['dns', 'yes'],
      ['ntp', 'yes'],
    ]);
    expect(run.stdout).toContain('2 services, 2 active in the last 5m');
  });

  it('clients: a table of exactly the active endpoints with their counters, newest first', async () => {
    const run = await runCli(['clients', 'dns', '--api', api]);
    expect(run.code).toBe(0);
    const rows = tableRows(run.stdout, /^ENDPOINT\s+PKTS IN/);
    expect(rows.map((r) => r[0])).toEqual([
      '198.51.100.7:53000',
      '192.0.2.10:40001',
      '192.0.2.10:40002',
    ]);
    const busiest = rows[1]!;
    // 1000 + 500 packets in, 150 000 bytes; 500 out, 50 000 bytes; from web-1's hook.
    expect(busiest.slice(1, 5)).toEqual(['1.5k', '146 KiB', '500', '48.8 KiB']);
    expect(busiest[6]).toMatch(/^\d+s ago$/);
    expect(busiest.slice(7)).toEqual(['web-1', 'hook']);
    expect(rows[0]!.slice(1, 3)).toEqual(['300', '29.3 KiB']);
    expect(run.stdout).toContain('3 active endpoints of dns in the last 5m');
  });

  it('clients --json: the API JSON, with exact counters', async () => {
    const run = await runCli(['clients', 'dns', '--json', '--api', api]);
    expect(run.code).toBe(0);
    const body = JSON.parse(run.stdout);
    expect(body.service).toBe('dns');
    expect(body.nextCursor).toBeNull();
    const byEndpoint = Object.fromEntries(
      body.clients.map((c: Record<string, unknown>) => [
        c.endpoint,
        [c.pktsIn, c.bytesIn, c.pktsOut, c.bytesOut, c.hosts],
      ]),
    );
    expect(byEndpoint).toEqual({
      '192.0.2.10:40001': [1500, 150_000, 500, 50_000, ['web-1']],
      '192.0.2.10:40002': [20, 2000, 0, 0, ['web-1']],
      '198.51.100.7:53000': [300, 30_000, 0, 0, ['web-2']],
    });
  });

  it('clients --by ip and --window: distinct IPs, and the quiet client comes back in a longer window', async () => {
    const byIp = JSON.parse(
      (await runCli(['clients', 'dns', '--by', 'ip', '--json', '--api', api])).stdout,
    );
    expect(
      Object.fromEntries(byIp.clients.map((c: { ip: string; pktsIn: number }) => [c.ip, c.pktsIn])),
    ).toEqual({ '192.0.2.10': 1520, '198.51.100.7': 300 });
    const hour = await runCli(['clients', 'dns', '--by', 'ip', '--window', '1h', '--api', api]);
    expect(hour.code).toBe(0);
    expect(
      tableRows(hour.stdout, /^IP\s+PKTS IN/)
        .map((r) => r[0])
        .sort(),
    ).toEqual(['192.0.2.10', '198.51.100.7', '203.0.113.9']);
  });

  it('clients --limit 1: pages with a cursor hint; --all follows cursors to every client', async () => {
    const one = await runCli(['clients', 'dns', '--limit', '1', '--api', api]);
    expect(one.code).toBe(0);
    expect(tableRows(one.stdout, /^ENDPOINT/)).toHaveLength(1);
    const cursor = /more: add --cursor (\S+)/.exec(one.stdout)?.[1];
    expect(cursor).toBeDefined();
    // Pages come in activity-bucket order (exact only within a page): paging
    // one by one visits every client exactly once.
    const first = JSON.parse(
      (await runCli(['clients', 'dns', '--limit', '1', '--json', '--api', api])).stdout,
    );
    const visited = first.clients.map((c: { endpoint: string }) => c.endpoint);
    for (let c = first.nextCursor; c; ) {
      const next = JSON.parse(
        (await runCli(['clients', 'dns', '--limit', '1', '--cursor', c, '--json', '--api', api]))
          .stdout,
      );
      visited.push(...next.clients.map((x: { endpoint: string }) => x.endpoint));
      c = next.nextCursor;
    }
    expect([...visited].sort()).toEqual([
      '192.0.2.10:40001',
      '192.0.2.10:40002',
      '198.51.100.7:53000',
    ]);
    // --all merges the pages newest first.
    const all = JSON.parse(
      (await runCli(['clients', 'dns', '--limit', '1', '--all', '--json', '--api', api])).stdout,
    );
    expect(all.nextCursor).toBeNull();
    expect(all.clients.map((c: { endpoint: string }) => c.endpoint)).toEqual([
      '198.51.100.7:53000',
      '192.0.2.10:40001',
      '192.0.2.10:40002',
    ]);
  });

  it('count: active endpoints and distinct IPs, per window', async () => {
    const run = await runCli(['count', 'dns', '--api', api]);
    expect(run.code).toBe(0);
    expect(tableRows(run.stdout, /^SERVICE\s+WINDOW/)).toEqual([['dns', '5m', '3', '2']]);
    const hour = JSON.parse(
      (await runCli(['count', 'dns', '-w', '1h', '--json', '--api', api])).stdout,
    );
    expect([hour.window, hour.endpoints, hour.ips]).toEqual([3600, 4, 3]);
  });

  it('client: every service one IP talks to (UDPWATCH_API picks the API)', async () => {
    const run = await runCli(['client', '192.0.2.10'], { env: { UDPWATCH_API: api } });
    expect(run.code).toBe(0);
    const rows = tableRows(run.stdout, /^SERVICE\s+PKTS IN/);
    expect(rows.map((r) => [r[0], r[1]]).sort()).toEqual([
      ['dns', '1.52k'],
      ['ntp', '40'],
    ]);
    expect(run.stdout).toContain('192.0.2.10 talked to 2 services in the last 5m');
  });

  it('client: an IPv6 address in any form travels in the path and is answered canonically', async () => {
    const run = await runCli(['client', '2001:DB8:0::5', '--json', '--api', api]);
    expect(run.stderr).toBe('');
    const body = JSON.parse(run.stdout);
    expect(body.ip).toBe('2001:db8::5');
    expect(
      body.services.map((c: { service: string; pktsIn: number }) => [c.service, c.pktsIn]),
    ).toEqual([['ntp', 9]]);
  });

  it('host: the clients one host saw', async () => {
    const run = await runCli(['host', 'web-2', '--api', api]);
    expect(run.code).toBe(0);
    const rows = tableRows(run.stdout, /^SERVICE\s+CLIENT/);
    expect(rows.map((r) => [r[0], r[1], r[2]]).sort()).toEqual([
      ['dns', '198.51.100.7', '300'],
      ['ntp', '192.0.2.10', '40'],
      ['ntp', '2001:db8::5', '9'],
    ]);
  });

  it('agents: both agents reporting, with their drop counters', async () => {
    const run = await runCli(['agents', '--api', api]);
    expect(run.code).toBe(0);
    const rows = tableRows(run.stdout, /^AGENT\s+HOST/);
    expect(rows.map((r) => [r[0], r[1], r[2], r[5]]).sort()).toEqual([
      ['agent-a', 'web-1', 'reporting', '3'],
      ['agent-b', 'web-2', 'reporting', '0'],
    ]);
  });

  it('top --iterations 2: two plain frames into a pipe, the busiest client first', async () => {
    const run = await runCli([
      'top',
      'dns',
      '--iterations',
      '2',
      '--interval',
      '300ms',
      '--api',
      api,
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).not.toContain('\u001b');
    const frames = run.stdout.split(/^(?=udpwatch top - )/m).filter(Boolean);
    expect(frames).toHaveLength(2);
    for (const [i, frame] of frames.entries()) {
      expect(frame).toMatch(/^udpwatch top - dns - every 300ms - http/);
      expect(frame).toContain('1 service, 3 endpoints, 2 client IPs active in the last 5m');
      const clients = tableRows(frame, /^CLIENT\s+SERVICE/);
      expect(clients.map((r) => r[0])).toEqual([
        '192.0.2.10:40001',
        '198.51.100.7:53000',
        '192.0.2.10:40002',
      ]);
      // Rates need two samples; nothing new arrived between them.
      expect(clients[0]![2]).toBe(i === 0 ? '-' : '0/s');
      expect(clients[0]![3]).toBe('2k');
    }
  });

  it('top --json across services: one JSON line per frame, busiest first', async () => {
    const run = await runCli([
      'top',
      '--iterations',
      '2',
      '--interval',
      '200ms',
      '--json',
      '--api',
      api,
    ]);
    expect(run.code).toBe(0);
    const frames = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(frames).toHaveLength(2);
    for (const frame of frames) {
      expect(frame.clients[0]).toMatchObject({ endpoint: '192.0.2.10:40001', packets: 2000 });
      expect(frame.clients.map((c: { endpoint: string }) => c.endpoint).sort()).toEqual([
        '192.0.2.10:123',
        '192.0.2.10:40001',
        '192.0.2.10:40002',
        '198.51.100.7:53000',
        '[2001:db8::5]:4000',
      ]);
      expect(
        frame.services.map((s: { service: string; endpoints: number; ips: number }) => [
          s.service,
          s.endpoints,
          s.ips,
        ]),
      ).toEqual([
        ['dns', 3, 2],
        ['ntp', 2, 2],
      ]);
    }
  });

  it.each([
    ['q', 'q'],
    ['Ctrl-C', '\u0003'],
  ])(
    'top on a terminal: draws in place on the alternate screen and quits on %s',
    async (_name, key) => {
      const command = [
        'script',
        '-qfec',
        `${process.execPath} bin/udpwatch.js top dns --interval 200ms --api ${api}`,
        '/dev/null',
      ];
      const run = await runCli([], {
        command,
        input: (child, stdout) => {
          // Press q once a frame with the busiest client is on screen.
          const poll = setInterval(() => {
            if (stdout().includes('192.0.2.10:40001')) {
              clearInterval(poll);
              child.stdin!.write(key);
            }
          }, 50);
          child.on('close', () => clearInterval(poll));
        },
        timeoutMs: 20_000,
      });
      expect(run.code).toBe(0);
      const enter = run.stdout.indexOf('\u001b[?1049h');
      const leave = run.stdout.lastIndexOf('\u001b[?1049l');
      expect(enter).toBeGreaterThanOrEqual(0);
      expect(leave).toBeGreaterThan(enter);
      expect(run.stdout).toContain('\u001b[H');
      expect(run.stdout.slice(enter, leave)).toMatch(
        /CLIENT\s+SERVICE.*\r?\n192\.0\.2\.10:40001 +dns/s,
      );
    },
  );
});

describe('udpwatch errors', () => {
  let failing: ApiServer;

  beforeAll(async () => {
    // The real query handler pointed at a DynamoDB that is not there: it answers 500.
    const dead = `http://127.0.0.1:${await closedPort()}`;
    failing = await startApiServer({
      handler: createQueryHandler({ ...stack.config, dynamodbEndpoint: dead }),
      port: 0,
    });
  });
  afterAll(async () => {
    await failing?.stop();
  });

  it('an unreachable API exits 3, naming the URL and how to start it', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const run = await runCli(['services', '--api', url]);
    expect(run.code).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(
      `cannot reach the udpwatch API at ${url}/v1/services: ECONNREFUSED`,
    );
    expect(run.stderr).toContain('npm start');
  });

  it('a bad flag exits 2, naming the flag', async () => {
    const run = await runCli(['clients', 'dns', '--windw', '5m', '--api', api]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('unknown flag --windw');
    expect(run.stderr).toContain('udpwatch clients --help');
  });

  it("a bad IP exits 4 with the API's reason and parameter", async () => {
    const run = await runCli(['client', 'not-an-ip', '--api', api]);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(
      /the API answered 400 Bad Request: .*not an IPv4 or IPv6 address: "not-an-ip".*\(parameter: ip\)/,
    );
  });

  it('a forged cursor exits 4 naming the cursor parameter', async () => {
    const run = await runCli(['clients', 'dns', '--cursor', 'forged', '--api', api]);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/400 Bad Request: .*\(parameter: cursor\)/);
  });

  it('an API failure (5xx) exits 5 with its detail', async () => {
    const run = await runCli(['services', '--api', failing.url]);
    expect(run.code).toBe(5);
    expect(run.stderr).toContain(
      'the API answered 500 Internal Server Error: the request failed; retry later',
    );
  });

  it('top into a pipe stops at the first failure with its exit code', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const run = await runCli(['top', '--iterations', '2', '--api', url]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('cannot reach the udpwatch API');
  });
});
