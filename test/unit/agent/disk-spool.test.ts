import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadAgentId, SeqAllocator } from '../../../agent/agent-state.js';
import { DiskSpool, decodeSegment, encodeSegment } from '../../../agent/disk-spool.js';
import type { ShipRecord } from '../../../agent/record-packer.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'uwa-spool-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function rec(seq: number, key = `a/${seq % 3}`, size = 10): ShipRecord {
  return { partitionKey: key, seq, lines: 2, data: Buffer.alloc(size, seq & 255) };
}

describe('DiskSpool', () => {
  it('round-trips segments byte for byte', () => {
    const records = [rec(1), rec(2, 'x/15', 0), rec(2 ** 40, 'a/0', 1000)];
    expect(decodeSegment(encodeSegment(records))).toEqual(records);
    expect(() => decodeSegment(encodeSegment(records).subarray(0, 30))).toThrow(/truncated/);
  });

  it('survives a restart and hands records back in append order', () => {
    const dir = tempDir();
    const a = new DiskSpool(dir, 1 << 20);
    a.append([rec(1), rec(2)]);
    a.append([rec(3)]);
    a.ack([a.peek(1)[0]!.id]);
    // A fresh instance (as after a crash) sees what was not acked... and what was
    // acked in a segment that is not fully delivered comes back (a duplicate is allowed).
    const b = new DiskSpool(dir, 1 << 20);
    expect(b.peek(10).map((s) => s.record.seq)).toEqual([1, 2, 3]);
    expect(b.stats().records).toBe(3);
    b.ack(b.peek(10).map((s) => s.id));
    expect(b.empty).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
    const c = new DiskSpool(dir, 1 << 20);
    expect(c.empty).toBe(true);
    // Segment numbers keep growing after a restart.
    c.append([rec(9)]);
    expect(new DiskSpool(dir, 1 << 20).peek(5).map((s) => s.record.seq)).toEqual([9]);
  });

  it('drops the oldest segments past its byte bound and counts records and lines', () => {
    const dir = tempDir();
    const s = new DiskSpool(dir, 2500);
    for (let i = 0; i < 5; i++) s.append([rec(i, 'k/0', 1000)]);
    const st = s.stats();
    expect(st.bytes).toBeLessThanOrEqual(2500);
    expect(st.droppedRecords).toBe(3);
    expect(st.droppedLines).toBe(6);
    expect(s.peek(10).map((x) => x.record.seq)).toEqual([3, 4]);
  });

  it('a record dropped while in a call counts as lost only if that call fails', () => {
    const dir = tempDir();
    const s = new DiskSpool(dir, 2500);
    s.append([rec(1, 'k/0', 1000)]);
    s.append([rec(2, 'k/1', 1000)]);
    const inCall = s.peek(2).map((x) => x.id);
    s.beginSend(inCall);
    // Both segments in the call are pushed out by newer records.
    s.append([rec(3, 'k/2', 1000)]);
    s.append([rec(4, 'k/3', 1000)]);
    expect(s.peek(10).map((x) => x.record.seq)).toEqual([3, 4]);
    expect(s.stats().droppedRecords).toBe(0);
    // The call delivered the first and failed the second.
    s.ack([inCall[0]!]);
    s.endSend(inCall);
    expect(s.stats()).toMatchObject({ droppedRecords: 1, droppedLines: 2, records: 2 });
    // Nothing counts twice on a later end.
    s.endSend(inCall);
    expect(s.stats().droppedRecords).toBe(1);
  });

  it('a failed append names the spool and leaves no temp file', () => {
    const dir = tempDir();
    const s = new DiskSpool(dir, 1 << 20);
    s.append([rec(1)]);
    execFileSync('chattr', ['+i', dir]);
    try {
      expect(() => s.append([rec(2)])).toThrow(
        new RegExp(`spool ${dir}: cannot write 1 records \\(\\d+ bytes\\): .*EPERM`),
      );
    } finally {
      execFileSync('chattr', ['-i', dir]);
    }
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(s.peek(10).map((x) => x.record.seq)).toEqual([1]);
  });

  it('sequence numbers keep coming while the reservation cannot be written, and it is retried', () => {
    const dir = tempDir();
    const errors: string[] = [];
    const seq = new SeqAllocator(dir, 3, (m) => errors.push(m));
    expect([seq.take(), seq.take(), seq.take()]).toEqual([0, 1, 2]);
    execFileSync('chattr', ['+i', dir]);
    try {
      expect([seq.take(), seq.take(), seq.take(), seq.take()]).toEqual([3, 4, 5, 6]);
    } finally {
      execFileSync('chattr', ['-i', dir]);
    }
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/cannot reserve sequence numbers in .*seq-reserved/);
    expect(seq.take()).toBe(7);
    expect(errors[1]).toMatch(/written again/);
    // The next run starts above everything handed out since.
    expect(new SeqAllocator(dir, 3).take()).toBe(10);
  });

  it('sets a damaged segment aside, counts it, and keeps the good ones', () => {
    const dir = tempDir();
    const s = new DiskSpool(dir, 1 << 20);
    s.append([rec(1)]);
    s.append([rec(2)]);
    const [first] = readdirSync(dir).sort();
    writeFileSync(join(dir, first!), 'garbage');
    const errors: string[] = [];
    const r = new DiskSpool(dir, 1 << 20, (m) => errors.push(m));
    expect(r.peek(10).map((x) => x.record.seq)).toEqual([2]);
    expect(r.stats().badSegments).toBe(1);
    expect(errors[0]).toMatch(/damaged \(bad magic\)/);
  });
});

describe('agent state', () => {
  it('keeps the agent id across restarts', () => {
    const dir = tempDir();
    const id = loadAgentId(dir);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(loadAgentId(dir)).toBe(id);
  });

  it('hands out sequence numbers that keep increasing across restarts', () => {
    const dir = tempDir();
    const a = new SeqAllocator(dir, 5);
    const first = [a.take(), a.take(), a.take()];
    const b = new SeqAllocator(dir, 5);
    const next = b.take();
    expect(first).toEqual([0, 1, 2]);
    expect(next).toBeGreaterThan(2);
    const many = Array.from({ length: 12 }, () => b.take());
    for (let i = 1; i < many.length; i++) expect(many[i]).toBe(many[i - 1]! + 1);
    expect(new SeqAllocator(dir, 5).take()).toBeGreaterThan(many.at(-1)!);
  });
});
