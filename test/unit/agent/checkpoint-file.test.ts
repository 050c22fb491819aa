/**
 * The checkpoint's two slot files on a real directory: writes alternate and
 * never touch the newest checkpoint, the newest by write sequence wins a read
 * (not by clock), an interrupted write falls back to the one before, a
 * damaged newest one is never replaced by the older (retired) one, and the
 * single file of earlier agents is taken over.
 */
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type CheckpointState,
  checkpointLimits,
  encodeCheckpoint,
} from '../../../agent/checkpoint-codec.js';
import { CheckpointFile } from '../../../agent/checkpoint-file.js';
import { pendingEndpoint } from '../../support/pending-endpoint.js';

const T0 = 1_700_000_000_000;
const MINUTE = Math.floor(T0 / 60_000);
const limits = checkpointLimits(1_000);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'uw-checkpoint-file-'));
  dirs.push(d);
  return d;
}

/** A checkpoint holding `n` pending endpoints and loss count `dropped`. */
function state(dropped: number, n = 3, writtenAt = T0): CheckpointState {
  return {
    agentId: 'agent-1',
    writtenAt,
    clean: false,
    dropped,
    pending: [
      {
        service: 'dns',
        minute: MINUTE,
        endpoints: Array.from({ length: n }, (_, i) => pendingEndpoint(i)),
      },
    ],
    outbox: [],
  };
}

/** What a read found: the loss count that identifies the state, and the file. */
function found(file: CheckpointFile): { dropped?: number; path?: string; setAside: string[] } {
  const r = file.read();
  return {
    ...(r.found === 'ok' ? { dropped: r.state.dropped, path: r.path } : {}),
    setAside: r.setAside.map((s) => `${s.path}: ${s.reason}`),
  };
}

describe('checkpoint file', () => {
  it('writes the two slots in turn, retiring the other one, and reads the newest back', async () => {
    const dir = stateDir();
    const file = new CheckpointFile(dir, 'agent-1', limits);
    const [a, b] = file.slotPaths as [string, string];
    expect(file.read()).toEqual({ found: 'none', setAside: [] });
    await file.write(state(1));
    expect(file.stats()).toMatchObject({ writes: 1, failedWrites: 0, skipped: 0 });
    expect(file.stats().lastBytes).toBe(readFileSync(a).length);
    expect(existsSync(b)).toBe(false);
    await file.write(state(2));
    expect(readFileSync(a, 'latin1').slice(0, 4)).toBe('UWCR');
    expect(readFileSync(b, 'latin1').slice(0, 4)).toBe('UWCK');
    expect(found(file)).toEqual({ dropped: 2, path: b, setAside: [] });
    await file.write(state(3));
    expect(readFileSync(b, 'latin1').slice(0, 4)).toBe('UWCR');
    expect(found(file)).toEqual({ dropped: 3, path: a, setAside: [] });
    // Read back whole, and numbered in write order.
    const back = file.read();
    expect(back.found === 'ok' && back.state).toEqual({ ...state(3), sequence: 3 });
  });

  it('the write sequence orders the slots, not the clock: a clock stepped back does not bring back an older one', async () => {
    const dir = stateDir();
    const file = new CheckpointFile(dir, 'agent-1', limits);
    await file.write(state(1, 3, T0 + 60_000));
    await file.write(state(2, 3, T0));
    expect(found(new CheckpointFile(dir, 'agent-1', limits)).dropped).toBe(2);
  });

  it('a restart writes into the slot that does not hold the newest checkpoint, and numbers on from it, read or not', async () => {
    const dir = stateDir();
    const first = new CheckpointFile(dir, 'agent-1', limits);
    for (let i = 1; i <= 5; i++) await first.write(state(i));
    const newest = readFileSync(first.slotPaths[0]!);

    const second = new CheckpointFile(dir, 'agent-1', limits);
    expect(found(second).dropped).toBe(5);
    await second.write(state(6));
    // The one it restored from stays as it was until the new one is on disk; then it is retired.
    expect(readFileSync(first.slotPaths[0]!).subarray(4)).toEqual(newest.subarray(4));
    expect(found(new CheckpointFile(dir, 'agent-1', limits)).dropped).toBe(6);

    // One that writes without reading first still numbers after what is on disk.
    const third = new CheckpointFile(dir, 'agent-1', limits);
    await third.write(state(7));
    const r = new CheckpointFile(dir, 'agent-1', limits).read();
    expect(r.found === 'ok' && [r.state.dropped, r.state.sequence]).toEqual([7, 7]);
  });

  it('a write a crash cut short is passed over for the one before it, and nothing is set aside', async () => {
    const dir = stateDir();
    const file = new CheckpointFile(dir, 'agent-1', limits);
    await file.write(state(1));
    await file.write(state(2));
    // The third write would go to slot a: half of it got there before the crash.
    const next = encodeCheckpoint({ ...state(3, 40), sequence: 3 });
    const a = file.slotPaths[0]!;
    const old = readFileSync(a);
    const torn = Buffer.concat([
      next.subarray(0, next.length >> 1),
      old.subarray(next.length >> 1),
    ]);
    writeFileSync(a, torn);
    const restarted = new CheckpointFile(dir, 'agent-1', limits);
    expect(found(restarted)).toEqual({ dropped: 2, path: file.slotPaths[1], setAside: [] });
    expect(restarted.stats().skipped).toBe(0);
    // The next write replaces the torn slot, not the good one.
    await restarted.write(state(4));
    expect(found(new CheckpointFile(dir, 'agent-1', limits))).toMatchObject({
      dropped: 4,
      path: a,
    });
  });

  it('a damaged newest checkpoint is set aside and counted; the retired one before it is never restored in its place', async () => {
    const dir = stateDir();
    const file = new CheckpointFile(dir, 'agent-1', limits);
    await file.write(state(1));
    await file.write(state(2));
    const b = file.slotPaths[1]!;
    const good = readFileSync(b);
    good.writeUInt8(good.readUInt8(good.length - 3) ^ 0x55, good.length - 3);
    writeFileSync(b, good);
    const restarted = new CheckpointFile(dir, 'agent-1', limits);
    expect(found(restarted)).toEqual({
      setAside: [`${b}: digest mismatch (damaged or cut short)`],
    });
    expect(restarted.stats().skipped).toBe(1);
    expect(readFileSync(`${b}.bad`)).toEqual(good);
    expect(found(restarted)).toEqual({ setAside: [] });
    // Writing goes on; the set-aside slot is made again.
    await restarted.write(state(3));
    await restarted.write(state(4));
    expect(found(new CheckpointFile(dir, 'agent-1', limits)).dropped).toBe(4);
  });

  it('a checkpoint shorter than the slot held leaves no tail behind', async () => {
    const dir = stateDir();
    const file = new CheckpointFile(dir, 'agent-1', limits);
    await file.write(state(1, 500));
    await file.write(state(2, 500));
    await file.write(state(3, 2));
    expect(readFileSync(file.slotPaths[0]!).length).toBe(file.stats().lastBytes);
    expect(found(new CheckpointFile(dir, 'agent-1', limits)).dropped).toBe(3);
  });

  it('takes over the single file of earlier agents, and removes it once a slot holds a newer one', async () => {
    const dir = stateDir();
    const legacy = join(dir, 'checkpoint');
    writeFileSync(legacy, encodeCheckpoint(state(9)));
    const file = new CheckpointFile(dir, 'agent-1', limits);
    expect(found(file)).toEqual({ dropped: 9, path: legacy, setAside: [] });
    await file.write(state(10));
    expect(existsSync(legacy)).toBe(false);
    expect(found(new CheckpointFile(dir, 'agent-1', limits)).dropped).toBe(10);
  });

  it('a slot that is a symbolic link is refused, not written through; remove() takes every file', async () => {
    const dir = stateDir();
    const file = new CheckpointFile(dir, 'agent-1', limits);
    await file.write(state(1));
    const target = join(dir, 'elsewhere');
    symlinkSync(target, file.slotPaths[1]!);
    await expect(file.write(state(2))).rejects.toThrow(
      `cannot write checkpoint ${file.slotPaths[1]}`,
    );
    expect(existsSync(target)).toBe(false);
    expect(file.stats()).toMatchObject({ writes: 1, failedWrites: 1 });
    // The failed write left the one before it whole.
    expect(found(new CheckpointFile(dir, 'agent-1', limits)).dropped).toBe(1);
    expect(file.remove()).toBe(true);
    for (const p of file.slotPaths) expect(() => lstatSync(p)).toThrow(/ENOENT/);
    await file.write(state(3));
    expect(found(new CheckpointFile(dir, 'agent-1', limits)).dropped).toBe(3);
  });

  it('keeps its slot files open, and makes them again when they are deleted under it', async () => {
    const dir = stateDir();
    const file = new CheckpointFile(dir, 'agent-1', limits);
    await file.write(state(1));
    await file.write(state(2));
    for (const p of file.slotPaths) rmSync(p);
    await file.write(state(3));
    expect(found(new CheckpointFile(dir, 'agent-1', limits))).toMatchObject({ dropped: 3 });
    // Closed, it opens them again for a later write.
    await file.close();
    await file.write(state(4));
    expect(found(new CheckpointFile(dir, 'agent-1', limits))).toMatchObject({ dropped: 4 });
  });

  it('a write issued while another is under way does not overwrite the bytes that one writes', async () => {
    const file = new CheckpointFile(stateDir(), 'agent-1', limits);
    const a = file.write(state(1, 200));
    const b = file.write(state(2, 0));
    await a;
    expect(found(file).dropped).toBe(1);
    await b;
    const back = file.read();
    expect(back.found === 'ok' && back.state).toEqual({ ...state(2, 0), sequence: 2 });
    expect(file.stats().writes).toBe(2);
  });

  it('a file that is not a checkpoint is set aside as .bad and counted', () => {
    const dir = stateDir();
    const file = new CheckpointFile(dir, 'agent-1', limits);
    writeFileSync(file.slotPaths[0]!, 'UWCK\nnot really\n{}');
    expect(found(file)).toEqual({
      setAside: [`${file.slotPaths[0]}: not a checkpoint (no UWCK magic)`],
    });
    expect(file.stats().skipped).toBe(1);
    expect(readFileSync(`${file.slotPaths[0]}.bad`, 'utf8')).toBe('UWCK\nnot really\n{}');
    expect(file.read()).toEqual({ found: 'none', setAside: [] });
  });
});
