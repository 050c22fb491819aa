/**
 * The hook receiver's bound on rows waiting for a drain, through a real Unix
 * socket (this process is the hooked daemon): past 200,000 the oldest rows
 * are shed and counted, also from the middle of a report, and what a drain
 * returns is exactly the latest rows, in order, with their counts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type HookReceiver, startHookReceiver } from '../../../agent/hook-receiver.js';
import type { PeerObservation } from '../../../agent/observation.js';
import { waitFor } from './daemon-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-shed-'));
const receivers: HookReceiver[] = [];
afterAll(async () => {
  for (const r of receivers) await r.close();
  rmSync(dir, { recursive: true, force: true });
});

const T = Date.now() - 5_000;
/** Report `n` of `rows` rows: row i is peer 10.<n>.<i>, with i + 1 datagrams in. */
const report = (n: number, rows: number) =>
  `${JSON.stringify({
    v: 1,
    pid: process.pid,
    process: 'node',
    at: T,
    flows: Array.from({ length: rows }, (_, i) => [
      '127.0.0.1',
      5000,
      `10.${n}.${i >> 8}.${i & 255}`,
      40_000,
      i + 1,
      (i + 1) * 10,
      0,
      0,
      T - 10,
      T,
    ]),
    overflowPackets: 0,
    droppedFlows: 0,
    droppedPackets: 0,
    line: n,
  })}\n`;

describe('hook receiver rows waiting for a drain', () => {
  it('sheds the oldest past 200,000, from inside a report too, and drains the rest in order', async () => {
    const path = join(dir, 'hook.sock');
    const receiver = await startHookReceiver(path, { group: String(process.getgid!()) });
    receivers.push(receiver);
    const socket = createConnection({ path });
    let acked = 0;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      for (const l of d.split('\n')) if (l) acked = JSON.parse(l).ack;
    });
    expect(await waitFor(() => receiver.stats().connections === 1, 5_000)).toBe(true);
    // 20 reports of 10,000 rows fill the bound; a 21st of 2,500 pushes 2,500 of report 1 out.
    for (let n = 1; n <= 20; n++) socket.write(report(n, 10_000));
    socket.write(report(21, 2_500));
    expect(await waitFor(() => acked === 21, 20_000)).toBe(true);
    expect(receiver.stats().shed).toBe(2_500);
    const drained: PeerObservation[] = [];
    receiver.drainInto((o) => drained.push({ ...o }));
    expect(drained).toHaveLength(200_000);
    expect(drained[0]).toMatchObject({
      source: 'hook',
      remoteIp: '10.1.9.196',
      pktsIn: 2_501,
      bytesIn: 25_010,
      pid: process.pid,
      firstSeen: T - 10,
      lastSeen: T,
    });
    expect(drained[7_499]!.remoteIp).toBe('10.1.39.15');
    expect(drained[7_500]!.remoteIp).toBe('10.2.0.0');
    expect(drained[199_999]).toMatchObject({ remoteIp: '10.21.9.195', pktsIn: 2_500 });
    // Every row of reports 2 to 21 exactly once.
    const total = drained.reduce((s, o) => s + o.pktsIn, 0);
    const rowsSum = (rows: number, from = 0) => ((from + 1 + rows) * (rows - from)) / 2;
    expect(total).toBe(rowsSum(10_000, 2_500) + 19 * rowsSum(10_000) + rowsSum(2_500));
    // Nothing left for the next drain; the same shape as drain() gives.
    expect(receiver.drain()).toEqual([]);
    socket.end();
  });
});
