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

const dir = mkdtempSync(join(tmpdir(), 'uwa-early-'));
let receiver: HookReceiver | undefined;
let daemon: Daemon | undefined;
let client: Client | undefined;

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  await receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('dgram hook, a new client', () => {
  it('is reported without waiting for the window to end, and known clients wait for it', async () => {
    const socketPath = join(dir, 'hook.sock');
    const seen: PeerObservation[] = [];
    let messages = 0;
    receiver = await startHookReceiver(socketPath, {
      onObservations: () => {
        messages++;
        seen.push(...receiver!.drain());
      },
    });
    // A one-minute window: only the early send for a new flow can deliver within the test.
    daemon = await startHookedDaemon(socketPath, 60_000);
    // The hook connects on its first send; give it a flow to trigger one, then a fresh one.
    const warmup = await openClient(4);
    await warmup.echo(daemon.v4, [10]);
    await waitFor(() => messages > 0 || receiver!.stats().connections > 0, 10_000);
    warmup.close();

    client = await openClient(4);
    expect(await client.echo(daemon.v4, [100])).toBe(1);
    const arrived = await waitFor(() => seen.some((o) => o.remotePort === client!.port), 10_000);
    expect(arrived).toBe(true);
    const first = seen.filter((o) => o.remotePort === client!.port);
    expect(first).toEqual([
      expect.objectContaining({ pktsIn: 1, bytesIn: 100, pktsOut: 1, bytesOut: 100 }),
    ]);

    // More traffic of the same (now known) client waits for the one-minute window.
    const before = messages;
    expect(await client.echo(daemon.v4, [50, 50])).toBe(2);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(messages).toBe(before);
  });
});
