/**
 * Agent restarts under traffic: a hooked echo daemon serves a client that
 * sends steadily while the agent (a real `udpwatch-agent run` process) is
 * stopped with SIGTERM or killed with SIGKILL and started again. The stream
 * (kinesalite) must hold exactly what the client sent, or, after SIGKILL,
 * lack at most what the dead agent itself held unshipped.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import {
  type AgentProcess,
  type Daemon,
  exited,
  startAgentProcess,
  startHookedDaemon,
  startTraffic,
  waitFor,
} from './daemon-fixture.js';
import { assertResendsIdentical, heartbeatsOf, portTotals, readStream } from './stream-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-restart-'));
const stateDir = join(dir, 'state');
const hookSocket = join(dir, 'hook.sock');
const configPath = join(dir, 'agent.json');
let emulators: Emulators;
let daemon: Daemon;
const children: ChildProcess[] = [];

function startAgent(): AgentProcess {
  const agent = startAgentProcess({
    stream: emulators.streamName,
    endpoint: emulators.kinesisEndpoint,
    stateDir,
    hookSocket,
    configPath,
  });
  children.push(agent.child);
  return agent;
}

async function streamTotals(port: number) {
  const unique = assertResendsIdentical(await readStream(emulators.kinesis, emulators.streamName));
  return { ...portTotals(unique, port), heartbeats: heartbeatsOf(unique) };
}

const hooked = () => new RegExp(`hook: daemon pid ${daemon.child.pid} \\(node\\) reports`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  daemon = await startHookedDaemon(hookSocket, 100);
  writeFileSync(
    configPath,
    JSON.stringify({
      heartbeatSeconds: 1,
      sealIntervalSeconds: 1,
      sources: { conntrack: false, ebpf: false, proc: false },
      services: [{ name: 'echo', port: daemon.v4 }],
    }),
  );
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await daemon?.stop();
  await emulators?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('agent restarts with a hooked daemon under traffic', () => {
  it('SIGTERM restart: the stream holds exactly what the client sent', async () => {
    let agent = startAgent();
    expect(await waitFor(() => hooked().test(agent.stderr()), 15_000), agent.stderr()).toBe(true);
    const traffic = await startTraffic(daemon.v4);
    await sleep(1_500);

    agent.child.kill('SIGTERM');
    const down = Date.now();
    expect(await exited(agent.child)).toBe(0);
    const first = agent.stderr();
    agent = startAgent();
    expect(await waitFor(() => /started: agent /.test(agent.stderr()), 15_000)).toBe(true);
    const downtimeMs = Date.now() - down;
    await sleep(1_500);
    await traffic.stop();
    const sent = traffic.sentAt.length;
    expect(traffic.echoes()).toBe(sent);

    const arrived = async () => (await streamTotals(traffic.port)).pktsIn >= sent;
    expect(await waitFor(arrived, 15_000), agent.stderr()).toBe(true);
    await sleep(1_500);
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);

    const t = await streamTotals(traffic.port);
    // Exactly once, though the agent was away for `downtimeMs` in the middle.
    expect({ pktsIn: t.pktsIn, pktsOut: t.pktsOut, bytesIn: t.bytesIn }).toEqual({
      pktsIn: sent,
      pktsOut: sent,
      bytesIn: sent * 32,
    });
    expect(downtimeMs).toBeGreaterThan(0);
    expect(`${first}${agent.stderr()}`).not.toMatch(/could not report|cycle failed/);
    // Neither agent had anything to count as dropped.
    expect(t.heartbeats.length).toBeGreaterThan(0);
    expect(t.heartbeats.every((h) => h.dropped === 0)).toBe(true);
    console.log(
      `SIGTERM restart: ${sent} sent, all delivered once; ${downtimeMs} ms from SIGTERM to the new agent's start`,
    );
  });

  it('SIGKILL restart: what the hook held while the agent was dead arrives exactly; the loss is only what the dead agent held', async () => {
    let agent = startAgent();
    expect(await waitFor(() => hooked().test(agent.stderr()), 15_000), agent.stderr()).toBe(true);
    // `through` runs across the kill; `away` sends only while no agent runs.
    const through = await startTraffic(daemon.v4);
    await sleep(1_500);
    agent.child.kill('SIGKILL');
    const killedAt = Date.now();
    await exited(agent.child);
    const away = await startTraffic(daemon.v4, 10);
    await sleep(500);
    await away.stop();
    agent = startAgent();
    expect(await waitFor(() => /started: agent /.test(agent.stderr()), 15_000)).toBe(true);
    await sleep(1_500);
    await through.stop();

    const awaySent = away.sentAt.length;
    const throughSent = through.sentAt.length;
    const settled = async () => {
      const a = await streamTotals(away.port);
      return a.pktsIn >= awaySent;
    };
    expect(await waitFor(settled, 15_000), agent.stderr()).toBe(true);
    await sleep(2_000);
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);

    const a = await streamTotals(away.port);
    expect([a.pktsIn, a.pktsOut]).toEqual([awaySent, awaySent]);
    const t = await streamTotals(through.port);
    const lost = throughSent - t.pktsIn;
    // Never counted twice; lost only what the killed agent had taken in and
    // not shipped: at most the last seal interval (1 s) plus a cycle (0.2 s)
    // and a hook window (0.1 s) before the kill, with 0.5 s for a slow machine.
    expect(lost).toBeGreaterThanOrEqual(0);
    const heldByAgent = through.sentAt.filter((at) => at > killedAt - 1_800).length;
    expect(lost, `lost ${lost} of ${throughSent}`).toBeLessThanOrEqual(heldByAgent);
    expect(t.pktsOut).toBe(t.pktsIn);
    console.log(
      `SIGKILL restart: ${throughSent} sent across the kill, ${lost} lost with the killed agent; ${awaySent} sent while no agent ran, all delivered`,
    );
  });
});
