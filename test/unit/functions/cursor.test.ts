/** Pagination cursors: round trip, key rotation, expiry, and refusal of anything altered, foreign or malformed. */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  CURSOR_TTL_SECONDS,
  CursorCodec,
  CursorError,
  type CursorState,
  keyId,
} from '../../../functions/query/cursor.js';

const state: CursorState = {
  scope: 'clients|dns|endpoint|300',
  since: 1_800_000_000_000,
  now: 1_800_000_300_000,
  after: { lastSeen: 1_800_000_120_000, key: 'dns\u0000198.51.100.1\u000000053' },
};
const T0 = 1_800_000_400_000;
const HOUR = 3_600_000;

/** A codec whose clock the test moves. */
function clocked(keys: ConstructorParameters<typeof CursorCodec>[0], at: { t: number }) {
  return new CursorCodec(keys, { now: () => at.t });
}

function signed(payload: unknown, key = 'key-1'): string {
  const text = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const mac = createHmac('sha256', key).update(text).digest().subarray(0, 16);
  return `${text}.${mac.toString('base64url')}`;
}

describe('CursorCodec', () => {
  const at = { t: T0 };
  const codec = clocked('key-1', at);

  it('round-trips a cursor for the same query, window and position', () => {
    expect(codec.decode(codec.encode(state), state.scope)).toEqual(state);
  });

  it('refuses a cursor with any character changed', () => {
    const cursor = codec.encode(state);
    for (let i = 0; i < cursor.length; i += 3) {
      const c = cursor[i] === 'A' ? 'B' : 'A';
      const altered = cursor.slice(0, i) + c + cursor.slice(i + 1);
      if (altered === cursor) continue;
      expect(() => codec.decode(altered, state.scope), `position ${i}`).toThrow(CursorError);
    }
  });

  it('refuses a cursor signed with another key, for another query, or malformed', () => {
    const cursor = codec.encode(state);
    expect(() => clocked('key-2', at).decode(cursor, state.scope)).toThrow(/no longer valid/);
    expect(() => codec.decode(cursor, 'clients|ntp|endpoint|300')).toThrow(/different query/);
    expect(() => codec.decode('abc', state.scope)).toThrow(/malformed/);
    // The right key id, but signed by someone else's key: a forgery.
    const base = { v: 4, k: keyId('key-1'), i: T0, s: state.scope, t: 1, n: 2, a: [5, 'k'] };
    expect(() => codec.decode(signed(base, 'key-2'), state.scope)).toThrow(/signature/);
    // Genuinely signed but with since after now.
    expect(() => codec.decode(signed({ ...base, t: 2, n: 1 }), state.scope)).toThrow(/malformed/);
    // Genuinely signed, the current shape: accepted, so the refusals above are the changes' doing.
    expect(codec.decode(signed(base), state.scope).after).toEqual({ lastSeen: 5, key: 'k' });
  });

  it('refuses a genuinely signed cursor of the earlier layout (v3: no key id, no issue time)', () => {
    const old = signed({ v: 3, s: state.scope, t: 1, n: 2, a: [5, 'k'] });
    expect(() => codec.decode(old, state.scope)).toThrow(/earlier version of the API/);
  });

  it('verifies with the previous key after a rotation, signs only with the current one', () => {
    const beforeRotation = clocked('key-1', at).encode(state);
    const rotated = clocked({ current: 'key-2', previous: ['key-1'] }, at);
    expect(rotated.decode(beforeRotation, state.scope)).toEqual(state);
    const afterRotation = rotated.encode(state);
    expect(rotated.knowsKeyOf(afterRotation)).toBe(true);
    // An instance that has not seen the rotation yet does not know the new key...
    const stale = clocked('key-1', at);
    expect(stale.knowsKeyOf(afterRotation)).toBe(false);
    expect(() => stale.decode(afterRotation, state.scope)).toThrow(/no longer valid/);
    // ...and after the next rotation the first key is gone.
    const twice = clocked({ current: 'key-3', previous: ['key-2'] }, at);
    expect(twice.decode(afterRotation, state.scope)).toEqual(state);
    expect(() => twice.decode(beforeRotation, state.scope)).toThrow(/no longer valid.*first page/);
  });

  it(`expires a cursor ${CURSOR_TTL_SECONDS} s after it was issued, with the reason and the fix`, () => {
    const clock = { t: T0 };
    const c = clocked('key-1', clock);
    const cursor = c.encode(state);
    clock.t = T0 + HOUR;
    expect(c.decode(cursor, state.scope)).toEqual(state);
    clock.t = T0 + HOUR + 1;
    expect(() => c.decode(cursor, state.scope)).toThrow(
      `cursor expired: issued at ${new Date(T0).toISOString()}, and a cursor is valid for 3600 s; request the first page again (without cursor)`,
    );
    // Each page issues a fresh cursor: paging on keeps working within the hour of each page.
    clock.t = T0 + 50 * 60_000;
    const next = c.encode(state);
    clock.t = T0 + 100 * 60_000;
    expect(c.decode(next, state.scope)).toEqual(state);
  });

  it('refuses a cursor issued in the future beyond clock skew', () => {
    const clock = { t: T0 + 5 * 60_000 };
    const future = clocked('key-1', clock).encode(state);
    clock.t = T0;
    expect(() => codec.decode(future, state.scope)).toThrow(/issued in the future/);
    clock.t = T0 + 5 * 60_000 - 30_000;
    expect(clocked('key-1', clock).decode(future, state.scope)).toEqual(state);
  });

  it('refuses oversized cursors before any work', () => {
    expect(() => codec.decode('a'.repeat(5000), state.scope)).toThrow(/longer than 4096/);
  });

  it("without a key signs with a random one, so two processes do not accept each other's cursors", () => {
    const a = new CursorCodec();
    const b = new CursorCodec();
    expect(a.decode(a.encode(state), state.scope)).toEqual(state);
    expect(() => b.decode(a.encode(state), state.scope)).toThrow(CursorError);
  });
});
