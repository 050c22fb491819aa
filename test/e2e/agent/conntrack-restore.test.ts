/**
 * Conntrack's counters across an agent crash, in network namespaces built here:
 *
 *   cli 192.0.2.2 ---- 192.0.2.1 srv: python echo on udp 5000 (no Node, no hook),
 *                                     accounting on, an nft rule using ct state,
 *                                     the real agent (proc and conntrack only)
 *
 * The agent checkpoints each conntrack entry's counters with its unsealed
 * deltas. One client port talks before, while the agent is killed with
 * SIGKILL, during the downtime and after the restart, all on the one
 * conntrack entry; the stream then holds that client's packets and UDP
 * payload bytes exactly once: what the entry moved during the downtime is
 * counted, nothing before the checkpoint twice.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CheckpointState,
  checkpointLimits,
  decodeCheckpoint,
} from '../../../agent/checkpoint-codec.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import { canUseNamespaces, NamespaceLab, nsExec, nsSpawn } from '../../support/netns.js';
import { type AgentProcess, startAgent } from '../pipeline/fleet-harness.js';
import { assertResendsIdentical, portTotals, readStream } from './stream-reader.js';

const PORT = 5000;
const SERVER = '192.0.2.1';
/** The one client port: every batch is the same conntrack entry. */
const SPORT = 43100;
const SIZE = 90;
const BRIDGE_PORT = 14610;
const FIXTURES = join(import.meta.dirname, '../agent-sources/fixtures');

const skip = !(await canUseNamespaces());
if (skip) console.warn('SKIPPING conntrack restore e2e: cannot create network namespaces');

const lab = new NamespaceLab('uwcr');
let dir = '';
let srv = '';
let cli = '';
let emulators: Emulators;
const agents: AgentProcess[] = [];

/** Sends `count` echoed datagrams from the client port; all must come back. */
async function send(count: number): Promise<void> {
  const spec = [{ host: SERVER, port: PORT, sport: SPORT, count, size: SIZE }];
  const out = await nsExec(cli, 'python3', join(FIXTURES, 'udp-client.py'), JSON.stringify(spec));
  expect(JSON.parse(out)).toEqual([count]);
}

function runAgent(): Promise<AgentProcess> {
  return startAgent({
    ns: srv,
    stream: emulators.streamName,
    endpoint: `http://127.0.0.1:${BRIDGE_PORT}`,
    stateDir: join(dir, 'state'),
    hookSocket: join(dir, 'hook.sock'),
    configPath: join(dir, 'agent.json'),
    settings: {
      host: 'uwcr-host',
      services: [{ name: 'ct-echo', port: PORT }],
      sources: { hook: false, ebpf: false, conntrack: true, proc: true },
      // Minute mode: what the killed agent counted waits unsealed, in its checkpoint.
      tuning: { sealIntervalSeconds: 60 },
    },
  }).then((a) => {
    agents.push(a);
    return a;
  });
}

/** The client entry's checkpointed [pktsIn, bytesIn, pktsOut, bytesOut], if any. */
function checkpointedCounters(): number[] | undefined {
  // The running agent writes its slots in place: take the newest that decodes now.
  const state = join(dir, 'state');
  const agentId = readFileSync(join(state, 'agent-id'), 'utf8').trim();
  let newest: CheckpointState | undefined;
  for (const slot of ['checkpoint.a', 'checkpoint.b']) {
    let buf: Buffer;
    try {
      buf = readFileSync(join(state, slot));
    } catch {
      continue;
    }
    const decoded = decodeCheckpoint(buf, agentId, checkpointLimits(100_000));
    if (decoded.ok && (decoded.state.sequence ?? 0) > (newest?.sequence ?? 0))
      newest = decoded.state;
  }
  const entry = newest?.conntrack?.find(([key]) => key.startsWith(`192.0.2.2 ${SPORT} `));
  return entry?.slice(1) as number[] | undefined;
}

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}\n${agents.map((a) => a.log()).join('\n---\n')}`);
}

describe.skipIf(skip)('conntrack counters across an agent crash', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uwcr-'));
    emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
    srv = await lab.add('srv');
    cli = await lab.add('cli');
    await lab.link(srv, `${SERVER}/24`, cli, '192.0.2.2/24');
    await lab.bridgeLoopback(srv, BRIDGE_PORT, Number(new URL(emulators.kinesisEndpoint).port));
    await nsExec(srv, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_acct=1');
    await nsExec(
      srv,
      'nft',
      [
        'add table inet uwcr',
        'add chain inet uwcr in { type filter hook input priority 0 ; }',
        'add rule inet uwcr in ct state new,established counter',
      ].join(' ; '),
    );
    const server = lab.track(
      nsSpawn(srv, 'python3', [join(FIXTURES, 'udp-echo.py'), 'echo', String(PORT)]),
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('echo server: no ready')), 10_000);
      createInterface({ input: server.stdout! }).on('line', (line) => {
        if (line.trim() === 'ready') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  });

  afterAll(async () => {
    for (const a of agents) await a.stop('SIGKILL');
    await lab.cleanup();
    await emulators?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('counts what the entry moved before, during and after the downtime exactly once', async () => {
    let agent = await runAgent();
    await send(20);
    // The checkpoint holds the entry's counters after the first batch (payload bytes).
    await until('a checkpoint with the first batch', () => {
      const c = checkpointedCounters();
      return c !== undefined && c[0] === 20 && c[2] === 20;
    });
    expect(checkpointedCounters()).toEqual([20, 20 * SIZE, 20, 20 * SIZE]);
    // More traffic, then the crash right away: polled or not, checkpointed or not.
    await send(10);
    expect(await agent.stop('SIGKILL')).toBeNull();
    // Traffic while no agent runs: only the kernel's entry counts it.
    await send(7);

    agent = await runAgent();
    expect(agent.log()).toMatch(/did not stop cleanly .* checkpoint restored/);
    await send(5);
    // A clean stop seals everything counted (the final part).
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await agent.stop('SIGTERM')).toBe(0);
    // A stop may leave records in the spool for the next run: one more run delivers them.
    const total = 20 + 10 + 7 + 5;
    const read = async () =>
      portTotals(
        assertResendsIdentical(await readStream(emulators.kinesis, emulators.streamName)),
        SPORT,
      );
    agent = await runAgent();
    for (let i = 0; i < 100 && (await read()).pktsIn < total; i++) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await agent.stop('SIGTERM')).toBe(0);
    expect(await read()).toEqual({ pktsIn: total, bytesIn: total * SIZE, pktsOut: total });
  });
});
