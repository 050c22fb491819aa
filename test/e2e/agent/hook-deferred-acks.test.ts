/**
 * The hook receiver with deferred acknowledgements (what the agent uses), on
 * a real Unix socket: ready at once, then lines are acknowledged only when
 * the agent says their counts are durable (acknowledge() after a drain), so
 * a receiver that dies before that leaves them unacknowledged for the hook
 * to send again; a stopping receiver takes no more lines.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type HookReceiver, startHookReceiver } from '../../../agent/hook-receiver.js';
import { waitFor } from './daemon-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-defer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T = Date.now();
const line = (port: number, overflow = 0) =>
  `${JSON.stringify({
    v: 1,
    pid: process.pid,
    process: 'node',
    at: T,
    flows: [['127.0.0.1', 5300, '192.0.2.9', port, 1, 10, 1, 10, T - 5, T - 1]],
    overflowPackets: overflow,
    droppedFlows: 0,
    droppedPackets: 0,
  })}\n`;

async function connect(path: string): Promise<{ socket: Socket; acks: string[] }> {
  const socket = createConnection(path);
  const acks: string[] = [];
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buf += d;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      acks.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
    }
  });
  expect(await waitFor(() => acks.length > 0, 5_000)).toBe(true);
  return { socket, acks };
}

describe('hook receiver with deferred acknowledgements', () => {
  it('acknowledges lines only through acknowledge(), up to what a drain returned; a stopping receiver takes no more', async () => {
    const receiver: HookReceiver = await startHookReceiver(join(dir, 'hook.sock'), {
      deferAcks: true,
    });
    try {
      const { socket, acks } = await connect(receiver.path);
      expect(acks).toEqual(['{"ack":0}']);
      socket.write(line(1) + line(2, 3));
      const seen: number[] = [];
      expect(
        await waitFor(() => {
          seen.push(...receiver.drain().map((o) => o.remotePort));
          return seen.length === 2;
        }, 5_000),
      ).toBe(true);
      expect(receiver.drainedLoss()).toBe(3);
      // A third line after the drain: taken in, not covered by the next acknowledgement.
      socket.write(line(3));
      expect(await waitFor(() => receiver.stats().messages === 3, 5_000)).toBe(true);
      receiver.acknowledge();
      expect(await waitFor(() => acks.length === 2, 5_000)).toBe(true);
      expect(acks).toEqual(['{"ack":0}', '{"ack":2}']);
      expect(receiver.drain().map((o) => o.remotePort)).toEqual([3]);
      receiver.acknowledge();
      expect(await waitFor(() => acks.length === 3, 5_000)).toBe(true);
      expect(acks[2]).toBe('{"ack":3}');

      receiver.stopTaking();
      socket.write(line(4));
      // Nothing more is taken in or acknowledged, however long it waits.
      await new Promise((r) => setTimeout(r, 200));
      expect(receiver.drain()).toEqual([]);
      receiver.acknowledge();
      expect(receiver.stats().messages).toBe(3);
      await receiver.close();
      expect(acks).toEqual(['{"ack":0}', '{"ack":2}', '{"ack":3}']);
      socket.destroy();
    } finally {
      await receiver.close().catch(() => {});
    }
  });
});
