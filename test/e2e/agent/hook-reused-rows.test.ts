/**
 * The hook receiver reuses the arrays that hold a report's rows once a drain
 * has read them: a later, shorter report in a reused array must yield only
 * its own rows and values, never the stale rows of an earlier one, on both
 * of its read paths (the one-pass reader and the schema).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startHookReceiver } from '../../../agent/hook-receiver.js';
import { waitFor } from './daemon-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-reuse-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T = Date.now();
/** A report with a row per port; `spaced` writes it with whitespace, which only the schema takes. */
const report = (ports: number[], pkts: number, spaced = false) =>
  `${JSON.stringify(
    {
      v: 1,
      pid: process.pid,
      process: 'node',
      at: T,
      flows: ports.map((p) => [
        '127.0.0.1',
        5300,
        '192.0.2.9',
        p,
        pkts,
        pkts * 10,
        0,
        0,
        T - 5,
        T - 1,
      ]),
      overflowPackets: 0,
      droppedFlows: 0,
      droppedPackets: 0,
    },
    null,
    spaced ? 1 : undefined,
  ).replaceAll('\n', ' ')}\n`;

describe('hook receiver row arrays', () => {
  it('a reused array yields only the new report rows, with its values', async () => {
    const receiver = await startHookReceiver(join(dir, 'hook.sock'));
    const socket = createConnection(receiver.path);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      const rounds: [number[], number, boolean][] = [
        [[1, 2, 3, 4, 5, 6], 7, false],
        [[11, 12, 13, 14], 2, false], // fits the first report's array: 32 of 48 numbers
        [[21, 22, 23], 5, true],
        [[31, 32, 33, 34, 35], 9, false],
        [[41, 42, 43, 44], 1, true],
      ];
      let messages = 0;
      for (const [ports, pkts, spaced] of rounds) {
        socket.write(report(ports, pkts, spaced));
        messages++;
        expect(await waitFor(() => receiver.stats().messages === messages, 5_000)).toBe(true);
        const got = receiver.drain().map((o) => [o.remotePort, o.pktsIn, o.bytesIn]);
        expect(got).toEqual(ports.map((p) => [p, pkts, pkts * 10]));
      }
      expect(receiver.stats().badMessages).toBe(0);
    } finally {
      socket.destroy();
      await receiver.close();
    }
  });
});
