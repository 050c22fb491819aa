import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlowTable } from '../../../agent/flow-table.js';
import { type HookReceiver, startHookReceiver } from '../../../agent/hook-receiver.js';
import { createServiceNamer } from '../../../agent/service-names.js';
import {
  type Client,
  type Daemon,
  HOOK,
  openClient,
  REPO,
  startHookedDaemon,
  waitFor,
} from './daemon-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-hook-'));
const socketPath = join(dir, 'hook.sock');
let receiver: HookReceiver;
let daemon: Daemon;
const clients: Client[] = [];

beforeAll(async () => {
  receiver = await startHookReceiver(socketPath);
  daemon = await startHookedDaemon(socketPath, 100);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await daemon?.stop();
  await receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('dgram hook -> receiver -> flow table', () => {
  it('holds exactly one flow per client with exact packet and byte counts, then expires them', async () => {
    const table = new FlowTable({
      serviceFor: createServiceNamer(
        [
          { name: 'echo4', port: daemon.v4, timeoutSeconds: 1 },
          { name: 'echo6', port: daemon.v6, timeoutSeconds: 1 },
        ],
        300,
      ),
      maxFlows: 1000,
    });
    // N clients with distinct ports on both loopbacks, each with its own traffic.
    const expected = new Map<string, { pkts: number; bytes: number }>();
    const families: Array<4 | 6> = [4, 4, 4, 6, 6, 6];
    await Promise.all(
      families.map(async (family, i) => {
        const c = await openClient(family);
        clients.push(c);
        const sizes = Array.from({ length: i + 2 }, (_, k) => 20 + i * 7 + k);
        const server = family === 4 ? daemon.v4 : daemon.v6;
        expect(await c.echo(server, sizes)).toBe(sizes.length);
        expected.set(`${c.address}|${c.port}`, {
          pkts: sizes.length,
          bytes: sizes.reduce((a, b) => a + b, 0),
        });
      }),
    );
    const totalPkts = [...expected.values()].reduce((n, e) => n + e.pkts, 0);
    const received = () => {
      table.ingest(receiver.drain());
      return table.list().reduce((n, f) => n + f.pktsIn, 0);
    };
    expect(await waitFor(() => received() >= totalPkts, 5_000)).toBe(true);
    // One more window: nothing else may show up.
    await new Promise((r) => setTimeout(r, 300));
    received();

    const flows = table.list();
    expect(flows).toHaveLength(families.length);
    for (const f of flows) {
      const e = expected.get(`${f.remoteIp}|${f.remotePort}`);
      expect(e, `unexpected peer ${f.remoteIp}:${f.remotePort}`).toBeDefined();
      expect([f.pktsIn, f.bytesIn, f.pktsOut, f.bytesOut]).toEqual([
        e!.pkts,
        e!.bytes,
        e!.pkts,
        e!.bytes,
      ]);
      expect(f.source).toBe('hook');
      expect(f.pid).toBe(daemon.child.pid);
      expect(f.service).toBe(f.localIp === '::1' ? 'echo6' : 'echo4');
      expect(f.localPort).toBe(f.localIp === '::1' ? daemon.v6 : daemon.v4);
    }
    const lines = table.drain(Date.now());
    expect(lines.reduce((n, l) => n + l.bytesOut, 0)).toBe(
      [...expected.values()].reduce((n, e) => n + e.bytes, 0),
    );

    // Idle expiry at the configured 1 s timeout.
    const lastSeen = Math.max(...flows.map((f) => f.lastSeen));
    table.drain(lastSeen + 900);
    expect(table.size).toBe(families.length);
    table.drain(lastSeen + 1_001);
    expect(table.size).toBe(0);
    expect(table.stats().expired).toBe(families.length);
  });

  it('keeps counting while the agent is gone and delivers exactly those counts once one listens again', async () => {
    // Settle: everything so far has been delivered.
    await new Promise((r) => setTimeout(r, 300));
    receiver.drain();
    await receiver.close();
    await new Promise((r) => setTimeout(r, 300));

    const c = await openClient(4);
    clients.push(c);
    const sizes = [10, 11, 12, 13, 14];
    expect(await c.echo(daemon.v4, sizes)).toBe(sizes.length);
    // Let several windows pass with nobody listening.
    await new Promise((r) => setTimeout(r, 500));

    receiver = await startHookReceiver(socketPath);
    const mine = () => receiver.drain().filter((o) => o.remotePort === c.port);
    const got: ReturnType<typeof mine> = [];
    const total = (k: 'pktsIn' | 'bytesIn' | 'pktsOut' | 'bytesOut') =>
      got.reduce((n, o) => n + o[k], 0);
    // The hook reconnects with backoff (at most a second), not at a window's end.
    expect(
      await waitFor(() => {
        got.push(...mine());
        return total('pktsIn') >= sizes.length;
      }, 3_000),
    ).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    got.push(...mine());
    const bytes = sizes.reduce((a, b) => a + b, 0);
    expect([total('pktsIn'), total('bytesIn'), total('pktsOut'), total('bytesOut')]).toEqual([
      sizes.length,
      bytes,
      sizes.length,
      bytes,
    ]);
    expect(receiver.stats().droppedPackets).toBe(0);

    // And traffic after the reconnect is reported as usual.
    expect(await c.echo(daemon.v4, [30])).toBe(1);
    const seen = () => receiver.drain().some((o) => o.remotePort === c.port && o.pktsIn === 1);
    expect(await waitFor(seen, 5_000)).toBe(true);
  });

  it('never keeps a daemon alive and never throws into it with no agent at all', async () => {
    const code = `
      import dgram from 'node:dgram';
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        s.send('x', 9, '127.0.0.1');
        s.send('y', 0, 1, 9, 'not-an-ip.invalid', () => {});
        setTimeout(() => { s.close(); console.log('done'); }, 300);
      });`;
    const child = spawn(process.execPath, ['--import', HOOK, '--input-type=module', '-e', code], {
      cwd: REPO,
      env: {
        ...process.env,
        UDPWATCH_HOOK_SOCKET: join(dir, 'nobody-listens.sock'),
        UDPWATCH_HOOK_INTERVAL_MS: '50',
      },
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const exit = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(-1);
      }, 10_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(exit).toBe(0);
    expect(out.trim()).toBe('done');
  });
});
