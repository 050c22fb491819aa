/** Pagination cursors: round trip, and refusal of anything altered, foreign or malformed. */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CursorCodec, CursorError, type CursorState } from '../../../functions/query/cursor.js';

const state: CursorState = {
  scope: 'clients|dns|endpoint|300',
  since: 1_800_000_000_000,
  positions: [
    'done',
    'start',
    { bucket: 1_799_999_700_000, pk: 'SVC#dns#2', sk: 'EP#198.51.100.1#53' },
  ],
};

describe('CursorCodec', () => {
  const codec = new CursorCodec('key-1');

  it('round-trips a cursor for the same query', () => {
    expect(codec.decode(codec.encode(state), state.scope, 3)).toEqual(state);
  });

  it('refuses a cursor with any character changed', () => {
    const cursor = codec.encode(state);
    for (let i = 0; i < cursor.length; i += 3) {
      const c = cursor[i] === 'A' ? 'B' : 'A';
      const altered = cursor.slice(0, i) + c + cursor.slice(i + 1);
      if (altered === cursor) continue;
      expect(() => codec.decode(altered, state.scope, 3), `position ${i}`).toThrow(CursorError);
    }
  });

  it('refuses a cursor signed with another key, for another query, or malformed', () => {
    const cursor = codec.encode(state);
    expect(() => new CursorCodec('key-2').decode(cursor, state.scope, 3)).toThrow(/signature/);
    expect(() => codec.decode(cursor, 'clients|ntp|endpoint|300', 3)).toThrow(/different query/);
    expect(() => codec.decode(cursor, state.scope, 8)).toThrow(/malformed/);
    expect(() => codec.decode('abc', state.scope, 3)).toThrow(/malformed/);
    const forged = `${Buffer.from('{"s":"x"}').toString('base64url')}.${cursor.split('.')[1]}`;
    expect(() => codec.decode(forged, state.scope, 3)).toThrow(/signature/);
  });

  it('refuses a genuinely signed cursor of the earlier layout (positions by lastSeen, no version)', () => {
    const payload = Buffer.from(
      JSON.stringify({ s: state.scope, t: state.since, p: [1, 0, [1_800_000_000_123, 'a', 'b']] }),
    ).toString('base64url');
    const mac = createHmac('sha256', 'key-1').update(payload).digest().subarray(0, 16);
    const old = `${payload}.${mac.toString('base64url')}`;
    expect(() => codec.decode(old, state.scope, 3)).toThrow(/malformed/);
    // The same payload with the version is accepted: the refusal is the version's doing.
    const current = Buffer.from(
      JSON.stringify({
        v: 2,
        s: state.scope,
        t: state.since,
        p: [1, 0, [1_800_000_000_123, 'a', 'b']],
      }),
    ).toString('base64url');
    const mac2 = createHmac('sha256', 'key-1').update(current).digest().subarray(0, 16);
    expect(
      codec.decode(`${current}.${mac2.toString('base64url')}`, state.scope, 3).positions[2],
    ).toEqual({
      bucket: 1_800_000_000_123,
      pk: 'a',
      sk: 'b',
    });
  });

  it("without a key signs with a random one, so two processes do not accept each other's cursors", () => {
    const a = new CursorCodec();
    const b = new CursorCodec();
    expect(a.decode(a.encode(state), state.scope, 3)).toEqual(state);
    expect(() => b.decode(a.encode(state), state.scope, 3)).toThrow(CursorError);
  });
});
