/**
 * One owner per hook socket path: a second agent (a real `udpwatch-agent run`)
 * refuses to start on a live socket and leaves it alone, a stale socket is
 * replaced, a file that is not a socket is never removed, and an agent
 * removes the path at exit only while it is still its own socket.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type HookReceiver, startHookReceiver } from '../../../agent/hook-receiver.js';
import {
  HookSocketInUseError,
  HookSocketPathError,
  probeSocketPath,
} from '../../../agent/hook-socket-file.js';
import { type Daemon, REPO, startHookedDaemon, waitFor } from './daemon-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-owner-'));
const children: ChildProcess[] = [];
const daemons: Daemon[] = [];
const receivers: HookReceiver[] = [];
const group = String(process.getgid!());

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of daemons) await d.stop();
  for (const r of receivers) await r.close();
  rmSync(dir, { recursive: true, force: true });
});

function startAgent(name: string, hookSocket: string) {
  const config = join(dir, `${name}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      hookSocketGroup: group,
      sources: { proc: false, conntrack: false, ebpf: false },
    }),
  );
  const child = spawn(
    process.execPath,
    [
      'bin/udpwatch-agent.js',
      'run',
      '--stream',
      'owner-test',
      // Nothing listens there: the agent spools, which this test does not look at.
      '--endpoint',
      'http://127.0.0.1:9',
      '--state-dir',
      join(dir, `${name}-state`),
      '--hook-socket',
      hookSocket,
      '--config',
      config,
    ],
    {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_PROFILE: '' },
    },
  );
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d;
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exit };
}

/** A socket file nobody listens on: its listener was SIGKILLed. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, [
    '-e',
    `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'));`,
  ]);
  await new Promise((r) => child.once('exit', r));
  expect(statSync(path).isSocket()).toBe(true);
  expect(await probeSocketPath(path)).toBe('stale');
}

const reports = (r: HookReceiver, pid: number | undefined) => () => r.stats().pids.includes(pid!);

describe('one owner of the hook socket path', () => {
  it('a second agent refuses to start with a clear message and the first keeps hearing its daemons', async () => {
    const path = join(dir, 'shared.sock');
    const a = startAgent('a', path);
    expect(await waitFor(() => /started: agent /.test(a.stderr()), 20_000), a.stderr()).toBe(true);
    const inode = statSync(path).ino;

    const b = startAgent('b', path);
    expect(await b.exit).toBe(1);
    expect(b.stderr()).toContain(
      `not starting: hook socket ${path} is in use: another agent listens on it; stop that agent first, or give this one another path (--hook-socket, or hookSocket in the config)`,
    );
    // The live socket is untouched, at start and at the second agent's exit.
    expect(statSync(path).ino).toBe(inode);

    const d = await startHookedDaemon(path, 100);
    daemons.push(d);
    const heard = new RegExp(`hook: daemon pid ${d.child.pid} \\(node\\) reports`);
    expect(await waitFor(() => heard.test(a.stderr()), 10_000), a.stderr()).toBe(true);

    a.child.kill('SIGTERM');
    expect(await a.exit).toBe(0);
    // Its own socket, so it removed it.
    expect(await probeSocketPath(path)).toBe('absent');
  });

  it('replaces a stale socket, and never removes a file that is not a socket', async () => {
    const path = join(dir, 'stale.sock');
    await staleSocket(path);
    const r = await startHookReceiver(path, { group });
    receivers.push(r);
    const d = await startHookedDaemon(path, 100);
    daemons.push(d);
    expect(await waitFor(reports(r, d.child.pid), 10_000)).toBe(true);

    const file = join(dir, 'not-a-socket');
    writeFileSync(file, 'keep me');
    await expect(startHookReceiver(file, { group })).rejects.toThrow(HookSocketPathError);
    await expect(startHookReceiver(file, { group })).rejects.toThrow(
      `hook socket path ${file} exists and is not a socket; move it away or choose another path (--hook-socket)`,
    );
    expect(readFileSync(file, 'utf8')).toBe('keep me');

    // In-process the same: a live path is refused.
    await expect(startHookReceiver(path, { group })).rejects.toThrow(HookSocketInUseError);
  });

  it('at exit removes the path only while it is still its own socket', async () => {
    const path = join(dir, 'replaced.sock');
    const first = await startHookReceiver(path, { group });
    // Someone removes the path and another receiver takes it.
    unlinkSync(path);
    const second = await startHookReceiver(path, { group });
    receivers.push(second);
    const inode = statSync(path).ino;
    await first.close();
    expect(statSync(path).ino).toBe(inode);
    const d = await startHookedDaemon(path, 100);
    daemons.push(d);
    expect(await waitFor(reports(second, d.child.pid), 10_000)).toBe(true);
  });

  it('refuses a directory others can write, and without the group makes the socket 0600 and says how to create it', async () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await expect(startHookReceiver(join(open, 'hook.sock'))).rejects.toThrow(
      `hook socket directory ${open} is writable by everyone (mode 0777)`,
    );

    const errors: string[] = [];
    const path = join(dir, 'nogroup.sock');
    const r = await startHookReceiver(path, {
      group: 'udpwatch-no-such-group',
      onError: (m) => errors.push(m),
    });
    receivers.push(r);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(r.stats().socketMode).toBe(0o600);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('groupadd --system udpwatch-no-such-group');
  });
});
