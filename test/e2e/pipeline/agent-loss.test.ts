/**
 * An agent that must lose records (a 1 KiB spool through a Kinesis outage)
 * shows the loss once, where a user looks: the heartbeat's `dropped`, the
 * API's `/v1/agents` and `udpwatch agents`; and logs one line when the loss
 * starts and one with its total when it ends. Real agent, hooked daemon,
 * local stack.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../cli/run-cli.js';
import type { AgentsResponse, ClientsResponse } from '../../../contract/api-schemas.js';
import {
  type AgentProcess,
  type DaemonProcess,
  type Pipeline,
  runClients,
  sleep,
  startAgent,
  startHookedDaemon,
  startPipeline,
  waitFor,
} from './fleet-harness.js';

const SERVICE = 'loss-game';
const HOST = 'uwe-loss-host';
const dir = mkdtempSync(join(tmpdir(), 'uwe-loss-'));
const hookSocket = join(dir, 'hook.sock');
let pipeline: Pipeline;
let daemon: DaemonProcess;
let agent: AgentProcess;

beforeAll(async () => {
  pipeline = await startPipeline();
  daemon = await startHookedDaemon({ ip: '127.0.0.1', hookSocket });
  agent = await startAgent({
    stream: pipeline.stack.emulators.streamName,
    endpoint: pipeline.kinesisProxy.url,
    stateDir: join(dir, 'state'),
    hookSocket,
    configPath: join(dir, 'agent.json'),
    settings: {
      host: HOST,
      services: [{ name: SERVICE, port: daemon.port, timeoutSeconds: 600 }],
      sources: { hook: true, conntrack: false, proc: false },
      tuning: { spoolMaxBytes: 1024 },
    },
  });
  await agent.waitForLog(new RegExp(`hook: daemon pid ${daemon.pid} \\(node\\) reports`));
});

afterAll(async () => {
  await agent?.stop('SIGKILL');
  daemon?.child.kill('SIGKILL');
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const count = (text: string, pattern: RegExp) =>
  text.match(new RegExp(pattern.source, 'g'))?.length ?? 0;

describe('an agent losing records to a full spool', () => {
  it('counts the loss once in the heartbeat, /v1/agents and udpwatch agents, and logs it once each way', async () => {
    const proxy = pipeline.kinesisProxy;
    await proxy.refuse(true);
    try {
      // New clients each second: every seal is another spool file, and past 1 KiB the oldest go.
      for (let round = 0; round < 8; round++) {
        await runClients(
          Array.from({ length: 6 }, () => ({
            target: '127.0.0.1',
            port: daemon.port,
            sizes: [50, 60],
          })),
        );
        await sleep(1_100);
      }
      await agent.waitForLog(/losing records: the spool is full/);
    } finally {
      await proxy.refuse(false);
    }
    await agent.waitForLog(/loss episode over after [\d.]+ s: \d+ records \(\d+ lines\) lost/);
    const log = agent.log();
    const lost = Number(/loss episode over .*\((\d+) lines\) lost/.exec(log)![1]);
    expect(lost).toBeGreaterThan(0);
    // One line per episode, not one per attempt.
    expect(count(log, /losing records/)).toBe(1);
    expect(count(log, /loss episode over/)).toBe(1);
    expect(count(log, /PutRecords failed/)).toBe(1);
    expect(count(log, /Kinesis reachable again/)).toBe(1);

    // The API shows exactly that loss (and nothing waiting) once a later heartbeat is in.
    let agents: AgentsResponse | undefined;
    await waitFor(
      'the agents list to show the loss',
      async () => {
        const res = await pipeline.get<AgentsResponse>('/v1/agents');
        agents = res.body;
        const a = agents.agents.find((g) => g.host === HOST);
        return a && a.dropped === lost && a.spooled === 0 ? true : undefined;
      },
      { timeoutMs: 20_000, describe: () => `agents: ${JSON.stringify(agents)}\n${agent.log()}` },
    );
    // Something did arrive: the loss is what the spool could not hold, not everything.
    const clients = await pipeline.get<ClientsResponse>(
      `/v1/services/${SERVICE}/clients?by=endpoint&limit=1000`,
    );
    expect(clients.body.clients.length).toBeGreaterThan(0);

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
    const row = out.split('\n').find((l) => l.includes(HOST));
    expect(row, out).toBeDefined();
    // Columns: agent, host, status, last heartbeat, flows, dropped, spooled, sources.
    expect(row!.trim().split(/\s+/).slice(-3, -1)).toEqual([String(lost), '0']);
  });
});
