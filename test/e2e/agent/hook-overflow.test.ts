/**
 * A hook whose flow table fills while no agent listens: the flows it holds
 * arrive exactly once an agent is back, the datagrams it could not count
 * arrive as a delta, show in the agent's heartbeat counter `dropped`, and a
 * restarted agent does not count them again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from '../../../agent/agent.js';
import { AgentConfigSchema } from '../../../agent/agent-config.js';
import { type HookSource, openHookSource } from '../../../agent/hook-source.js';
import type { PeerObservation } from '../../../agent/observation.js';
import { RecordingShipper } from '../../unit/agent/fake-sources.js';
import {
  type Client,
  type Daemon,
  openClient,
  startHookedDaemon,
  waitFor,
} from './daemon-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-overflow-'));
const socketPath = join(dir, 'hook.sock');
const group = String(process.getgid!());
let daemon: Daemon | undefined;
const clients: Client[] = [];
const open: Array<{ agent: Agent; hook: HookSource }> = [];

afterAll(async () => {
  for (const c of clients) c.close();
  await daemon?.stop();
  for (const o of open) await o.agent.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** An agent on the real hook source (no other sources), collecting what the hook reports. */
async function startAgent(seen: PeerObservation[]) {
  const logs: string[] = [];
  const hook = (await openHookSource(socketPath, group, (m) => logs.push(m)))!;
  const config = AgentConfigSchema.parse({
    host: 'overflow-test',
    hookSocket: socketPath,
    sources: { proc: false, conntrack: false, ebpf: false },
  });
  // Keep a copy of every report for the test, then hand it to the agent.
  const tapped: HookSource = {
    ...hook,
    drain: () => {
      const got = hook.drain();
      seen.push(...got);
      return got;
    },
    // The agent takes the rows one refilled object at a time: keep copies.
    drainInto: (visit) =>
      hook.drainInto((o) => {
        seen.push({ ...o });
        visit(o);
      }),
  };
  let seq = 1;
  const agent = createAgent(config, {
    agentId: 'overflow-agent',
    hook: tapped,
    shipper: new RecordingShipper(),
    seq: { take: () => seq++ },
    clock: Date.now,
    log: (m) => logs.push(m),
  });
  agent.start();
  const entry = { agent, hook, logs };
  open.push(entry);
  return entry;
}

const sum = (seen: PeerObservation[], port: number) =>
  seen.filter((o) => o.remotePort === port).reduce((n, o) => n + o.pktsIn + o.pktsOut, 0);

describe('a hook whose table fills while no agent listens', () => {
  it('delivers what it held exactly, reports the overflow once as dropped, and a restarted agent does not count it again', async () => {
    const before = process.env.UDPWATCH_HOOK_MAX_FLOWS;
    process.env.UDPWATCH_HOOK_MAX_FLOWS = '2';
    try {
      daemon = await startHookedDaemon(socketPath, 100);
    } finally {
      if (before === undefined) delete process.env.UDPWATCH_HOOK_MAX_FLOWS;
      else process.env.UDPWATCH_HOOK_MAX_FLOWS = before;
    }
    // No agent yet: two clients fill the table, two more find it full.
    const held: Client[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await openClient(4);
      clients.push(c);
      held.push(c);
      expect(await c.echo(daemon.v4, [10 + i, 20 + i])).toBe(2);
    }
    await new Promise((r) => setTimeout(r, 300));

    const seen: PeerObservation[] = [];
    const first = await startAgent(seen);
    // In and out of both datagrams of each of the two clients the table had no room for.
    expect(await waitFor(() => first.agent.counters().dropped === 8, 5_000)).toBe(true);
    expect(await waitFor(() => sum(seen, held[1]!.port) === 4, 5_000)).toBe(true);
    expect([0, 1, 2, 3].map((i) => sum(seen, held[i]!.port))).toEqual([4, 4, 0, 0]);
    const said =
      "hooked daemons could not report 8 packets (a hook's flow table was full: raise UDPWATCH_HOOK_MAX_FLOWS; or an older hook lost windows while no agent listened)";
    expect(await waitFor(() => first.logs.includes(said), 5_000), first.logs.join('\n')).toBe(true);
    await first.agent.stop();

    // A new agent hears the same daemon: nothing of the old loss comes back.
    const again: PeerObservation[] = [];
    const second = await startAgent(again);
    expect(
      await waitFor(
        () => second.hook.stats().droppedPackets === 0 && second.logs.length > 0,
        5_000,
      ),
    ).toBe(true);
    const c = await openClient(4);
    clients.push(c);
    // The table forgets quiet flows to make room for this one.
    await new Promise((r) => setTimeout(r, 200));
    expect(await c.echo(daemon.v4, [7])).toBe(1);
    expect(await waitFor(() => sum(again, c.port) === 2, 5_000)).toBe(true);
    expect(second.agent.counters().dropped).toBe(0);
    expect(second.logs.filter((l) => l.includes('could not report'))).toEqual([]);
  });
});
