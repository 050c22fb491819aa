/**
 * The checkpoint of unsealed state, with real processes: a hooked echo
 * daemon serves a client sending steadily while a real `udpwatch-agent run`
 * in minute mode (sealIntervalSeconds 60: blocks wait up to ~2 minutes
 * unsealed) is killed with SIGKILL mid-minute and started again. Without the
 * checkpoint the killed agent's whole unsealed minute would be gone; with it
 * and acknowledgements deferred until it is written, the stream holds
 * exactly what the client sent. Also: `dropped` continues across restarts, a
 * clean stop followed by a start adds nothing twice, and a damaged
 * checkpoint is skipped, set aside and reported.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointLimits } from '../../../agent/checkpoint-codec.js';
import { CheckpointFile } from '../../../agent/checkpoint-file.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import {
  type AgentProcess,
  type Daemon,
  exited,
  openClient,
  startAgentProcess,
  startHookedDaemon,
  startTraffic,
  waitFor,
} from './daemon-fixture.js';
import { assertResendsIdentical, heartbeatsOf, portTotals, readStream } from './stream-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-checkpoint-'));
const stateDir = join(dir, 'state');
const hookSocket = join(dir, 'hook.sock');
const configPath = join(dir, 'agent.json');
let emulators: Emulators;
let daemon: Daemon;
const children: ChildProcess[] = [];
/** What the first test established: packets sent, and the loss count hooked daemons reported. */
let sent = 0;
let trafficPort = 0;
let droppedTotal = 0;

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

async function stream() {
  return assertResendsIdentical(await readStream(emulators.kinesis, emulators.streamName));
}

async function totals(port: number) {
  return portTotals(await stream(), port);
}

const hooked = () => new RegExp(`hook: daemon pid ${daemon.child.pid} \\(node\\) reports`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The stopped agent's checkpoint, as its next start reads it. */
const checkpointFile = () =>
  new CheckpointFile(
    stateDir,
    readFileSync(join(stateDir, 'agent-id'), 'utf8').trim(),
    checkpointLimits(100_000),
  );

beforeAll(async () => {
  emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  // One flow in the hook's table: a second client's datagrams are counted as lost (`dropped`).
  daemon = await startHookedDaemon(hookSocket, 100, { UDPWATCH_HOOK_MAX_FLOWS: '1' });
  writeFileSync(
    configPath,
    JSON.stringify({
      heartbeatSeconds: 1,
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

describe('agent checkpoint of unsealed state', () => {
  it('SIGKILL mid-minute in minute mode: after the restart the stream holds exactly what was sent, and dropped continues', async () => {
    let agent = startAgent();
    expect(await waitFor(() => hooked().test(agent.stderr()), 15_000), agent.stderr()).toBe(true);
    const through = await startTraffic(daemon.v4);
    trafficPort = through.port;
    await sleep(300);
    // A second client the full hook table cannot count: the daemon reports them as lost.
    const extra = await openClient(4);
    expect(await extra.echo(daemon.v4, Array(10).fill(16))).toBe(10);
    extra.close();
    const beat = async () =>
      heartbeatsOf(await stream()).some((h) => h.dropped > 0 && h.at > Date.now() - 60_000);
    expect(await waitFor(beat, 10_000), agent.stderr()).toBe(true);
    await sleep(1_500);
    agent.child.kill('SIGKILL');
    const killedAt = Date.now();
    await exited(agent.child);
    // Minute mode: the killed agent sealed only early parts; everything else was unsealed.
    const atKill = await totals(through.port);
    const sentBeforeKill = through.sentAt.filter((t) => t <= killedAt).length;
    expect(atKill.pktsIn).toBeLessThan(sentBeforeKill / 2);

    agent = startAgent();
    expect(await waitFor(() => /started: agent /.test(agent.stderr()), 15_000)).toBe(true);
    expect(agent.stderr()).toMatch(
      /did not stop cleanly .* checkpoint restored \(\d+ unsealed endpoints/,
    );
    await sleep(1_500);
    await through.stop();
    sent = through.sentAt.length;
    expect(through.echoes()).toBe(sent);
    await sleep(500);
    // The final part goes to the spool at SIGTERM; the next start delivers it.
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);
    agent = startAgent();
    expect(await waitFor(() => /started: agent /.test(agent.stderr()), 15_000)).toBe(true);
    const arrived = async () => (await totals(through.port)).pktsIn >= sent;
    expect(await waitFor(arrived, 15_000), agent.stderr()).toBe(true);
    await sleep(1_500);
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);

    const t = await totals(through.port);
    const lost = sent - t.pktsIn;
    console.log(
      `SIGKILL in minute mode: ${sent} sent, ${atKill.pktsIn} in the stream at the kill, ${t.pktsIn} after the restart (${lost} lost)`,
    );
    // Hook traffic is exact: the checkpoint holds what was acknowledged, the hook re-sent the rest.
    expect({ pktsIn: t.pktsIn, pktsOut: t.pktsOut, bytesIn: t.bytesIn }).toEqual({
      pktsIn: sent,
      pktsOut: sent,
      bytesIn: sent * 32,
    });
    const beats = heartbeatsOf(await stream());
    const before = beats.filter((h) => h.at < killedAt).map((h) => h.dropped);
    const after = beats.filter((h) => h.at > killedAt).map((h) => h.dropped);
    droppedTotal = Math.max(...before);
    expect(droppedTotal).toBeGreaterThan(0);
    // The restarted agent continues the total: no false drop, no second count.
    expect(after.length).toBeGreaterThan(0);
    expect(
      after.every((d) => d === droppedTotal),
      `${before} | ${after}`,
    ).toBe(true);
  });

  it('a clean stop leaves a checkpoint with nothing pending: a start after it counts nothing twice', async () => {
    const decoded = checkpointFile().read();
    expect(decoded.found === 'ok' && decoded.state.clean).toBe(true);
    expect(
      decoded.found === 'ok' && decoded.state.pending.length + decoded.state.outbox.length,
    ).toBe(0);
    expect(decoded.found === 'ok' && decoded.state.dropped).toBe(droppedTotal);

    const agent = startAgent();
    expect(await waitFor(() => /started: agent /.test(agent.stderr()), 15_000)).toBe(true);
    await sleep(1_500);
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);
    expect(agent.stderr()).not.toMatch(/did not stop cleanly|checkpoint restored|skipped/);
    const t = await totals(trafficPort);
    expect(t.pktsIn).toBe(sent);
    const last = heartbeatsOf(await stream()).sort((a, b) => b.at - a.at)[0];
    expect(last?.dropped).toBe(droppedTotal);
  });

  it('a damaged checkpoint is skipped, set aside and reported; the agent runs on', async () => {
    // Flip a byte in the newest checkpoint's body and leave an unclean mark,
    // as a crash would. The slot before it holds deltas sealed since: it must
    // not be restored in its place.
    const newest = checkpointFile().read();
    if (newest.found !== 'ok') throw new Error(newest.found);
    const checkpointPath = newest.path;
    const good = readFileSync(checkpointPath);
    good.writeUInt8(good.readUInt8(good.length - 3) ^ 0x55, good.length - 3);
    writeFileSync(checkpointPath, good);
    writeFileSync(join(stateDir, 'running'), `${Date.now() - 10_000}\n`);
    const agent = startAgent();
    expect(await waitFor(() => /started: agent /.test(agent.stderr()), 15_000)).toBe(true);
    expect(agent.stderr()).toMatch(
      /checkpoint .*checkpoint\.[ab] skipped \(digest mismatch \(damaged or cut short\)\), set aside as checkpoint\.[ab]\.bad/,
    );
    expect(agent.stderr()).toMatch(/did not stop cleanly .*\(no checkpoint to restore\)/);
    expect(existsSync(`${checkpointPath}.bad`)).toBe(true);
    // It writes fresh checkpoints and stops cleanly.
    await sleep(1_000);
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);
    expect(checkpointFile().read().found).toBe('ok');
    expect((await totals(trafficPort)).pktsIn).toBe(sent);
  });
});
