import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type HookReceiver, startHookReceiver } from '../../../agent/hook-receiver.js';
import type { PeerObservation } from '../../../agent/observation.js';
import {
  type Client,
  type Daemon,
  openClient,
  startHookedDaemon,
  waitFor,
} from './daemon-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-full-'));
let receiver: HookReceiver | undefined;
let daemon: Daemon | undefined;
const clients: Client[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  await daemon?.stop();
  await receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('dgram hook with a full flow table', () => {
  it('forgets quiet clients to make room for new ones instead of losing their counts', async () => {
    const socketPath = join(dir, 'hook.sock');
    const seen: PeerObservation[] = [];
    receiver = await startHookReceiver(socketPath, {
      onObservations: () => seen.push(...receiver!.drain()),
    });
    const before = process.env.UDPWATCH_HOOK_MAX_FLOWS;
    process.env.UDPWATCH_HOOK_MAX_FLOWS = '3';
    try {
      daemon = await startHookedDaemon(socketPath, 200);
    } finally {
      if (before === undefined) delete process.env.UDPWATCH_HOOK_MAX_FLOWS;
      else process.env.UDPWATCH_HOOK_MAX_FLOWS = before;
    }
    // Three clients fill the table (max 3 flows) and go quiet.
    for (let i = 0; i < 3; i++) {
      const c = await openClient(4);
      clients.push(c);
      expect(await c.echo(daemon.v4, [10])).toBe(1);
    }
    const ports = () => new Set(seen.map((o) => o.remotePort));
    expect(await waitFor(() => clients.every((c) => ports().has(c.port)), 10_000)).toBe(true);
    // Two windows later they are quiet; a fourth, new client must still be counted.
    await new Promise((r) => setTimeout(r, 600));
    const late = await openClient(4);
    clients.push(late);
    expect(await late.echo(daemon.v4, [33, 33])).toBe(2);
    expect(await waitFor(() => ports().has(late.port), 10_000)).toBe(true);
    const counted = seen.filter((o) => o.remotePort === late.port);
    expect(counted.reduce((n, o) => n + o.pktsIn, 0)).toBe(2);
    expect(counted.reduce((n, o) => n + o.bytesOut, 0)).toBe(66);
    expect(receiver.stats().droppedPackets).toBe(0);
  });
});
