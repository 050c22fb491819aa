/**
 * Pagination cursors: the query's fixed window (since and now) and the
 * position after the last entry returned (its lastSeen and key), signed with
 * HMAC-SHA256 and bound to the query it came from, so a client can neither
 * forge one nor use one to read another service or window. Every page reads
 * the same minutes with the same since, so pages are stable: each entry is
 * listed once, newest first across all pages.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { ListPosition } from '../store/endpoint-merge.js';

/** A decoded cursor. */
export interface CursorState {
  /** The query it belongs to, e.g. `clients|web|endpoint|300`. */
  scope: string;
  /** The query's `since` and `now`, fixed on its first page so pages agree. */
  since: number;
  now: number;
  /** The last entry the previous page returned. */
  after: ListPosition;
}

/** A cursor that must be refused; `reason` says why. */
export class CursorError extends Error {}

// v3: a position in the merged listing of the block store; cursors of the
// earlier index layouts are refused, not misread.
const CURSOR_VERSION = 3;

const Payload = z.strictObject({
  v: z.literal(CURSOR_VERSION),
  s: z.string(),
  t: z.number().int(),
  n: z.number().int(),
  a: z.tuple([z.number().int(), z.string().max(1024)]),
});

const MAC_BYTES = 16;

/** Signs and checks cursors with one key. */
export class CursorCodec {
  private readonly key: Buffer;

  /** With no key, a random one is made (cursors then live as long as the process). */
  constructor(key?: string) {
    this.key = key ? Buffer.from(key, 'utf8') : randomBytes(32);
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.key).update(payload).digest().subarray(0, MAC_BYTES);
  }

  /** Encodes and signs a cursor. */
  encode(state: CursorState): string {
    const payload = Buffer.from(
      JSON.stringify({
        v: CURSOR_VERSION,
        s: state.scope,
        t: state.since,
        n: state.now,
        a: [state.after.lastSeen, state.after.key],
      }),
    ).toString('base64url');
    return `${payload}.${this.mac(payload).toString('base64url')}`;
  }

  /** Verifies and decodes a cursor issued for `scope`. */
  decode(cursor: string, scope: string): CursorState {
    const [payload, mac, ...rest] = cursor.split('.');
    if (!payload || !mac || rest.length > 0) throw new CursorError('cursor is malformed');
    // Compared as text: base64 decoding ignores the last character's spare bits,
    // so comparing decoded bytes would accept more than one spelling of a MAC.
    const given = Buffer.from(mac, 'utf8');
    const expected = Buffer.from(this.mac(payload).toString('base64url'), 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new CursorError('cursor signature does not match: it was altered or not issued here');
    }
    let parsed: z.infer<typeof Payload>;
    try {
      parsed = Payload.parse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
    } catch {
      throw new CursorError('cursor is malformed');
    }
    if (parsed.s !== scope) {
      throw new CursorError('cursor belongs to a different query (service, view or window)');
    }
    if (parsed.t > parsed.n) throw new CursorError('cursor is malformed');
    return {
      scope: parsed.s,
      since: parsed.t,
      now: parsed.n,
      after: { lastSeen: parsed.a[0], key: parsed.a[1] },
    };
  }
}
