import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  FLOW_ROW_FIELDS,
  FlowRowSchema,
  HOOK_PROTOCOL_VERSION,
  HookMessageSchema,
  MAX_CLIENT_ID,
  MAX_DROP_COUNTER,
  MAX_EPOCH_MS,
  MAX_HOOK_ROWS,
  MAX_PID,
  MAX_PROCESS_NAME,
  MAX_ROW_BYTES,
  MAX_ROW_PACKETS,
  MAX_ROW_POSITIONS,
  MIN_EPOCH_MS,
  parseHookMessage,
} from '../../../contract/hook-protocol.js';

const T = 1_700_000_000_000;
const row = (over: Partial<Record<(typeof FLOW_ROW_FIELDS)[number], unknown>> = {}): unknown[] => {
  const base: Record<string, unknown> = {
    localIp: '::ffff:127.0.0.1',
    localPort: 5000,
    remoteIp: '2001:DB8:0:0::7',
    remotePort: 40000,
    pktsIn: 2,
    bytesIn: 20,
    pktsOut: 1,
    bytesOut: 10,
    firstSeen: T - 500,
    lastSeen: T - 100,
    ...over,
  };
  const out = FLOW_ROW_FIELDS.slice(0, 10).map((f) => base[f]);
  if ('clientId' in over) out.push(over.clientId);
  return out;
};
const message = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  v: HOOK_PROTOCOL_VERSION,
  pid: 4242,
  process: 'srcds_linux',
  at: T,
  flows: [row()],
  overflowPackets: 3,
  droppedFlows: 5,
  droppedPackets: 17,
  ...over,
});

/** The reason a message is refused, or the reasons its rows were skipped. */
function reasons(json: unknown): string[] {
  const r = parseHookMessage(json);
  return r.ok ? r.skipped.map((s) => s.reason) : [r.reason];
}

describe('parseHookMessage', () => {
  it('accepts a good message, normalizing addresses and keeping every field', () => {
    const r = parseHookMessage(message({ flows: [row(), row({ clientId: 'cust-1' })] }));
    expect(r).toEqual({
      ok: true,
      skipped: [],
      message: {
        v: 1,
        pid: 4242,
        process: 'srcds_linux',
        at: T,
        overflowPackets: 3,
        droppedFlows: 5,
        droppedPackets: 17,
        flows: [
          ['127.0.0.1', 5000, '2001:db8::7', 40000, 2, 20, 1, 10, T - 500, T - 100],
          ['127.0.0.1', 5000, '2001:db8::7', 40000, 2, 20, 1, 10, T - 500, T - 100, 'cust-1'],
        ],
      },
    });
  });

  it('ignores unknown message fields and trailing row positions (compatible additions)', () => {
    const r = parseHookMessage(
      message({ flows: [[...row(), null, 'later-addition']], futureField: { x: 1 } }),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.skipped).toEqual([]);
    expect(r.message).not.toHaveProperty('futureField');
    expect(r.message.flows[0]![10]).toBeNull();
  });

  it('refuses unknown major versions as such, and a missing or odd version as malformed', () => {
    expect(parseHookMessage(message({ v: 2 }))).toEqual({
      ok: false,
      kind: 'version',
      reason: 'unknown major version 2',
    });
    for (const v of [undefined, 0, -1, 1.5, '1', null]) {
      const r = parseHookMessage(message({ v }));
      expect(r.ok === false && r.kind, `v = ${JSON.stringify(v)}`).toBe('malformed');
    }
  });

  it.each([
    [null, 'message is not a JSON object'],
    [[message()], 'message is not a JSON object'],
    ['text', 'message is not a JSON object'],
    [message({ pid: undefined }), 'pid missing'],
    [message({ pid: 0 }), 'pid 0 out of range'],
    [message({ pid: MAX_PID + 1 }), `pid ${MAX_PID + 1} out of range`],
    [message({ pid: 1.5 }), 'pid 1.5 must be an integer'],
    [message({ pid: '7' }), 'pid "7" must be a number'],
    [message({ process: '' }), 'process "" is empty'],
    [message({ process: 'a\tb' }), 'process "a\\tb" has control characters'],
    [message({ process: 'a\u0085b' }), 'process "a?b" has control characters'],
    [
      message({ process: 'p'.repeat(MAX_PROCESS_NAME + 1) }),
      `process "${'p'.repeat(44)}... is longer than ${MAX_PROCESS_NAME} characters`,
    ],
    [message({ at: MIN_EPOCH_MS - 1 }), `at ${MIN_EPOCH_MS - 1} out of range`],
    [message({ at: MAX_EPOCH_MS + 1 }), `at ${MAX_EPOCH_MS + 1} out of range`],
    [message({ overflowPackets: -1 }), 'overflowPackets -1 out of range'],
    [message({ droppedFlows: 2 ** 53 }), `droppedFlows ${2 ** 53} out of range`],
    [
      message({ overflowPackets: MAX_DROP_COUNTER + 1 }),
      `overflowPackets ${MAX_DROP_COUNTER + 1} out of range`,
    ],
    [message({ droppedPackets: undefined }), 'droppedPackets missing'],
    [message({ flows: {} }), 'flows {} must be an array'],
    [
      message({ flows: new Array(MAX_HOOK_ROWS + 1).fill(row()) }),
      `flows (${MAX_HOOK_ROWS + 1} items) has more than ${MAX_HOOK_ROWS} rows`,
    ],
  ])('refuses a message with a bad envelope: %#', (json, reason) => {
    expect(parseHookMessage(json)).toEqual({ ok: false, kind: 'malformed', reason });
  });

  it('accepts every bound at its limit', () => {
    const r = parseHookMessage(
      message({
        pid: MAX_PID,
        process: 'p'.repeat(MAX_PROCESS_NAME),
        at: MAX_EPOCH_MS,
        droppedFlows: MAX_DROP_COUNTER,
        flows: [
          ...new Array(MAX_HOOK_ROWS - 2).fill(row()),
          row({
            localPort: 0,
            remotePort: 65_535,
            pktsIn: MAX_ROW_PACKETS,
            bytesOut: MAX_ROW_BYTES,
          }),
          row({
            firstSeen: MIN_EPOCH_MS,
            lastSeen: MAX_EPOCH_MS,
            clientId: 'c'.repeat(MAX_CLIENT_ID),
          }),
        ],
      }),
    );
    expect(r.ok && r.skipped).toEqual([]);
    expect(r.ok && r.message.flows.length).toBe(MAX_HOOK_ROWS);
  });

  it('skips each bad row with its index, field, value and bound, keeping the good rows', () => {
    const bad: Array<[unknown, string]> = [
      [row({ remotePort: 70_000 }), 'remotePort 70000 out of range'],
      [row({ localPort: -1 }), 'localPort -1 out of range'],
      [row({ localIp: 'zz' }), 'localIp "zz" is not an IPv4 or IPv6 address'],
      [row({ remoteIp: 'fe80::1%eth0' }), 'remoteIp "fe80::1%eth0" is not an IPv4 or IPv6 address'],
      [row({ remoteIp: 7 }), 'remoteIp 7 must be a string'],
      [row({ pktsIn: -1 }), 'pktsIn -1 out of range'],
      [row({ bytesIn: 0.5 }), 'bytesIn 0.5 must be an integer'],
      [row({ pktsOut: 2 ** 53 }), `pktsOut ${2 ** 53} out of range`],
      [row({ pktsIn: MAX_ROW_PACKETS + 1 }), `pktsIn ${MAX_ROW_PACKETS + 1} out of range`],
      [row({ bytesIn: MAX_ROW_BYTES + 1 }), `bytesIn ${MAX_ROW_BYTES + 1} out of range`],
      [row({ bytesOut: '10' }), 'bytesOut "10" must be a number'],
      [row({ firstSeen: 1 }), 'firstSeen 1 out of range'],
      [row({ lastSeen: T + 1 }), `lastSeen ${T + 1} is after the window's end ${T}`],
      [row({ firstSeen: T + 1, lastSeen: T }), `firstSeen ${T + 1} is after the window's end ${T}`],
      [row({ clientId: '' }), 'clientId "" is empty'],
      [row({ clientId: 'a\nb' }), 'clientId "a\\nb" has control characters'],
      [
        row({ clientId: 'c'.repeat(MAX_CLIENT_ID + 1) }),
        `clientId "${'c'.repeat(44)}... is longer than ${MAX_CLIENT_ID} characters`,
      ],
      [row().slice(0, 9), 'has 9 positions, needs at least 10'],
      [
        [...row(), null, ...new Array(MAX_ROW_POSITIONS - 10).fill(0)],
        `has more than ${MAX_ROW_POSITIONS} positions`,
      ],
      [{ localIp: '127.0.0.1' }, 'is not an array ({"localIp":"127.0.0.1"})'],
    ];
    const flows = [row(), ...bad.map(([r]) => r), row({ remotePort: 1 })];
    const r = parseHookMessage(message({ flows }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.skipped).toEqual(
      bad.map(([, reason], i) => ({ row: i + 1, reason: `row ${i + 1}: ${reason}` })),
    );
    expect(r.message.flows.map((f) => f[3])).toEqual([40000, 1]);
  });

  it('agrees with HookMessageSchema: a message it passes without skips is valid whole', () => {
    const good = message({ flows: [row(), row({ clientId: 'x' })] });
    expect(HookMessageSchema.safeParse(good).success).toBe(true);
    const bad = message({ flows: [row(), row({ lastSeen: T + 1 })] });
    expect(HookMessageSchema.safeParse(bad).success).toBe(false);
    expect(reasons(bad)).toEqual([`row 1: lastSeen ${T + 1} is after the window's end ${T}`]);
  });

  it('keeps exactly the rows FlowRowSchema accepts, as the schema returns them (its fast path included)', () => {
    const rows = [
      row(),
      row({ localPort: 65_535, remotePort: 0 }),
      row({ remotePort: 65_536 }),
      row({ remotePort: 1.5 }),
      row({ pktsIn: MAX_ROW_PACKETS }),
      row({ pktsIn: MAX_ROW_PACKETS + 1 }),
      row({ pktsOut: Number.MAX_SAFE_INTEGER }),
      row({ bytesIn: MAX_ROW_BYTES }),
      row({ bytesOut: MAX_ROW_BYTES + 1 }),
      row({ bytesOut: -1 }),
      row({ firstSeen: MIN_EPOCH_MS, lastSeen: MIN_EPOCH_MS }),
      row({ firstSeen: MIN_EPOCH_MS - 1 }),
      row({ remoteIp: '192.0.2.01' }),
      row({ remoteIp: '2001:DB8:0:0::1' }),
      row({ remoteIp: '::ffff:192.0.2.7' }),
      row({ localIp: '256.0.0.1' }),
      row({ clientId: null }),
      row({ clientId: '' }),
      row({ clientId: 'a\u0007b' }),
      row({ clientId: 'c'.repeat(MAX_CLIENT_ID) }),
      row({ clientId: 'c'.repeat(MAX_CLIENT_ID + 1) }),
      [...row({ clientId: 'x' }), 'extra', 7],
      row().slice(0, 9),
    ];
    // The same bounds with canonical addresses, which is what takes the fast path.
    const canonical = { localIp: '127.0.0.1', remoteIp: '2001:db8::7' };
    for (const over of [
      {},
      { localPort: 65_535, remotePort: 0 },
      { remotePort: 65_536 },
      { localPort: -1 },
      { remotePort: 1.5 },
      { pktsIn: MAX_ROW_PACKETS },
      { pktsIn: MAX_ROW_PACKETS + 1 },
      { pktsOut: MAX_ROW_PACKETS + 1 },
      { bytesIn: MAX_ROW_BYTES },
      { bytesIn: MAX_ROW_BYTES + 1 },
      { bytesOut: MAX_ROW_BYTES + 1 },
      { bytesOut: -1 },
      { firstSeen: MIN_EPOCH_MS, lastSeen: MIN_EPOCH_MS },
      { firstSeen: MIN_EPOCH_MS - 1 },
      { lastSeen: MIN_EPOCH_MS - 1 },
      { clientId: null },
      { clientId: '' },
      { clientId: 'a\u0085b' },
      { clientId: 'c'.repeat(MAX_CLIENT_ID) },
      { clientId: 'c'.repeat(MAX_CLIENT_ID + 1) },
    ]) {
      rows.push(row({ ...canonical, ...over }));
    }
    const r = parseHookMessage(message({ flows: rows }));
    if (!r.ok) throw new Error(r.reason);
    const expected = rows.flatMap((raw) => {
      const p = FlowRowSchema.safeParse(raw);
      return p.success ? [p.data] : [];
    });
    expect(r.message.flows).toEqual(expected);
    expect(r.message.flows.length + r.skipped.length).toBe(rows.length);
    // Sanity of the list itself: both kinds are in it.
    expect(expected.length).toBeGreaterThan(5);
    expect(r.skipped.length).toBeGreaterThan(5);
  });

  // Arbitrary JSON, and near-misses of a good message with any one field or position replaced.
  const anyJson = fc.jsonValue({ maxDepth: 4 });
  const nearMiss = fc
    .tuple(
      fc.constantFrom('v', 'pid', 'process', 'at', 'flows', 'overflowPackets', 'droppedFlows'),
      fc.nat({ max: 11 }),
      fc.oneof(anyJson, fc.double(), fc.integer(), fc.string({ unit: 'binary' })),
    )
    .map(([field, pos, value]) => {
      if (field === 'flows') {
        const r = row();
        r[pos] = value;
        return message({ flows: [r, row()] });
      }
      return message({ [field]: value });
    });

  test.prop([fc.oneof(anyJson, nearMiss, fc.anything())], { numRuns: 2000 })(
    'never throws, and every answer is well formed',
    (json) => {
      const r = parseHookMessage(json);
      if (r.ok) {
        expect(HookMessageSchema.safeParse(r.message).success).toBe(true);
        for (const s of r.skipped) expect(s.reason.startsWith(`row ${s.row}: `)).toBe(true);
        expect(r.message.flows.length + r.skipped.length).toBe(
          (json as { flows: unknown[] }).flows.length,
        );
      } else {
        expect(r.reason.length).toBeGreaterThan(0);
        expect(r.reason.length).toBeLessThan(200);
      }
    },
  );
});
