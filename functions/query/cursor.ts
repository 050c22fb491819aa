/**
 * Pagination cursors: the query's fixed window (since and now) and the
 * position after the last entry returned (its lastSeen and key), signed with
 * HMAC-SHA256 and bound to the query it came from, so a client can neither
 * forge one nor use one to read another service or window. Every page reads
 * the same minutes with the same since, so pages are stable: each entry is
 * listed once, newest first across all pages.
 *
 * Each cursor names the key that signed it and when it was issued: the
 * current key signs, the previous one (until the next rotation) still
 * verifies, and a cursor is refused CURSOR_TTL_SECONDS after it was issued.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
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

/** How long a cursor is accepted after it was issued (each page issues a new one). */
export const CURSOR_TTL_SECONDS = 3600;
/** Clock difference between function instances tolerated in a cursor's issue time. */
const CLOCK_SKEW_MS = 60_000;

// v4: adds the signing key's id and the issue time. v3 and earlier are refused.
const CURSOR_VERSION = 4;

const Payload = z.strictObject({
  v: z.literal(CURSOR_VERSION),
  /** Id of the key that signed it (see keyId). */
  k: z.string().max(16),
  /** Issued at, epoch ms. */
  i: z.number().int(),
  s: z.string(),
  t: z.number().int(),
  n: z.number().int(),
  a: z.tuple([z.number().int(), z.string().max(1024)]),
});

const MAC_BYTES = 16;
const KEY_ID_CHARS = 8;

/** The keys cursors are checked with: `current` signs, every one verifies. */
export interface CursorKeys {
  current: string;
  /** Keys that still verify: the one `current` replaced at the last rotation. */
  previous: string[];
}

/** A short public id of a key, so a cursor names the key that verifies it (not secret: a hash prefix). */
export function keyId(key: string): string {
  return createHash('sha256')
    .update(`udpwatch-cursor-key-id\u0000${key}`)
    .digest('base64url')
    .slice(0, KEY_ID_CHARS);
}

/** Signs cursors with the current key; verifies with the current or a previous one, and expires them. */
export class CursorCodec {
  private readonly signing: { id: string; key: Buffer };
  private readonly byId = new Map<string, Buffer>();
  private readonly now: () => number;
  private readonly ttlMs: number;

  /**
   * `keys` a key set, one key (local and tests), or nothing: a random key
   * (cursors then live as long as the process).
   */
  constructor(
    keys?: CursorKeys | string,
    options: { now?: () => number; ttlSeconds?: number } = {},
  ) {
    const set: CursorKeys =
      typeof keys === 'string'
        ? { current: keys, previous: [] }
        : (keys ?? { current: randomBytes(32).toString('base64url'), previous: [] });
    for (const key of [set.current, ...set.previous]) {
      this.byId.set(keyId(key), Buffer.from(key, 'utf8'));
    }
    this.signing = { id: keyId(set.current), key: Buffer.from(set.current, 'utf8') };
    this.now = options.now ?? Date.now;
    this.ttlMs = (options.ttlSeconds ?? CURSOR_TTL_SECONDS) * 1000;
  }

  private static mac(key: Buffer, payload: string): Buffer {
    return createHmac('sha256', key).update(payload).digest().subarray(0, MAC_BYTES);
  }

  /** Encodes and signs a cursor, stamped with the current time. */
  encode(state: CursorState): string {
    const payload = Buffer.from(
      JSON.stringify({
        v: CURSOR_VERSION,
        k: this.signing.id,
        i: Math.round(this.now()),
        s: state.scope,
        t: state.since,
        n: state.now,
        a: [state.after.lastSeen, state.after.key],
      }),
    ).toString('base64url');
    return `${payload}.${CursorCodec.mac(this.signing.key, payload).toString('base64url')}`;
  }

  /**
   * Whether this codec holds the key a cursor names (unsigned peek, for
   * deciding to reload keys; decode still verifies everything).
   */
  knowsKeyOf(cursor: string): boolean {
    const id = CursorCodec.peekKeyId(cursor);
    return id === null || this.byId.has(id);
  }

  private static peekKeyId(cursor: string): string | null {
    try {
      const raw = JSON.parse(Buffer.from(cursor.split('.')[0] ?? '', 'base64url').toString('utf8'));
      return typeof raw?.k === 'string' ? raw.k : null;
    } catch {
      return null;
    }
  }

  /** Verifies and decodes a cursor issued for `scope`. */
  decode(cursor: string, scope: string): CursorState {
    if (cursor.length > 4096)
      throw new CursorError('cursor is malformed (longer than 4096 characters)');
    const [payload, mac, ...rest] = cursor.split('.');
    if (!payload || !mac || rest.length > 0) throw new CursorError('cursor is malformed');
    const id = CursorCodec.peekKeyId(cursor);
    const key = id === null ? undefined : this.byId.get(id);
    if (!key) {
      throw new CursorError(
        id === null
          ? 'cursor is malformed or from an earlier version of the API: request the first page again (without cursor)'
          : 'cursor was signed with a key that is no longer valid (keys rotate; a cursor lasts at most ' +
              `${this.ttlMs / 1000} s): request the first page again (without cursor)`,
      );
    }
    // Compared as text: base64 decoding ignores the last character's spare bits,
    // so comparing decoded bytes would accept more than one spelling of a MAC.
    const given = Buffer.from(mac, 'utf8');
    const expected = Buffer.from(CursorCodec.mac(key, payload).toString('base64url'), 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new CursorError('cursor signature does not match: it was altered or not issued here');
    }
    let parsed: z.infer<typeof Payload>;
    try {
      parsed = Payload.parse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
    } catch {
      throw new CursorError(
        'cursor is malformed or from an earlier version of the API: request the first page again (without cursor)',
      );
    }
    const now = this.now();
    if (parsed.i > now + CLOCK_SKEW_MS) {
      throw new CursorError('cursor is malformed (issued in the future)');
    }
    if (now - parsed.i > this.ttlMs) {
      throw new CursorError(
        `cursor expired: issued at ${new Date(parsed.i).toISOString()}, and a cursor is valid for ` +
          `${this.ttlMs / 1000} s; request the first page again (without cursor)`,
      );
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
