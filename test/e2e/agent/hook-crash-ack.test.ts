/**
 * The one instant a checkpoint and the hook's acknowledgements disagree: a
 * real `udpwatch-agent run` dies (SIGKILL) right after a checkpoint is on disk,
 * before the acknowledgements of the hook lines it holds are written. The
 * hooked daemon (real hook, real echo server, steady client) then sends those
 * lines again to the next agent, which restores the checkpoint: each line must
 * count once. No real part can aim a crash at that instant, so the agent's
 * test-only switch UDPWATCH_TEST_DIE_AFTER_CHECKPOINT makes it kill itself
 * there (agent/cli.ts).
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
import { assertResendsIdentical, portTotals, readStream } from './stream-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-crash-ack-'));
const stateDir = join(dir, 'state');
const hookSocket = join(dir, 'hook.sock');
const configPath = join(dir, 'agent.json');
let emulators: Emulators;
let daemon: Daemon;
const children: ChildProcess[] = [];

function startAgent(env: Record<string, string> = {}): AgentProcess {
  const agent = startAgentProcess({
    stream: emulators.streamName,
    endpoint: emulators.kinesisEndpoint,
    stateDir,
    hookSocket,
    configPath,
    env,
  });
  children.push(agent.child);
  return agent;
}

async function totals(port: number) {
  return portTotals(
    assertResendsIdentical(await readStream(emulators.kinesis, emulators.streamName)),
    port,
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  daemon = await startHookedDaemon(hookSocket, 100);
  writeFileSync(
    configPath,
    JSON.stringify({
      heartbeatSeconds: 60,
      sealIntervalSeconds: 60,
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

describe('agent killed between its checkpoint and the hook acknowledgements', () => {
  it('the next agent counts the lines the hook sends again once: the stream holds exactly what was sent', async () => {
    let agent = startAgent({ UDPWATCH_TEST_DIE_AFTER_CHECKPOINT: '5' });
    const hooked = new RegExp(`hook: daemon pid ${daemon.child.pid} \\(node\\) reports`);
    expect(await waitFor(() => hooked.test(agent.stderr()), 15_000), agent.stderr()).toBe(true);
    const traffic = await startTraffic(daemon.v4);
    // The fifth checkpoint with counts in it: about a second of traffic at the 0.2 s interval.
    expect(await waitFor(() => agent.child.signalCode !== null, 15_000), agent.stderr()).toBe(true);
    expect(agent.child.signalCode).toBe('SIGKILL');

    agent = startAgent();
    expect(await waitFor(() => /started: agent /.test(agent.stderr()), 15_000)).toBe(true);
    expect(agent.stderr()).toMatch(/did not stop cleanly .* checkpoint restored/);
    await sleep(1_000);
    await traffic.stop();
    const sent = traffic.sentAt.length;
    expect(traffic.echoes()).toBe(sent);
    await sleep(500);
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);
    // The final part went to the spool at SIGTERM; the next start delivers it.
    agent = startAgent();
    const arrived = async () => (await totals(traffic.port)).pktsIn >= sent;
    expect(await waitFor(arrived, 15_000), agent.stderr()).toBe(true);
    await sleep(1_000);
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);

    const t = await totals(traffic.port);
    console.log(`killed after a checkpoint's write: ${sent} sent, ${t.pktsIn} counted`);
    expect({ pktsIn: t.pktsIn, pktsOut: t.pktsOut, bytesIn: t.bytesIn }).toEqual({
      pktsIn: sent,
      pktsOut: sent,
      bytesIn: sent * 32,
    });
  }, 90_000);
});
