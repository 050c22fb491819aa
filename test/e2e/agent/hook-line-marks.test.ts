/**
 * Line numbers on a real hook receiver, through a real Unix socket (this
 * process is the hooked daemon): a line at or below its daemon's mark in the
 * checkpoint the agent started from, or at or below a line this receiver
 * took in already (a re-send after a dropped connection), is acknowledged
 * but not counted again; the marks a checkpoint takes cover what was drained.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type HookReceiver, startHookReceiver } from '../../../agent/hook-receiver.js';
import { waitFor } from './daemon-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-marks-'));
const receivers: HookReceiver[] = [];
afterAll(async () => {
  for (const r of receivers) await r.close();
  rmSync(dir, { recursive: true, force: true });
});

const T = Date.now() - 5_000;
/** This process as the receiver names it: kernel pid, start time, the pid its messages give. */
const stat = readFileSync('/proc/self/stat', 'utf8');
const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
const SAID_PID = 777;
const daemon = `${process.pid}@${start}/${SAID_PID}`;

const line = (n: number, pkts: number) =>
  `${JSON.stringify({
    v: 1,
    pid: SAID_PID,
    process: 'node',
    at: T,
    flows: [['127.0.0.1', 5000, '127.0.0.1', 40_000 + n, pkts, pkts * 10, 0, 0, T - 10, T]],
    overflowPackets: 0,
    droppedFlows: 0,
    droppedPackets: 0,
    line: n,
  })}\n`;

/** A connection to the receiver and the acknowledgements it got. */
async function connect(path: string): Promise<{ socket: Socket; acks: number[] }> {
  const socket = createConnection({ path });
  const acks: number[] = [];
  let part = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    part += d;
    let nl = part.indexOf('\n');
    while (nl >= 0) {
      acks.push(JSON.parse(part.slice(0, nl)).ack);
      part = part.slice(nl + 1);
      nl = part.indexOf('\n');
    }
  });
  expect(await waitFor(() => acks.length > 0, 5_000)).toBe(true);
  return { socket, acks };
}

describe('hook line numbers', () => {
  it('counts a line once: not again when the checkpoint held it, nor when it is sent again after a reconnect', async () => {
    const path = join(dir, 'hook.sock');
    const receiver = await startHookReceiver(path, {
      group: String(process.getgid!()),
      deferAcks: true,
      counted: [[daemon, 2]],
    });
    receivers.push(receiver);
    let c = await connect(path);
    // Lines 1 and 2 are in the checkpoint this agent started from; 3 is new.
    c.socket.write(line(1, 1) + line(2, 2) + line(3, 4));
    expect(
      await waitFor(() => receiver.stats().messages + receiver.stats().resentSkipped >= 3, 5_000),
    ).toBe(true);
    const first = receiver.drain();
    expect(first.map((o) => [o.remotePort, o.pktsIn])).toEqual([[40_003, 4]]);
    receiver.acknowledge();
    expect(await waitFor(() => c.acks.at(-1) === 3, 5_000)).toBe(true);
    expect(receiver.lineMarks()).toEqual([[daemon, 3]]);

    // Line 4 is taken in, the connection drops before its ack: the hook sends 4 again, then 5.
    c.socket.write(line(4, 8));
    expect(await waitFor(() => receiver.stats().messages >= 2, 5_000)).toBe(true);
    c.socket.destroy();
    c = await connect(path);
    c.socket.write(line(4, 8) + line(5, 16));
    expect(await waitFor(() => receiver.stats().resentSkipped >= 3, 5_000)).toBe(true);
    expect(await waitFor(() => receiver.stats().messages >= 3, 5_000)).toBe(true);
    const second = receiver.drain();
    expect(second.map((o) => [o.remotePort, o.pktsIn])).toEqual([
      [40_004, 8],
      [40_005, 16],
    ]);
    receiver.acknowledge();
    // Both lines of the new connection are acknowledged, the skipped one too.
    expect(await waitFor(() => c.acks.at(-1) === 2, 5_000)).toBe(true);
    expect(receiver.lineMarks()).toEqual([[daemon, 5]]);
    expect(receiver.stats().resentSkipped).toBe(3);
    c.socket.destroy();
  });
});
