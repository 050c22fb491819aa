/**
 * The hook socket against an unprivileged local user (`nobody`, via setpriv):
 * without the socket's group it cannot connect; as a member of the group it
 * cannot make the agent believe another pid or process name, and huge strings,
 * control characters and huge counters are refused and counted while the
 * agent's cycles keep reporting a real hooked daemon exactly.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from '../../../agent/agent.js';
import { AgentConfigSchema } from '../../../agent/agent-config.js';
import { type HookSource, openHookSource } from '../../../agent/hook-source.js';
import type { BlockEndpoint } from '../../../contract/block.js';
import { decodePayload } from '../../support/stream-records.js';
import { RecordingShipper } from '../../unit/agent/fake-sources.js';
import {
  type Client,
  type Daemon,
  openClient,
  startHookedDaemon,
  waitFor,
} from './daemon-fixture.js';

const NOBODY = 65_534;
/** A gid no account uses: setpriv makes `nobody` a member for one process only. */
const HOOK_GID = 42_424;

const dir = mkdtempSync(join(tmpdir(), 'uwa-trust-'));
// nobody must be able to reach the socket's directory, not write it.
chmodSync(dir, 0o755);
const socketPath = join(dir, 'hook.sock');
const logs: string[] = [];
let hook: HookSource;
let agent: Agent;
let shipper: RecordingShipper;
let daemon: Daemon;
const clients: Client[] = [];

/**
 * A client run as nobody (optionally in HOOK_GID) that connects, waits for
 * the agent's ready line, writes `script`'s lines and reports what happened as
 * one JSON line: {error} or {pid, acked}.
 */
function runAsNobody(withGroup: boolean, script: string): Promise<{ pid: number; out: unknown }> {
  const code = `
    const net = require('node:net');
    const c = net.createConnection(process.env.HOOK_PATH);
    const done = (o) => { process.stdout.write(JSON.stringify(o) + '\\n'); process.exit(0); };
    c.on('error', (e) => done({ error: e.code }));
    let buf = '', sent = false, n = 0;
    c.setEncoding('utf8');
    c.on('data', (d) => {
      buf += d;
      const acks = [...buf.matchAll(/"ack":(\\d+)/g)].map((m) => Number(m[1]));
      if (!sent && acks.includes(0)) {
        sent = true;
        const lines = (() => { ${script} })();
        n = lines.length;
        for (const l of lines) c.write(l + '\\n');
      }
      if (sent && Math.max(...acks) >= n) done({ acked: Math.max(...acks) });
    });
    setTimeout(() => done({ error: 'timeout' }), 8000);`;
  const args = [
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    withGroup ? `--groups=${HOOK_GID}` : '--clear-groups',
    process.execPath,
    '-e',
    code,
  ];
  const child = spawn('setpriv', args, {
    env: { PATH: process.env.PATH, HOOK_PATH: socketPath },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    child.once('exit', () => {
      try {
        resolve({ pid: child.pid!, out: JSON.parse(out) });
      } catch {
        reject(new Error(`nobody's client printed ${JSON.stringify(out)}; stderr ${err}`));
      }
    });
  });
}

/** Every endpoint the agent shipped so far. */
function shipped(): BlockEndpoint[] {
  return shipper.records.flatMap((r) => decodePayload(r.data).block?.endpoints ?? []);
}

beforeAll(async () => {
  const config = AgentConfigSchema.parse({
    host: 'trust-test',
    hookSocket: socketPath,
    hookSocketGroup: String(HOOK_GID),
    sealIntervalSeconds: 0.1,
    sources: { proc: false, conntrack: false, ebpf: false },
    services: [{ name: 'dns', port: 53, process: 'named' }],
  });
  const opened = await openHookSource(config.hookSocket, config.hookSocketGroup, (m) =>
    logs.push(m),
  );
  hook = opened!;
  shipper = new RecordingShipper();
  let seq = 1;
  agent = createAgent(config, {
    agentId: 'trust-agent',
    hook,
    shipper,
    seq: { take: () => seq++ },
    clock: Date.now,
    log: (m) => logs.push(m),
  });
  agent.start();
  daemon = await startHookedDaemon(socketPath, 100);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await daemon?.stop();
  await agent?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the hook socket and an unprivileged local user', () => {
  it('is 0660 with the configured group in a directory only root writes, and refuses nobody outside the group', async () => {
    const st = statSync(socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.gid).toBe(HOOK_GID);
    expect(statSync(dir).mode & 0o022).toBe(0);
    const { out } = await runAsNobody(false, 'return [];');
    expect(out).toEqual({ error: 'EACCES' });
  });

  it('as a group member cannot forge pid or name, and bad strings and counters are counted skips while a real daemon is reported exactly', async () => {
    const statsBefore = hook.stats();
    const { pid, out } = await runAsNobody(
      true,
      `
      const now = Date.now();
      const row = (port, n) => ['127.0.0.1', 53, '127.0.0.9', port, n, n, 0, 0, now - 5, now - 1];
      const base = { v: 1, pid: 1, process: 'named', at: now, overflowPackets: 0, droppedFlows: 0, droppedPackets: 0 };
      return [
        { ...base, flows: [row(40001, 1000)] },
        { ...base, process: 'n'.repeat(5 * 1024 * 1024), flows: [row(40002, 5)] },
        { ...base, process: 'named\\n2026-01-01T00:00:00.000Z udpwatch-agent: forged', flows: [row(40003, 5)] },
        { ...base, flows: [row(40004, 2 ** 53 - 1), row(40005, 7)] },
        { ...base, overflowPackets: 2 ** 53 - 1, flows: [row(40006, 3)] },
      ].map((m) => JSON.stringify(m));`,
    );
    // The agent took in all five lines (and said so), whatever they held.
    expect(out).toEqual({ acked: 5 });

    // Meanwhile a real daemon's clients are reported exactly, cycle after cycle.
    const c = await openClient(4);
    clients.push(c);
    const sizes = [40, 41, 42, 43];
    expect(await c.echo(daemon.v4, sizes)).toBe(sizes.length);
    const real = () => shipped().filter((e) => e.port === c.port);
    expect(await waitFor(() => real().reduce((n, e) => n + e.pktsIn, 0) >= 4, 5_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    const mine = real();
    expect(mine.reduce((n, e) => n + e.pktsIn, 0)).toBe(sizes.length);
    expect(mine.reduce((n, e) => n + e.bytesOut, 0)).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(mine.every((e) => e.owner?.pid === daemon.child.pid)).toBe(true);

    // What nobody could report: rows with the kernel's pid and name ("node"),
    // so its port-53 claim is not the named daemon's service.
    const forged = shipped().filter((e) => e.port >= 40001 && e.port <= 40006);
    expect(forged.map((e) => e.port).sort()).toEqual([40001, 40005]);
    for (const e of forged) {
      expect(e.owner?.pid).toBe(pid);
      expect(e.owner?.process).toBe('node');
    }
    expect(forged.find((e) => e.port === 40001)?.pktsIn).toBe(1000);

    // Refused and counted: the 5 MiB name, the name with a newline, the
    // 2^53-1 row and the 2^53-1 overflow; the forged pid is counted too.
    const st = hook.stats();
    const before = statsBefore;
    expect(st.badMessages - before.badMessages).toBe(3);
    expect(st.badRows - before.badRows).toBe(1);
    expect(st.pidMismatches - before.pidMismatches).toBe(2);
    // No log line came from the client's text: nothing forged, nothing huge.
    expect(logs.some((l) => l.includes('forged'))).toBe(false);
    expect(logs.every((l) => l.length < 1_000 && !l.includes('\n'))).toBe(true);
    expect(logs.some((l) => l.includes(`claims pid 1; using the kernel's pid ${pid}`))).toBe(true);
    expect(logs.filter((l) => /cycle failed|early flush failed/.test(l))).toEqual([]);
  });

  it('serves a group member at most 8 connections at once, and a real daemon still reports', async () => {
    const before = hook.stats();
    const code = `
      const net = require('node:net');
      let ready = 0;
      const conns = [];
      for (let i = 0; i < 20; i++) {
        const c = net.createConnection(process.env.HOOK_PATH);
        c.on('error', () => {});
        c.setEncoding('utf8');
        c.on('data', (d) => { if (d.includes('"ack":0')) ready++; });
        conns.push(c);
      }
      setTimeout(() => { process.stdout.write(JSON.stringify({ ready }) + '\\n'); process.exit(0); }, 2000);`;
    const child = spawn(
      'setpriv',
      [
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        `--groups=${HOOK_GID}`,
        process.execPath,
        '-e',
        code,
      ],
      {
        env: { PATH: process.env.PATH, HOOK_PATH: socketPath },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    await new Promise((r) => child.once('exit', r));
    expect(JSON.parse(out)).toEqual({ ready: 8 });
    expect(hook.stats().refusedConnections - before.refusedConnections).toBe(12);

    const c = await openClient(4);
    clients.push(c);
    expect(await c.echo(daemon.v4, [9, 9])).toBe(2);
    const real = () => shipped().filter((e) => e.port === c.port);
    expect(await waitFor(() => real().reduce((n, e) => n + e.pktsIn, 0) === 2, 5_000)).toBe(true);
  });
});
