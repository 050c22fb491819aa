import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { blockRecord } from '../../../agent/block-sealer.js';
import {
  CHECKPOINT_ENDPOINTS_PER_FLOW,
  CheckpointScratch,
  type CheckpointState,
  checkpointLimits,
  checkpointPreamble,
  decodeCheckpoint,
  encodeCheckpoint,
  encodeCheckpointBody,
} from '../../../agent/checkpoint-codec.js';
import { sealEncodedParts } from '../../../contract/block-codec.js';
import { pendingEndpoint } from '../../support/pending-endpoint.js';

const T0 = 1_700_000_000_000;
const MINUTE = Math.floor(T0 / 60_000);
const limits = checkpointLimits(1_000);

function state(over: Partial<CheckpointState> = {}): CheckpointState {
  const [block] = sealEncodedParts(
    { agentId: 'agent-1', host: 'h', service: 'dns', minute: MINUTE, seq: 7 },
    [pendingEndpoint(1)],
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
          pendingEndpoint(1, {
            natFromIp: '198.51.100.9',
            natFromPort: 999,
            owner: { pid: 42, process: 'named' },
            clientId: 'c-1',
          }),
          pendingEndpoint(2, { source: 'ebpf', sampleRate: 4 }),
          pendingEndpoint(3, { ip: '2001:db8::5', localIp: '::', owner: { process: 'x' } }),
        ],
      },
      { service: 'game', minute: MINUTE + 1, endpoints: [pendingEndpoint(4)] },
    ],
    outbox: [blockRecord(block!)],
    conntrack: [['192.0.2.7 40000 10.0.0.1 5300 0', 20, 760, 19, 722]],
    hookLines: [['4242@981234', 17]],
    ...over,
  };
}

const reason = (buf: Buffer, agentId = 'agent-1', l = limits) => {
  const d = decodeCheckpoint(buf, agentId, l);
  return d.ok ? 'ok' : d.reason;
};

describe('checkpoint codec', () => {
  it('round-trips pending endpoints (every field), socket health, outbox records, conntrack baselines, hook line marks and the loss total', () => {
    const s = state();
    const d = decodeCheckpoint(encodeCheckpoint(s), 'agent-1', limits);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.state).toEqual(s);
    expect(d.state.outbox[0]!.data.equals(s.outbox[0]!.data)).toBe(true);
  });

  it('an encoder reusing its memory writes the same bytes as a fresh one, whatever the previous write held', () => {
    const scratch = new CheckpointScratch();
    const withPreamble = (body: Uint8Array) =>
      Buffer.concat([
        checkpointPreamble(createHash('sha256').update(body).digest('hex')),
        Buffer.from(body),
      ]);
    // Large first: every optional column, IPv6 strings, wide counters; then one a fraction of it.
    // (Each write's columns start after room for the last one's head: the first grows the memory,
    // the second moves its columns down to its short head, the third up to its long one.)
    const big = state({
      pending: [
        {
          service: 'dns',
          minute: MINUTE,
          endpoints: Array.from({ length: 400 }, (_, i) =>
            pendingEndpoint(i, {
              ip: `2001:db8::${i.toString(16)}`,
              bytesIn: 2 ** 40 + i,
              natFromIp: '198.51.100.9',
              natFromPort: i,
              owner: { pid: 7, process: 'named' },
              clientId: `c-${i}`,
            }),
          ),
        },
      ],
    });
    const small = state({
      pending: [{ service: 'dns', minute: MINUTE, endpoints: [pendingEndpoint(9)] }],
    });
    for (const s of [big, small, big]) {
      const reused = withPreamble(encodeCheckpointBody(s, scratch));
      expect(reused.equals(encodeCheckpoint(s))).toBe(true);
      const d = decodeCheckpoint(reused, 'agent-1', limits);
      expect(d.ok && d.state).toEqual(s);
    }
    // The memory kept is about what the largest write needed: one body, its columns written in place.
    const bigBytes = encodeCheckpoint(big).length;
    expect(scratch.heldBytes).toBeGreaterThan(bigBytes - 100);
    expect(scratch.heldBytes).toBeLessThan(1.25 * bigBytes);
  });

  it('refuses a checkpoint over its bounds: endpoints, and bytes before reading them', () => {
    const many = Array.from({ length: 31 }, (_, i) => pendingEndpoint(i));
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
    expect(reason(randomBytes(300))).toBe('not a checkpoint (no UWCK magic)');
    expect(reason(Buffer.alloc(0))).toBe('not a checkpoint (no UWCK magic)');
    const flipped = Buffer.from(good);
    flipped.writeUInt8(flipped.readUInt8(200) ^ 1, 200);
    expect(reason(flipped)).toBe('digest mismatch (damaged or cut short)');
    expect(reason(good.subarray(0, good.length - 10))).toBe(
      'digest mismatch (damaged or cut short)',
    );
    expect(reason(good, 'agent-2')).toBe('written by agent agent-1, not this agent agent-2');

    // Well-formed envelopes around bad bodies: the digest matches, the content does not.
    expect(reason(wrap(good, (h) => ({ ...h, v: 3 })))).toBe(
      'version 3 is not supported (expected 2)',
    );
    expect(reason(wrap(good, () => [1, 2]))).toBe(
      'version undefined is not supported (expected 2)',
    );
    expect(reason(wrap(good, (h) => ({ ...h, dropped: -1 })))).toMatch(/^dropped: /);
    expect(reason(wrap(good, (h) => ({ ...h, columns: [...h.columns, ['ttl', 'u8']] })))).toBe(
      'column ttl (u8) is not one of this format',
    );
    expect(
      reason(wrap(good, (h) => ({ ...h, columns: h.columns.filter((c) => c[0] !== 'port') }))),
    ).toBe('column port is missing');
    // The second endpoint's fields, column by column.
    const bad = (name: string, value: number) => reason(setColumn(good, name, 1, value));
    expect(bad('port', 5353)).toBe('ok');
    expect(bad('ip', 9_999)).toBe('pending.0.endpoints.1: bad address');
    expect(bad('firstSecond', 50)).toBe('pending.0.endpoints.1: bad seconds');
    expect(bad('source', 9)).toBe('pending.0.endpoints.1: bad source');
    expect(bad('sampleRate', 0)).toBe('pending.0.endpoints.1: bad sample rate');
    expect(bad('clientId', 9_999)).toBe('pending.0.endpoints.1: bad client id');
    const wide = encodeCheckpoint(
      state({
        pending: [
          { service: 'dns', minute: MINUTE, endpoints: [pendingEndpoint(1, { bytesIn: 2 ** 40 })] },
        ],
      }),
    );
    expect(reason(wide)).toBe('ok');
    expect(reason(setColumn(wide, 'bytesIn', 0, 2 ** 49))).toBe(
      'pending.0.endpoints.0: bad counter',
    );
    expect(reason(setColumn(wide, 'bytesIn', 0, 0.5))).toBe('pending.0.endpoints.0: bad counter');
    const foreign = sealEncodedParts(
      { agentId: 'agent-9', host: 'h', service: 'dns', minute: MINUTE, seq: 7 },
      [pendingEndpoint(1)],
    );
    expect(
      reason(encodeCheckpoint({ ...state(), outbox: [{ ...blockRecord(foreign[0]!), seq: 7 }] })),
    ).toBe("outbox.0: not this agent's block 7");
    expect(
      reason(
        encodeCheckpoint({
          ...state(),
          outbox: [{ partitionKey: 'k', seq: 7, lines: 1, data: Buffer.from('not a block') }],
        }),
      ),
    ).toBe('outbox.0: not a block record (no UWB magic)');
  });

  it('an older format is named in the reason, never read as this one', () => {
    const v1 = Buffer.from(`UWCK1\n${'0'.repeat(64)}\n{"v":1}`);
    expect(reason(v1)).toBe('format 1 is not read by this agent (it writes format 2)');
  });
});

/** The head of an encoded checkpoint and where its columns start. */
interface Head {
  columns: [string, string][];
  [k: string]: unknown;
}

function split(buf: Buffer): { head: Head; rest: Buffer } {
  const body = buf.subarray(6 + 65);
  const n = body.readUInt32LE(0);
  return { head: JSON.parse(body.toString('utf8', 4, 4 + n)), rest: body.subarray(4 + n) };
}

/** The checkpoint with its head replaced by `edit(head)`, digest recomputed. */
function wrap(buf: Buffer, edit: (head: Head) => unknown): Buffer {
  const { head, rest } = split(buf);
  return withBody(Buffer.from(JSON.stringify(edit(head))), rest);
}

function withBody(headJson: Buffer, rest: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(headJson.length);
  const body = Buffer.concat([len, headJson, rest]);
  const digest = createHash('sha256').update(body).digest('hex');
  return Buffer.concat([Buffer.from(`UWCK2\n${digest}\n`), body]);
}

const SIZES: Record<string, number> = { u8: 1, u16: 2, u32: 4, i32: 4, f64: 8 };

/** The checkpoint with endpoint `i`'s value in column `name` set to `value`, digest recomputed. */
function setColumn(buf: Buffer, name: string, i: number, value: number): Buffer {
  const { head, rest } = split(buf);
  const n = (head.groups as [string, number, number][]).reduce((k, g) => k + g[2], 0);
  const out = Buffer.from(rest);
  let at = 0;
  for (const [col, type] of head.columns) {
    const size = SIZES[type]!;
    if (col === name) {
      const pos = at + i * size;
      if (type === 'u8') out.writeUInt8(value, pos);
      else if (type === 'u16') out.writeUInt16LE(value, pos);
      else if (type === 'u32') out.writeUInt32LE(value, pos);
      else if (type === 'i32') out.writeInt32LE(value, pos);
      else out.writeDoubleLE(value, pos);
      return withBody(Buffer.from(JSON.stringify(head)), out);
    }
    at += size * n;
  }
  throw new Error(`no column ${name}`);
}
