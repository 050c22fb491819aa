/**
 * What a SIGKILL costs the eBPF source, with real parts: a python echo
 * server (no Node, no hook) in a namespace built here, a client in a second
 * namespace sending steadily over a veth pair, and a real `udpwatch-agent
 * run` in the server's namespace with the eBPF source on, in minute mode
 * (so everything it counted is unsealed, held only in memory and its
 * checkpoint), shipping to kinesalite through a loopback bridge.
 *
 *   client 198.51.100.3:41500  --veth-->  echo 198.51.100.2:5400  (agent + bpftrace here)
 *
 * The agent is killed 0.4 s into a drain interval (bpftrace's intervals are
 * CLOCK_MONOTONIC multiples of the interval, the clock process.hrtime reads),
 * then started again. Its cycle runs as each drain completes, so the previous
 * interval's counts are in the checkpoint by then and the kill loses only
 * what bpftrace counted in the current interval: the stream must hold at
 * least what was sent minus one interval's traffic at the measured rate, and
 * never more than was sent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { ebpfLabSkipReason } from '../../support/ebpf-lab.js';
import { NamespaceLab, nsSpawn } from '../../support/netns.js';
import { exited, REPO, waitFor } from '../agent/daemon-fixture.js';
import { assertResendsIdentical, portTotals, readStream } from '../agent/stream-reader.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const SERVER_PORT = 5400;
const CLIENT_PORT = 41500;
const BRIDGE_PORT = 14571;
const INTERVAL_MS = 1000;
const GAP_MS = 4;

const skipReason = await ebpfLabSkipReason();
if (skipReason) console.warn(`SKIPPING eBPF crash e2e: ${skipReason}`);

/** Sends a datagram every GAP_MS (reading the echoes) until a line on stdin; then prints how many. */
const CLIENT = `import json, socket, sys, threading, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.3", ${CLIENT_PORT}))
s.setblocking(False)
stop = threading.Event()
sent = [0]
def run():
    due = time.monotonic()
    while not stop.is_set():
        s.sendto(b"x" * 32, ("198.51.100.2", ${SERVER_PORT}))
        sent[0] += 1
        try:
            while True:
                s.recv(65535)
        except BlockingIOError:
            pass
        due += ${GAP_MS} / 1000
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
t = threading.Thread(target=run)
t.start()
print("sending", flush=True)
sys.stdin.readline()
stop.set()
t.join()
print(json.dumps({"sent": sent[0]}), flush=True)
`;

const lab = new NamespaceLab('uwkc');
const dir = mkdtempSync(join(tmpdir(), 'uw-ebpf-crash-'));
const stateDir = join(dir, 'state');
const configPath = join(dir, 'agent.json');
let emulators: Emulators;
let srv = '';
let cli = '';
const agents: ChildProcess[] = [];
const strays: number[] = [];

/** `udpwatch-agent run` inside the server's namespace, and its stderr so far. */
function startAgent(): { child: ChildProcess; stderr: () => string } {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      srv,
      process.execPath,
      'bin/udpwatch-agent.js',
      'run',
      '--stream',
      emulators.streamName,
      '--endpoint',
      `http://127.0.0.1:${BRIDGE_PORT}`,
      '--state-dir',
      stateDir,
      '--hook-socket',
      join(dir, 'hook.sock'),
      '--interval',
      String(INTERVAL_MS / 1000),
      '--config',
      configPath,
    ],
    {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_PROFILE: '' },
    },
  );
  agents.push(child);
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d;
  });
  return { child, stderr: () => err };
}

/** Pids of `pid`'s child processes named `name`. */
function childrenNamed(pid: number, name: string): number[] {
  const file = `/proc/${pid}/task/${pid}/children`;
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === name;
      } catch {
        return false;
      }
    });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ms until `phaseMs` into the next CLOCK_MONOTONIC interval of INTERVAL_MS. */
function untilPhase(phaseMs: number): number {
  const now = Number(process.hrtime.bigint() % BigInt(INTERVAL_MS * 1_000_000)) / 1e6;
  return (phaseMs - now + INTERVAL_MS) % INTERVAL_MS;
}

beforeAll(async () => {
  if (skipReason) return;
  emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
  srv = await lab.add('s');
  cli = await lab.add('c');
  await lab.link(srv, '198.51.100.2/24', cli, '198.51.100.3/24');
  await lab.bridgeLoopback(srv, BRIDGE_PORT, Number(new URL(emulators.kinesisEndpoint).port));
  const server = lab.track(
    nsSpawn(srv, 'python3', [join(FIXTURES, 'udp-echo.py'), 'echo', String(SERVER_PORT)]),
  );
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: server.stdout! }).once('line', () => resolve());
    server.once('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
  });
  writeFileSync(
    configPath,
    JSON.stringify({
      host: 'uw-ebpf-crash',
      heartbeatSeconds: 60,
      sealIntervalSeconds: 60,
      sources: { hook: false, conntrack: false, proc: true, ebpf: true },
      // Drains on the interval's boundaries, which the kill is timed against.
      ebpf: { drainSeconds: INTERVAL_MS / 1000 },
      services: [{ name: 'echo', port: SERVER_PORT }],
    }),
  );
}, 60_000);

afterAll(async () => {
  for (const c of agents) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of strays) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  await lab.cleanup();
  await emulators?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(skipReason !== null)('eBPF source across a SIGKILL of the agent', () => {
  it('loses at most one interval of traffic and counts nothing twice', async () => {
    let agent = startAgent();
    expect(
      await waitFor(() => /eBPF source: attached/.test(agent.stderr()), 90_000),
      agent.stderr(),
    ).toBe(true);
    // Its stdin is the stop signal.
    const client = lab.track(
      spawn('ip', ['netns', 'exec', cli, 'python3', '-c', CLIENT], {
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
    const lines = createInterface({ input: client.stdout! });
    const next = () => new Promise<string>((resolve) => lines.once('line', resolve));
    expect(await next()).toBe('sending');
    const started = Date.now();
    await sleep(4_000);
    // 0.4 s into an interval: the previous interval's drain is complete by now.
    await sleep(untilPhase(400));
    const bpftrace = childrenNamed(agent.child.pid!, 'bpftrace');
    strays.push(...bpftrace);
    client.stdin!.write('stop\n');
    const { sent } = JSON.parse(await next()) as { sent: number };
    const elapsed = (Date.now() - started) / 1000;
    agent.child.kill('SIGKILL');
    await exited(agent.child);
    expect(bpftrace.length).toBe(1);
    const rate = sent / elapsed;

    agent = startAgent();
    expect(await waitFor(() => /started: agent /.test(agent.stderr()), 30_000)).toBe(true);
    expect(agent.stderr()).toMatch(/did not stop cleanly .* checkpoint restored \(\d+ unsealed/);
    const allowed = Math.ceil((rate * INTERVAL_MS) / 1000);
    const counted = async () =>
      portTotals(
        assertResendsIdentical(await readStream(emulators.kinesis, emulators.streamName)),
        CLIENT_PORT,
      ).pktsIn;
    await waitFor(async () => (await counted()) >= sent - allowed, 20_000);
    await sleep(1_500);
    agent.child.kill('SIGTERM');
    expect(await exited(agent.child)).toBe(0);
    const got = await counted();
    console.log(
      `eBPF across SIGKILL: ${sent} sent at ${rate.toFixed(0)}/s, ${got} counted, ${sent - got} lost (bound: one interval, ${allowed})`,
    );
    expect(got).toBeLessThanOrEqual(sent);
    expect(sent - got).toBeLessThanOrEqual(allowed);
  }, 240_000);
});
