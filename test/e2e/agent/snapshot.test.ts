import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Snapshot } from '../../../agent/snapshot.js';
import {
  type Client,
  type Daemon,
  openClient,
  REPO,
  startHookedDaemon,
  waitFor,
} from './daemon-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-snap-'));
const hookSocket = join(dir, 'hook.sock');
let daemon: Daemon;
const clients: Client[] = [];

beforeAll(async () => {
  daemon = await startHookedDaemon(hookSocket, 100);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function snapshot(args: string[]) {
  const child = spawn(
    process.execPath,
    ['bin/udpwatch-agent.js', 'snapshot', '--hook-socket', hookSocket, ...args],
    {
      cwd: REPO,
    },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, out, err })),
  );
  return { child, done };
}

describe('udpwatch-agent snapshot', () => {
  it('lists the daemon socket with its process and the peers the hook saw, with exact counters', async () => {
    const run = snapshot(['--json', '--for', '4s']);
    // The snapshot listens on the hook socket; the daemon's hook connects within 100 ms.
    expect(await waitFor(() => existsSync(hookSocket), 10_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    const [c4, c6] = await Promise.all([openClient(4), openClient(6)]);
    clients.push(c4!, c6!);
    expect(await c4!.echo(daemon.v4, [5, 6, 7])).toBe(3);
    expect(await c6!.echo(daemon.v6, [100])).toBe(1);
    const { code, out, err } = await run.done;
    expect(code, err).toBe(0);
    const snap = JSON.parse(out) as Snapshot;
    const v4 = snap.sockets.find((s) => s.localIp === '127.0.0.1' && s.localPort === daemon.v4);
    const v6 = snap.sockets.find((s) => s.localIp === '::1' && s.localPort === daemon.v6);
    expect(v4?.pid).toBe(daemon.child.pid);
    expect(v4?.process).toBe('node');
    expect(v4?.state).toBe('UNCONN');
    expect(v4?.peers).toEqual([
      expect.objectContaining({
        ip: '127.0.0.1',
        port: c4!.port,
        source: 'hook',
        pktsIn: 3,
        bytesIn: 18,
        pktsOut: 3,
        bytesOut: 18,
      }),
    ]);
    expect(v6?.peers).toEqual([
      expect.objectContaining({
        ip: '::1',
        port: c6!.port,
        source: 'hook',
        pktsIn: 1,
        bytesIn: 100,
      }),
    ]);
    expect(snap.sources.hook).toMatch(/1 hooked daemons reported/);
  });

  it('prints a terminal table without watching', async () => {
    const { code, out } = await snapshot([]).done;
    expect(code).toBe(0);
    const header = out.split('\n')[0]!;
    expect(header).toMatch(/^State\s+Recv-Q\s+Drops\s+Local\s+Peer\s+Process/);
    const row = out.split('\n').find((l) => l.includes(`127.0.0.1:${daemon.v4} `));
    expect(row).toMatch(new RegExp(`^UNCONN .*node \\(pid ${daemon.child.pid}\\)$`));
    expect(out).toMatch(/sources: proc: \d+ sockets; conntrack: .*; hook: only with --for/);
  });
});
