import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { blockRecord } from '../../../agent/block-sealer.js';
import {
  CHECKPOINT_ENDPOINTS_PER_FLOW,
  type CheckpointState,
  checkpointLimits,
  decodeCheckpoint,
  encodeCheckpoint,
} from '../../../agent/checkpoint-codec.js';
import { CheckpointFile } from '../../../agent/checkpoint-file.js';
import type { BlockEndpoint } from '../../../contract/block.js';
import { sealParts } from '../../../contract/block-codec.js';

const T0 = 1_700_000_000_000;
const MINUTE = Math.floor(T0 / 60_000);
const limits = checkpointLimits(1_000);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function endpoint(i: number, over: Partial<BlockEndpoint> = {}): BlockEndpoint {
  return {
    ip: `192.0.2.${i % 250}`,
    port: 40_000 + i,
    localIp: '0.0.0.0',
    localPort: 53,
    pktsIn: i + 1,
    bytesIn: (i + 1) * 40,
    pktsOut: i,
    bytesOut: i * 90,
    firstSecond: 3,
    lastSecond: 41,
    source: 'hook',
    sampleRate: 1,
    ...over,
  };
}

function state(over: Partial<CheckpointState> = {}): CheckpointState {
  const [block] = sealParts(
    { agentId: 'agent-1', host: 'h', service: 'dns', minute: MINUTE, seq: 7 },
    [endpoint(1)],
  );
  return {
    agentId: 'agent-1',
    writtenAt: T0,
    clean: false,
    dropped: 12,
    pending: [
      {
        service: 'dns',
        minute: MINUTE,
        socket: { rxQueueBytes: 512, drops: 3 },
        endpoints: [
          endpoint(1, {
            natFromIp: '198.51.100.9',
            natFromPort: 999,
            owner: { pid: 42, process: 'named' },
            clientId: 'c-1',
          }),
          endpoint(2, { source: 'ebpf', sampleRate: 4 }),
          endpoint(3, { ip: '2001:db8::5', localIp: '::', owner: { process: 'x' } }),
        ],
      },
      { service: 'game', minute: MINUTE + 1, endpoints: [endpoint(4)] },
    ],
    outbox: [blockRecord(block!)],
    conntrack: [['192.0.2.7 40000 10.0.0.1 5300 0', 20, 760, 19, 722]],
    ...over,
  };
}

const reason = (buf: Buffer, agentId = 'agent-1', l = limits) => {
  const d = decodeCheckpoint(buf, agentId, l);
  return d.ok ? 'ok' : d.reason;
};

describe('checkpoint codec', () => {
  it('round-trips pending endpoints (every field), socket health, outbox records, conntrack baselines and the loss total', () => {
    const s = state();
    const d = decodeCheckpoint(encodeCheckpoint(s), 'agent-1', limits);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.state).toEqual(s);
    expect(d.state.outbox[0]!.data.equals(s.outbox[0]!.data)).toBe(true);
  });

  it('refuses a checkpoint over its bounds: endpoints, and bytes before reading them', () => {
    const many = Array.from({ length: 31 }, (_, i) => endpoint(i));
    const small = checkpointLimits(10);
    expect(small.maxEndpoints).toBe(10 * CHECKPOINT_ENDPOINTS_PER_FLOW);
    const buf = encodeCheckpoint(
      state({ pending: [{ service: 'dns', minute: MINUTE, endpoints: many }] }),
    );
    expect(reason(buf, 'agent-1', small)).toBe('more than 30 endpoints');
    expect(reason(buf, 'agent-1', { maxEndpoints: 100, maxBytes: 100 })).toMatch(
      /bytes, more than 100$/,
    );
  });

  it('rejects garbage, damage, another version or agent, bad rows and foreign outbox records, never throwing', () => {
    const good = encodeCheckpoint(state());
    expect(reason(randomBytes(300))).toBe('not a checkpoint (no UWCK1 magic)');
    expect(reason(Buffer.alloc(0))).toBe('not a checkpoint (no UWCK1 magic)');
    const flipped = Buffer.from(good);
    flipped.writeUInt8(flipped.readUInt8(200) ^ 1, 200);
    expect(reason(flipped)).toBe('digest mismatch (damaged or cut short)');
    expect(reason(good.subarray(0, good.length - 10))).toBe(
      'digest mismatch (damaged or cut short)',
    );
    expect(reason(good, 'agent-2')).toBe('written by agent agent-1, not this agent agent-2');

    // Well-formed envelopes around bad bodies: the digest matches, the content does not.
    const wrap = (body: unknown) => {
      const enc = encodeCheckpoint(state());
      const json = JSON.parse(enc.subarray(enc.indexOf('\n', 6) + 1).toString());
      const text = JSON.stringify(typeof body === 'function' ? body(json) : body);
      const digest = createHash('sha256').update(text).digest('hex');
      return Buffer.from(`UWCK1\n${digest}\n${text}`);
    };
    expect(reason(wrap((j: { v: number }) => ({ ...j, v: 2 })))).toBe(
      'version 2 is not supported (expected 1)',
    );
    expect(reason(wrap([1, 2]))).toBe('version undefined is not supported (expected 1)');
    expect(reason(wrap((j: { dropped: number }) => ({ ...j, dropped: -1 })))).toMatch(/^dropped: /);
    const badRow = (row: unknown[]) =>
      wrap((j: { pending: { endpoints: unknown[] }[] }) => {
        j.pending[0]!.endpoints[1] = row;
        return j;
      });
    const row = encodeRow();
    expect(reason(badRow(row))).toBe('ok');
    expect(reason(badRow(row.slice(0, 5)))).toBe(
      'pending.0.endpoints.1: not an endpoint row of 17 positions',
    );
    expect(reason(badRow(at(row, 1, 70_000)))).toBe('pending.0.endpoints.1: bad port');
    expect(reason(badRow(at(row, 4, 2 ** 49)))).toBe('pending.0.endpoints.1: bad counter');
    expect(reason(badRow(at(row, 8, 50)))).toBe('pending.0.endpoints.1: bad seconds');
    expect(reason(badRow(at(row, 10, 'telepathy')))).toBe('pending.0.endpoints.1: bad source');
    expect(reason(badRow(at(row, 16, 'x'.repeat(300))))).toBe(
      'pending.0.endpoints.1: bad client id',
    );
    const foreign = sealParts(
      { agentId: 'agent-9', host: 'h', service: 'dns', minute: MINUTE, seq: 7 },
      [endpoint(1)],
    );
    expect(
      reason(
        wrap((j: { outbox: { d: string }[] }) => {
          j.outbox[0]!.d = blockRecord(foreign[0]!).data.toString('base64');
          return j;
        }),
      ),
    ).toBe("outbox.0: not this agent's block 7");
    expect(
      reason(
        wrap((j: { outbox: { d: string }[] }) => {
          j.outbox[0]!.d = Buffer.from('not a block').toString('base64');
          return j;
        }),
      ),
    ).toBe('outbox.0: not a block record (no UWB magic)');
  });

  it('the file: written atomically, read back; a bad one is set aside as checkpoint.bad and counted', () => {
    const dir = mkdtempSync(join(tmpdir(), 'uw-checkpoint-'));
    dirs.push(dir);
    const file = new CheckpointFile(dir, 'agent-1', limits);
    expect(file.read()).toEqual({ found: 'none' });
    file.write(state());
    expect(file.stats()).toMatchObject({ writes: 1, failedWrites: 0, skipped: 0 });
    expect(file.stats().lastBytes).toBe(readFileSync(file.path).length);
    const back = file.read();
    expect(back.found === 'ok' && back.state.dropped).toBe(12);
    writeFileSync(file.path, 'UWCK1\nnot really\n{}');
    expect(file.read()).toEqual({ found: 'bad', reason: 'not a checkpoint (no UWCK1 magic)' });
    expect(file.stats().skipped).toBe(1);
    expect(readFileSync(`${file.path}.bad`, 'utf8')).toBe('UWCK1\nnot really\n{}');
    expect(file.read()).toEqual({ found: 'none' });
    expect(file.remove()).toBe(true);
  });
});

/** `row` with position `i` set to `v`. */
function at(row: unknown[], i: number, v: unknown): unknown[] {
  const out = [...row];
  out[i] = v;
  return out;
}

/** A valid stored row of the second pending endpoint. */
function encodeRow(): unknown[] {
  const enc = encodeCheckpoint(state());
  const json = JSON.parse(enc.subarray(enc.indexOf('\n', 6) + 1).toString());
  return json.pending[0].endpoints[1];
}
