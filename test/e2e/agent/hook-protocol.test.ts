import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type HookReceiver, startHookReceiver } from '../../../agent/hook-receiver.js';
import type { PeerObservation } from '../../../agent/observation.js';
import {
  HOOK_PROTOCOL_VERSION,
  HookAckSchema,
  HookMessageSchema,
  MAX_HOOK_MESSAGE_BYTES,
  parseHookMessage,
} from '../../../contract/hook-protocol.js';
import {
  type Client,
  type Daemon,
  openClient,
  startHookedDaemon,
  waitFor,
} from './daemon-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-proto-'));
const receivers: HookReceiver[] = [];
const daemons: Daemon[] = [];
const clients: Client[] = [];
let tee: Tee | undefined;

afterAll(async () => {
  for (const c of clients) c.close();
  for (const d of daemons) await d.stop();
  await tee?.down();
  for (const r of receivers) await r.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A Unix socket between the hooks and the receiver that keeps a copy of
 * every line and forwards whole lines only; `down()` makes the agent look
 * absent to the hooks while the receiver keeps its counters.
 */
interface Tee {
  lines: string[];
  /** What the receiver wrote back, as it came. */
  acks: string[];
  up(): Promise<void>;
  down(): Promise<void>;
}

function startTee(path: string, upstream: string): Tee {
  const lines: string[] = [];
  const acks: string[] = [];
  let server: Server | undefined;
  const conns = new Set<Socket>();
  const onConnection = (hook: Socket) => {
    const out = createConnection({ path: upstream });
    conns.add(hook);
    hook.on('close', () => conns.delete(hook));
    let partial = '';
    hook.setEncoding('utf8');
    hook.on('data', (chunk: string) => {
      const text = partial + chunk;
      const end = text.lastIndexOf('\n');
      if (end < 0) {
        partial = text;
        return;
      }
      partial = text.slice(end + 1);
      const whole = text.slice(0, end + 1);
      lines.push(...whole.slice(0, -1).split('\n'));
      out.write(whole);
    });
    // Lines already forwarded still reach the receiver when the hook side goes.
    const close = () => {
      hook.destroy();
      out.end();
    };
    hook.on('close', close);
    hook.on('error', close);
    hook.once('upstream-end', () => {
      hook.pause();
      out.end();
    });
    // The receiver's acknowledgements go back to the hook.
    out.on('data', (d) => {
      acks.push(d.toString());
      if (!hook.destroyed) hook.write(d);
    });
    out.on('close', () => hook.destroy());
    out.on('error', () => hook.destroy());
  };
  return {
    lines,
    acks,
    up: () =>
      new Promise<void>((resolve, reject) => {
        server = createServer(onConnection);
        server.once('error', reject);
        server.listen(path, () => resolve());
      }),
    down: async () => {
      // Upstream first, so the acknowledgements of lines in flight reach the hooks.
      for (const c of conns) c.emit('upstream-end');
      await sleep(200);
      for (const c of conns) c.destroy();
      conns.clear();
      if (server === undefined) return;
      await new Promise<void>((resolve) => server!.close(() => resolve()));
      server = undefined;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One hook report line (pid 1, nothing dropped) of `process` with these rows, as the hook writes it. */
const reportLine = (process: string, at: number, flows: unknown[][]): string =>
  `${JSON.stringify({ v: 1, pid: 1, process, at, flows, overflowPackets: 0, droppedFlows: 0, droppedPackets: 0 })}\n`;

describe('the real hook speaks the hook protocol', () => {
  it('sends only valid messages, and the receiver counts traffic exactly across agent outages and a daemon restart', async () => {
    const receiverPath = join(dir, 'receiver.sock');
    const teePath = join(dir, 'tee.sock');
    const errors: string[] = [];
    const seen: PeerObservation[] = [];
    const receiver = await startHookReceiver(receiverPath, {
      group: String(process.getgid!()),
      onError: (m) => errors.push(m),
      onObservations: () => seen.push(...receiver.drain()),
    });
    receivers.push(receiver);
    tee = startTee(teePath, receiverPath);
    await tee.up();

    // Traffic with the agent present: every datagram arrives, counted exactly.
    const a = await startHookedDaemon(teePath, 100);
    daemons.push(a);
    const expected = new Map<number, { pkts: number; bytes: number }>();
    for (const [i, family] of ([4, 4, 6, 6, 4] as const).entries()) {
      const c = await openClient(family);
      clients.push(c);
      const sizes = Array.from({ length: i + 1 }, (_, k) => 30 + 11 * i + k);
      expect(await c.echo(family === 4 ? a.v4 : a.v6, sizes)).toBe(sizes.length);
      expected.set(c.port, { pkts: sizes.length, bytes: sizes.reduce((x, y) => x + y, 0) });
    }
    const total = [...expected.values()].reduce((n, e) => n + e.pkts, 0);
    const heard = () => seen.reduce((n, o) => n + o.pktsIn, 0);
    expect(await waitFor(() => heard() >= total, 10_000)).toBe(true);
    await sleep(300);
    for (const [port, e] of expected) {
      const mine = seen.filter((o) => o.remotePort === port);
      const sum = (k: 'pktsIn' | 'bytesIn' | 'pktsOut' | 'bytesOut') =>
        mine.reduce((n, o) => n + o[k], 0);
      expect([sum('pktsIn'), sum('bytesIn'), sum('pktsOut'), sum('bytesOut')]).toEqual([
        e.pkts,
        e.bytes,
        e.pkts,
        e.bytes,
      ]);
      // The receiver's peer is the tee (this process): the kernel's pid, not the message's.
      expect(mine.every((o) => o.pid === process.pid && o.source === 'hook')).toBe(true);
    }
    expect(seen).toHaveLength(
      seen.filter((o) => expected.has(o.remotePort)).length, // nothing else was reported
    );
    expect(receiver.stats().droppedFlows).toBe(0);
    expect(receiver.stats().droppedPackets).toBe(0);

    // The agent goes away; three clients echo one datagram each. The hook
    // keeps their counts and delivers them once the agent is back.
    await tee.down();
    await sleep(300);
    const away = new Map<number, number>();
    for (let i = 0; i < 3; i++) {
      const c = await openClient(4);
      clients.push(c);
      expect(await c.echo(a.v4, [20 + i])).toBe(1);
      away.set(c.port, 20 + i);
    }
    await sleep(300);
    await tee.up();
    const heardAway = () =>
      seen.filter((o) => away.has(o.remotePort)).reduce((n, o) => n + o.pktsIn, 0);
    expect(await waitFor(() => heardAway() >= 3, 10_000)).toBe(true);

    // The daemon dies and a new one (a new pid) starts while the agent is away:
    // its counts from then arrive too.
    await a.stop();
    await tee.down();
    const b = await startHookedDaemon(teePath, 100);
    daemons.push(b);
    for (let i = 0; i < 2; i++) {
      const c = await openClient(6);
      clients.push(c);
      expect(await c.echo(b.v6, [40 + i])).toBe(1);
      away.set(c.port, 40 + i);
    }
    await sleep(300);
    await tee.up();
    expect(await waitFor(() => heardAway() >= 5, 10_000)).toBe(true);
    await sleep(300);
    await tee.down();
    await sleep(100);
    // Exactly once each, both ways, though every client was served with no agent listening.
    for (const [port, size] of away) {
      const rows = seen.filter((o) => o.remotePort === port);
      const sum = (k: 'pktsIn' | 'bytesIn' | 'pktsOut' | 'bytesOut') =>
        rows.reduce((n, o) => n + o[k], 0);
      expect([sum('pktsIn'), sum('bytesIn'), sum('pktsOut'), sum('bytesOut')]).toEqual([
        1,
        size,
        1,
        size,
      ]);
    }
    expect(receiver.stats().droppedFlows).toBe(0);
    expect(receiver.stats().droppedPackets).toBe(0);

    // Every line either hook wrote is a valid message of this protocol version...
    const lines = tee.lines;
    expect(lines.length).toBeGreaterThan(3);
    const pids = new Set<number>();
    for (const [i, line] of lines.entries()) {
      const json = JSON.parse(line) as unknown;
      const whole = HookMessageSchema.safeParse(json);
      expect(whole.success, `line ${i}: ${whole.error?.message}`).toBe(true);
      const parsed = parseHookMessage(json);
      expect(parsed.ok && parsed.skipped, `line ${i}`).toEqual([]);
      if (parsed.ok) {
        expect(parsed.message.v).toBe(HOOK_PROTOCOL_VERSION);
        expect(parsed.message.process.length).toBeGreaterThan(0);
        pids.add(parsed.message.pid);
      }
    }
    expect([...pids].sort()).toEqual([a.child.pid, b.child.pid].sort());
    // The receiver wrote back only acknowledgements of the protocol, ready (0) first.
    const ackLines = tee.acks
      .join('')
      .split('\n')
      .filter((l) => l !== '');
    expect(ackLines.length).toBeGreaterThan(3);
    for (const l of ackLines) expect(HookAckSchema.safeParse(JSON.parse(l)).success, l).toBe(true);
    expect(ackLines.filter((l) => l === '{"ack":0}').length).toBeGreaterThanOrEqual(2);
    // ...the receiver used every one of them once (the tee has a line before the
    // receiver reads it: wait for it to catch up), and the dropped clients never appear.
    // A line whose acknowledgement was lost as the tee went down (or that never got
    // through) is sent again unchanged: the tee holds it twice, the receiver takes it
    // once and skips a copy it already took.
    const distinct = [...new Set(lines)];
    await waitFor(() => receiver.stats().messages >= distinct.length, 5_000);
    const st = receiver.stats();
    expect(st.messages).toBe(distinct.length);
    expect(st.resentSkipped).toBeLessThanOrEqual(lines.length - distinct.length);
    expect([st.badMessages, st.badRows, st.unsupportedVersions, st.shed]).toEqual([0, 0, 0, 0]);
    // Only the tee's relaying is remarked on: the kernel names it, not the daemons.
    expect(
      errors.filter((e) => !/^hook connection from pid \d+ \(\S+\) claims pid/.test(e)),
    ).toEqual([]);
    const rowsSent = distinct.reduce(
      (n, l) => n + (JSON.parse(l) as { flows: unknown[] }).flows.length,
      0,
    );
    expect(seen).toHaveLength(rowsSent);
    expect(seen.filter((o) => !expected.has(o.remotePort) && !away.has(o.remotePort))).toEqual([]);
  });
});

describe('the receiver and hostile messages', () => {
  it('counts every bad line and bad row, logs an unknown version once, and keeps serving', async () => {
    const path = join(dir, 'hostile.sock');
    const errors: string[] = [];
    const receiver = await startHookReceiver(path, { onError: (m) => errors.push(m) });
    receivers.push(receiver);
    const now = Date.now();
    const row = ['127.0.0.1', 5000, '192.0.2.9', 4000, 3, 30, 1, 10, now - 10, now - 5];
    const good = {
      v: 1,
      pid: 77,
      process: 'echo',
      at: now,
      flows: [row],
      overflowPackets: 2,
      droppedFlows: 0,
      droppedPackets: 0,
    };
    const lines = [
      'not json',
      JSON.stringify({ ...good, v: 2 }),
      JSON.stringify({ ...good, v: 2 }),
      JSON.stringify({ ...good, v: 3 }),
      JSON.stringify({ ...good, pid: -5 }),
      JSON.stringify({ ...good, process: 'x\u0000' }),
      '[]',
      'null',
      JSON.stringify({ ...good, flows: [row, [...row.slice(0, 3), 70_000, ...row.slice(4)], 'x'] }),
      '',
      JSON.stringify(good),
    ];
    const conn = createConnection({ path });
    await new Promise<void>((r) => conn.once('connect', () => r()));
    conn.write(`${lines.join('\n')}\n`);
    expect(await waitFor(() => receiver.stats().messages === 2, 5_000)).toBe(true);
    const st = receiver.stats();
    expect(st.badMessages).toBe(8);
    expect(st.unsupportedVersions).toBe(3);
    expect(st.badRows).toBe(2);
    expect(st.droppedPackets).toBe(4);
    // The messages claim pid 77; the kernel says this process wrote them.
    expect(receiver.drain().map((o) => [o.remotePort, o.pktsIn, o.pid])).toEqual([
      [4000, 3, process.pid],
      [4000, 3, process.pid],
    ]);
    expect(st.pidMismatches).toBe(2);
    expect(errors.filter((e) => e.includes('version'))).toEqual([
      'hook messages refused: unknown major version 2 (this agent speaks version 1)',
      'hook messages refused: unknown major version 3 (this agent speaks version 1)',
    ]);
    const from = `from pid ${process.pid} (${readFileSync('/proc/self/comm', 'utf8').trim()})`;
    expect(errors).toContain(`hook message ${from} refused: pid -5 out of range`);
    expect(errors).toContain(
      `hook message from pid ${process.pid}: row 1: remotePort 70000 out of range (and 1 more rows)`,
    );

    // A line longer than the protocol allows closes that connection only.
    const closed = new Promise<void>((r) => conn.once('close', () => r()));
    conn.on('error', () => {});
    const chunk = 'x'.repeat(1024 * 1024);
    for (let i = 0; i * chunk.length <= MAX_HOOK_MESSAGE_BYTES; i++) conn.write(chunk);
    await closed;
    expect(receiver.stats().badMessages).toBe(9);
    const again = createConnection({ path });
    await new Promise<void>((r) => again.once('connect', () => r()));
    again.write(`${JSON.stringify({ ...good, pid: 78 })}\n`);
    expect(await waitFor(() => receiver.stats().messages === 3, 5_000)).toBe(true);
    expect(receiver.stats().pids).toEqual([process.pid]);
    again.destroy();
  });
});

describe('a daemon that reports and exits at once', () => {
  it('has its last report taken in, though it is gone before the receiver answers', async () => {
    const path = join(dir, 'exits.sock');
    const errors: string[] = [];
    const receiver = await startHookReceiver(path, {
      group: String(process.getgid!()),
      onError: (m) => errors.push(m),
    });
    receivers.push(receiver);
    const now = Date.now();
    const ports = [4001, 4002, 4003, 4004, 4005, 4006];
    for (const port of ports) {
      const line = reportLine('last', now, [
        ['127.0.0.1', 5000, '192.0.2.9', port, 2, 20, 2, 20, now - 10, now - 5],
      ]);
      // A real process: it writes its report and exits as soon as the kernel has it.
      const code = `const c = require('node:net').createConnection(${JSON.stringify(path)});
        c.on('error', () => process.exit(3));
        c.write(${JSON.stringify(line)}, () => process.exit(0));`;
      const exited = await new Promise<number | null>((resolve) =>
        spawn(process.execPath, ['-e', code], { stdio: 'ignore' }).on('exit', resolve),
      );
      expect(exited).toBe(0);
    }
    expect(await waitFor(() => receiver.stats().messages >= ports.length, 10_000)).toBe(true);
    expect(receiver.stats().messages).toBe(ports.length);
    expect(receiver.stats().badMessages).toBe(0);
    const rows = receiver.drain();
    expect(rows.map((o) => [o.remotePort, o.pktsIn, o.bytesIn]).sort()).toEqual(
      ports.map((p) => [p, 2, 20]),
    );
    // A process the kernel could no longer name is said so; its report is still used.
    expect(
      errors.filter((e) => !e.startsWith('hook connection: cannot learn its process')),
    ).toEqual([]);
  });
});

describe('a line that arrives in pieces', () => {
  it('is one message, its text exact though a piece ends inside a character', async () => {
    const path = join(dir, 'pieces.sock');
    const receiver = await startHookReceiver(path, {
      group: String(process.getgid!()),
      onError: () => {},
    });
    receivers.push(receiver);
    const now = Date.now();
    const tag = 'kunde-Zürich-東京';
    const rows = Array.from({ length: 40 }, (_, i) => [
      '127.0.0.1',
      5000,
      '192.0.2.9',
      4100 + i,
      1,
      10,
      1,
      10,
      now - 10,
      now - 5,
      tag,
    ]);
    const line = Buffer.from(reportLine('pieces', now, rows));
    // Cut inside the first "東" (three bytes in UTF-8), and again elsewhere.
    const cut = line.indexOf(Buffer.from('東')) + 1;
    const conn = createConnection({ path });
    await new Promise<void>((r) => conn.once('connect', () => r()));
    for (const [a, b] of [
      [0, cut],
      [cut, cut + 700],
      [cut + 700, line.length],
    ] as const) {
      conn.write(line.subarray(a, b));
      // Apart in time, so the receiver reads them as separate chunks.
      await sleep(100);
    }
    expect(await waitFor(() => receiver.stats().messages === 1, 5_000)).toBe(true);
    const seen = receiver.drain();
    expect(seen.map((o) => o.remotePort)).toEqual(rows.map((r) => r[3]));
    expect(new Set(seen.map((o) => o.clientId))).toEqual(new Set([tag]));
    expect(receiver.stats().badMessages).toBe(0);
    conn.destroy();
  });
});

describe('a receiver that closes right after taking a line in', () => {
  it('acknowledges that line before its end, so the hook does not send it again', async () => {
    const path = join(dir, 'closing.sock');
    let closed: Promise<void> | undefined;
    const receiver: HookReceiver = await startHookReceiver(path, {
      group: String(process.getgid!()),
      onError: () => {},
      // Closes in the same turn as the line is taken in, before any later write could run.
      onObservations: () => {
        closed ??= receiver.close();
      },
    });
    const now = Date.now();
    const conn = createConnection({ path });
    let heard = '';
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => {
      heard += d;
    });
    const ended = new Promise<void>((r) => conn.once('end', () => r()));
    await new Promise<void>((r) => conn.once('connect', () => r()));
    conn.write(
      reportLine('closing', now, [
        ['127.0.0.1', 5000, '192.0.2.9', 4000, 1, 10, 1, 10, now - 10, now - 5],
      ]),
    );
    await ended;
    await closed;
    expect(heard).toBe('{"ack":0}\n{"ack":1}\n');
    conn.destroy();
  });
});
