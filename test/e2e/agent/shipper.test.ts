import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeqAllocator } from '../../../agent/agent-state.js';
import { blockRecord } from '../../../agent/block-sealer.js';
import { DiskSpool } from '../../../agent/disk-spool.js';
import { KinesisShipper } from '../../../agent/kinesis-shipper.js';
import { type BlockEndpoint, minuteOf } from '../../../contract/block.js';
import { type SealedPart, sealEncodedParts } from '../../../contract/block-codec.js';
import { kinesisClient } from '../../../local/aws-clients.js';
import { createStream, type Emulators, startEmulators } from '../../../local/emulators.js';
import { type FaultProxy, startFaultProxy } from '../../../local/fault-proxy.js';
import { assertResendsIdentical, readStream } from './stream-reader.js';

const T0 = 1_700_000_000_000;
let emulators: Emulators;
let proxy: FaultProxy;
const dirs: string[] = [];

beforeAll(async () => {
  // kinesalite allows 10 shards per account: the default stream and three more of 2 each.
  emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0, shardCount: 2 });
  proxy = await startFaultProxy({ target: emulators.kinesisEndpoint });
});

afterAll(async () => {
  await proxy?.stop();
  await emulators?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** One minute of blocks from `agentId`: a block per service, a unique marker in each endpoint's bytesIn. */
function windowBlocks(
  agentId: string,
  w: number,
  clients: number,
  nextSeq: () => number,
): SealedPart[] {
  const byService = new Map<string, BlockEndpoint[]>();
  for (let c = 0; c < clients; c++) {
    const service = `svc${c % 3}`;
    const list = byService.get(service) ?? [];
    list.push({
      ip: `198.51.100.${c}`,
      port: 40_000 + c,
      localIp: '192.0.2.1',
      localPort: 5000,
      pktsIn: 1,
      bytesIn: w * 1000 + c,
      pktsOut: 0,
      bytesOut: 0,
      firstSecond: 0,
      lastSecond: 59,
      source: 'hook',
      sampleRate: 1,
    });
    byService.set(service, list);
  }
  return [...byService].flatMap(([service, endpoints]) =>
    sealEncodedParts(
      { agentId, host: 'h1', service, minute: minuteOf(T0) + w, seq: nextSeq() },
      endpoints,
    ),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sets or clears the immutable flag: the one way to make a directory refuse root's writes. */
const chattr = (flag: '+i' | '-i', path: string) => execFileSync('chattr', [flag, path]);

/** Per partition key, the seqs of the first copy of each record arrive in ascending order. */
function expectOrderPerKey(records: Awaited<ReturnType<typeof readStream>>): void {
  const seen = new Set<string>();
  const byKey = new Map<string, number[]>();
  for (const r of records) {
    if (!r.block) continue;
    const id = `${r.block.seq}#${r.block.part}`;
    if (seen.has(id)) continue;
    seen.add(id);
    byKey.set(r.partitionKey, [...(byKey.get(r.partitionKey) ?? []), r.block.seq]);
  }
  expect(byKey.size).toBeGreaterThan(1);
  for (const seqs of byKey.values()) expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
}

const markerOf = (service: string, e: BlockEndpoint) => `${service}/${e.ip}/${e.bytesIn}`;

/** A shipper writing to its own stream through the proxy, with fast retries. */
async function setup(
  streamSuffix: string,
  maxSpoolBytes = 64 << 20,
  options: { spoolDir?: string; maxMemoryRecords?: number; callTimeoutMs?: number } = {},
) {
  const stateDir = mkdtempSync(join(tmpdir(), 'uwa-ship-'));
  dirs.push(stateDir);
  const stream =
    streamSuffix === 'plain' ? emulators.streamName : `uwa-${streamSuffix}-${process.pid}`;
  if (streamSuffix !== 'plain') await createStream(emulators.kinesis, stream, 2);
  const agentId = `agent-${streamSuffix}`;
  const seq = new SeqAllocator(stateDir);
  const spoolDir = options.spoolDir ?? join(stateDir, 'spool');
  const spool = new DiskSpool(spoolDir, maxSpoolBytes);
  const logs: string[] = [];
  const shipper = new KinesisShipper({
    kinesis: kinesisClient({ endpoint: proxy.url, maxAttempts: 1, requestTimeoutMs: 3_000 }),
    stream,
    spool,
    backoffBaseMs: 5,
    backoffMaxMs: 100,
    spoolRetryMs: 50,
    maxMemoryRecords: options.maxMemoryRecords,
    callTimeoutMs: options.callTimeoutMs,
    log: (m) => logs.push(m),
  });
  const sent: string[] = [];
  let records = 0;
  const ship = (w: number, clients = 24) => {
    const blocks = windowBlocks(agentId, w, clients, () => seq.take());
    for (const { block: b } of blocks)
      for (const e of b.endpoints) sent.push(markerOf(b.service, e));
    records += blocks.length;
    shipper.enqueue(blocks.map(blockRecord));
  };
  return { stream, agentId, shipper, spool, spoolDir, logs, sent, ship, records: () => records };
}

/** Asserts every sent endpoint arrived exactly once (after removing identical re-sends). */
async function expectExactDelivery(stream: string, sent: string[]): Promise<void> {
  const unique = assertResendsIdentical(await readStream(emulators.kinesis, stream));
  const got = unique.flatMap((r) =>
    r.block ? r.block.endpoints.map((e) => markerOf(r.block!.service, e)) : [],
  );
  expect(got.length).toBe(sent.length);
  expect(new Set(got)).toEqual(new Set(sent));
}

describe('KinesisShipper', () => {
  it('delivers every block part exactly once, straight to kinesalite', async () => {
    const s = await setup('plain');
    s.shipper.start();
    for (let w = 0; w < 20; w++) s.ship(w);
    expect(await s.shipper.drained(20_000)).toBe(true);
    await s.shipper.stop();
    const st = s.shipper.stats();
    expect(st.sentLines).toBe(s.sent.length);
    // 16 partition keys: at most one record per key per call.
    expect(st.calls).toBeGreaterThanOrEqual(Math.ceil(s.records() / 16));
    expect(st.sentRecords).toBe(s.records());
    await expectExactDelivery(s.stream, s.sent);
  });

  it('retries only failed records through 5xx, throttling, partial failures and resets', async () => {
    const s = await setup('faults');
    proxy.setFaults([
      {
        operation: 'PutRecords',
        kind: 'partialPutRecords',
        probability: 0.3,
        seed: 3,
        failFraction: 0.5,
      },
      { operation: 'PutRecords', kind: 'throttle', probability: 0.15, seed: 4 },
      { operation: 'PutRecords', kind: 'http500', probability: 0.1, seed: 5, phase: 'after' },
      { operation: 'PutRecords', kind: 'http500', probability: 0.1, seed: 6 },
      { operation: 'PutRecords', kind: 'reset', probability: 0.1, seed: 7, phase: 'after' },
    ]);
    s.shipper.start();
    for (let w = 0; w < 15; w++) {
      s.ship(w);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await s.shipper.drained(30_000)).toBe(true);
    await s.shipper.stop();
    const injected = proxy.stats.injected;
    proxy.clear();
    expect(injected).toBeGreaterThan(5);
    expect(s.shipper.stats().retriedRecords).toBeGreaterThan(0);
    expect(s.shipper.stats().failedCalls).toBeGreaterThan(0);
    await expectExactDelivery(s.stream, s.sent);
  });

  it('spools to disk while Kinesis is unreachable and drains the spool afterwards', async () => {
    const s = await setup('outage');
    s.shipper.start();
    s.ship(0);
    expect(await s.shipper.drained(10_000)).toBe(true);
    await proxy.refuse(true);
    try {
      for (let w = 1; w <= 8; w++) {
        s.ship(w);
        await new Promise((r) => setTimeout(r, 30));
      }
      const during = s.shipper.stats();
      expect(during.outage).toBe(true);
      expect(during.memoryRecords).toBe(0);
      expect(during.spooledRecords).toBeGreaterThan(0);
      expect(s.spool.stats().segments).toBeGreaterThan(0);
    } finally {
      await proxy.refuse(false);
    }
    for (let w = 9; w <= 10; w++) s.ship(w);
    expect(await s.shipper.drained(30_000)).toBe(true);
    await s.shipper.stop();
    expect(s.logs.some((l) => /wait in the spool until Kinesis answers/.test(l))).toBe(true);
    expect(s.logs.some((l) => /reachable again/.test(l))).toBe(true);
    await expectExactDelivery(s.stream, s.sent);
  });

  it('drops the oldest spooled records when the spool is full, and counts them', async () => {
    const s = await setup('full', 6 * 1024);
    await proxy.refuse(true);
    try {
      s.shipper.start();
      s.ship(0);
      await new Promise((r) => setTimeout(r, 200));
      for (let w = 1; w <= 30; w++) s.ship(w);
      expect(s.shipper.stats().droppedLines).toBeGreaterThan(0);
    } finally {
      await proxy.refuse(false);
    }
    expect(await s.shipper.drained(30_000)).toBe(true);
    await s.shipper.stop();
    const dropped = s.shipper.stats().droppedLines;
    const records = assertResendsIdentical(await readStream(emulators.kinesis, s.stream));
    const delivered = records.reduce((n, r) => n + (r.block?.endpoints.length ?? 0), 0);
    // Nothing vanishes silently: what did not arrive is exactly what was counted.
    expect(delivered + dropped).toBe(s.sent.length);
    // The newest window survived.
    expect(records.some((r) => r.block?.minute === minuteOf(T0) + 30)).toBe(true);
    // One line when the loss starts, one when it ends with the exact count.
    expect(s.logs.filter((l) => /losing records: the spool is full/.test(l))).toHaveLength(1);
    const over = s.logs.filter((l) => /loss episode over/.test(l));
    expect(over).toHaveLength(1);
    expect(over[0]).toContain(`(${dropped} lines) lost`);
    expect(s.logs.filter((l) => /PutRecords failed/.test(l))).toHaveLength(1);
  });

  it('a spool that refuses writes mid-outage: records wait in memory, counted, and keep their order', async () => {
    const s = await setup('eperm');
    s.shipper.start();
    s.ship(0);
    expect(await s.shipper.drained(10_000)).toBe(true);
    await proxy.refuse(true);
    try {
      for (let w = 1; w <= 3; w++) s.ship(w);
      const onDisk = s.spool.stats().records;
      expect(onDisk).toBeGreaterThan(0);
      chattr('+i', s.spoolDir);
      try {
        for (let w = 4; w <= 8; w++) {
          s.ship(w);
          await sleep(20);
        }
        // Several spool retries and failed calls happen meanwhile.
        await sleep(400);
        const st = s.shipper.stats();
        expect(st.memoryRecords).toBeGreaterThan(0);
        // What waits in memory is reported as waiting, and nothing is lost.
        expect(st.spooledRecords).toBe(onDisk + st.memoryRecords);
        expect(st.droppedLines).toBe(0);
      } finally {
        chattr('-i', s.spoolDir);
      }
      // The next write puts the held records on disk first, then the new ones.
      s.ship(9);
      expect(s.shipper.stats().memoryRecords).toBe(0);
      const seqs = s.spool.peek(10_000).map((r) => r.record.seq);
      expect(seqs.length).toBe(s.spool.stats().records);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    } finally {
      chattr('-i', s.spoolDir);
      await proxy.refuse(false);
    }
    expect(await s.shipper.drained(30_000)).toBe(true);
    await s.shipper.stop();
    expect(s.logs.filter((l) => /holding records in memory/.test(l))).toHaveLength(1);
    expect(s.logs.filter((l) => /spool writable again/.test(l))).toHaveLength(1);
    expect(s.logs.filter((l) => /losing records/.test(l))).toEqual([]);
    expect(s.shipper.stats().droppedLines).toBe(0);
    await expectExactDelivery(s.stream, s.sent);
    expectOrderPerKey(await readStream(emulators.kinesis, s.stream));
  });

  it('a full disk mid-outage: memory holds up to its bound, the rest is counted lost once', async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'uwa-full-'));
    dirs.push(mnt);
    // 16 KiB of tmpfs: four segment files, then ENOSPC.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mnt]);
    try {
      const s = await setup('enospc', 64 << 20, {
        spoolDir: join(mnt, 'spool'),
        maxMemoryRecords: 12,
      });
      await proxy.refuse(true);
      try {
        s.shipper.start();
        for (let w = 0; w < 30; w++) s.ship(w);
        const st = s.shipper.stats();
        expect(st.memoryRecords).toBe(12);
        expect(st.droppedLines).toBeGreaterThan(0);
        expect(st.spooledRecords).toBe(s.spool.stats().records + 12);
        // A write the full disk cut short leaves no partial file behind.
        expect(readdirSync(s.spoolDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      } finally {
        await proxy.refuse(false);
      }
      expect(await s.shipper.drained(30_000)).toBe(true);
      await s.shipper.stop();
      const dropped = s.shipper.stats().droppedLines;
      const records = assertResendsIdentical(await readStream(emulators.kinesis, s.stream));
      const delivered = records.reduce((n, r) => n + (r.block?.endpoints.length ?? 0), 0);
      expect(delivered + dropped).toBe(s.sent.length);
      expect(s.logs.filter((l) => /ENOSPC/.test(l))).toHaveLength(1);
      expect(s.logs.filter((l) => /losing records/.test(l))).toHaveLength(1);
      const over = s.logs.filter((l) => /loss episode over/.test(l));
      expect(over).toHaveLength(1);
      expect(over[0]).toContain(`(${dropped} lines) lost`);
      expect(
        s.logs.filter((l) => /spool writable again|held in memory all delivered/.test(l)),
      ).toHaveLength(1);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it('a hung PutRecords: its records are on disk while it hangs, and the call is abandoned after its deadline', async () => {
    const s = await setup('hung', 64 << 20, { callTimeoutMs: 400 });
    // Kinesis takes the calls and answers only after 3 s (then applies them): a hang.
    proxy.setFaults([{ operation: 'PutRecords', kind: 'delay', delayMs: 3_000, count: 4 }]);
    try {
      s.shipper.start();
      for (let w = 0; w < 4; w++) s.ship(w);
      await sleep(1_500);
      const st = s.shipper.stats();
      // Every queued record is on disk, none only in memory.
      expect(st.memoryRecords).toBe(0);
      expect(s.spool.stats().records).toBe(s.records());
      // A deadline of 400 ms: several calls started and were abandoned.
      expect(st.failedCalls).toBeGreaterThanOrEqual(2);
      expect(st.sentRecords).toBe(0);
    } finally {
      proxy.clear();
    }
    expect(await s.shipper.drained(30_000)).toBe(true);
    await sleep(3_500); // the hung calls land late: identical bytes
    await s.shipper.stop();
    await expectExactDelivery(s.stream, s.sent);
  });
});
