/**
 * A hooked daemon the agent cannot place: the daemon runs in a network
 * namespace built here, the agent (hook and /proc only) in the root one, so
 * the agent's /proc scan never lists the daemon's socket. Its clients still
 * count (the hook reports them), and the blind spot shows where a user looks:
 * the heartbeat's `hookUnmatched`, `/v1/agents` and `udpwatch agents`, with
 * one log line saying what to do. Real agent, hooked daemon, local stack.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../cli/run-cli.js';
import type { AgentsResponse, ClientsResponse } from '../../../contract/api-schemas.js';
import { canUseNamespaces, NamespaceLab } from '../../support/netns.js';
import {
  type AgentProcess,
  type DaemonProcess,
  type Pipeline,
  runClients,
  startAgent,
  startHookedDaemon,
  startPipeline,
  waitFor,
} from './fleet-harness.js';

const SERVICE = 'elsewhere-game';
const HOST = 'uwhu-host';
/** The daemon's port in its own namespace. */
const PORT = 5300;
const namespacesOk = await canUseNamespaces();
if (!namespacesOk) console.warn('SKIPPING hook-unmatched e2e: network namespaces need root');

const dir = mkdtempSync(join(tmpdir(), 'uwhu-'));
const hookSocket = join(dir, 'hook.sock');
const lab = new NamespaceLab('uwhu');
let pipeline: Pipeline;
let daemon: DaemonProcess;
let agent: AgentProcess;
let ns = '';

describe.skipIf(!namespacesOk)('a hooked daemon in another network namespace', () => {
  beforeAll(async () => {
    pipeline = await startPipeline();
    ns = await lab.add('dm');
    agent = await startAgent({
      stream: pipeline.stack.emulators.streamName,
      endpoint: pipeline.kinesisProxy.url,
      stateDir: join(dir, 'state'),
      hookSocket,
      configPath: join(dir, 'agent.json'),
      settings: {
        host: HOST,
        services: [{ name: SERVICE, port: PORT, timeoutSeconds: 600 }],
        sources: { hook: true, conntrack: false, proc: true },
      },
    });
    daemon = await startHookedDaemon({ ns, ip: '127.0.0.1', port: PORT, hookSocket });
    await agent.waitForLog(/hook: daemon pid \d+ \(.*\) reports/);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    daemon?.child.kill('SIGKILL');
    await pipeline?.stop();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts its clients and reports it unmatched in the heartbeat, /v1/agents and udpwatch agents, logged once', async () => {
    // Steady clients in the daemon's namespace for longer than the table's one-minute wait.
    let sent = 0;
    const deadline = Date.now() + 75_000;
    let agents: AgentsResponse | undefined;
    for (let round = 0; round < 100 && Date.now() < deadline; round++) {
      const res = await runClients([{ target: '127.0.0.1', port: daemon.port, sizes: [40] }], ns);
      sent += res.length;
      const got = await pipeline.get<AgentsResponse>('/v1/agents');
      agents = got.body;
      if (agents.agents.find((g) => g.host === HOST)?.hookUnmatched) break;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const row = await waitFor(
      'the agents list to show the unmatched hook reports',
      async () => {
        const got = await pipeline.get<AgentsResponse>('/v1/agents');
        agents = got.body;
        const a = agents.agents.find((g) => g.host === HOST);
        return a && a.hookUnmatched > 0 ? a : undefined;
      },
      { timeoutMs: 30_000, describe: () => `agents: ${JSON.stringify(agents)}\n${agent.log()}` },
    );
    // One process on one port, reporting all along: counted once a minute, so once or twice here.
    expect(row.hookUnmatched).toBeGreaterThanOrEqual(1);
    expect(row.hookUnmatched).toBeLessThanOrEqual(2);
    expect(sent).toBeGreaterThan(0);

    // Not a loss: the hook's counts of its clients arrive.
    const clients = await waitFor('the daemon clients', async () => {
      const res = await pipeline.get<ClientsResponse>(
        `/v1/services/${SERVICE}/clients?by=endpoint&limit=1000`,
      );
      return res.status === 200 && res.body.clients.length > 0 ? res.body : undefined;
    });
    expect(clients.clients.every((c) => c.sources.includes('hook'))).toBe(true);

    const log = agent.log();
    expect(log.match(/reports for a socket this agent's \/proc scan does not list/g)).toHaveLength(
      1,
    );

    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (d) => {
      out += d;
    });
    const code = await runCli(['agents', '--api', pipeline.apiUrl], {
      stdout,
      stderr: new PassThrough(),
      env: {},
    });
    expect(code).toBe(0);
    const agentId = row.agentId;
    expect(out).toMatch(
      new RegExp(`${agentId} hook: \\d+ reports for sockets the agent does not list`),
    );
  }, 150_000);
});
