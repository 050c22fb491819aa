/**
 * Pagination cursors: the position in every shard of a fan-out read, signed
 * with HMAC-SHA256 and bound to the query it came from, so a client can
 * neither forge one nor use one to read another service or window.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { ShardPosition } from '../store/item-reader.js';

/** A decoded cursor. */
export interface CursorState {
  /** The query it belongs to, e.g. `clients|web|endpoint|300`. */
  scope: string;
  /** The query's `since`, fixed on its first page so pages agree. */
  since: number;
  positions: ShardPosition[];
}

/** A cursor that must be refused; `reason` says why. */
export class CursorError extends Error {}

// v2: positions are index entries (bucket, pk, sk) of the bucketed indexes;
// a cursor of the earlier lastSeen-sorted layout is refused, not misread.
const CURSOR_VERSION = 2;

const Payload = z.object({
  v: z.literal(CURSOR_VERSION),
  s: z.string(),
  t: z.number().int(),
  p: z.array(
    z.union([z.literal(0), z.literal(1), z.tuple([z.number().int(), z.string(), z.string()])]),
  ),
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
    const p = state.positions.map((pos) =>
      pos === 'start' ? 0 : pos === 'done' ? 1 : ([pos.bucket, pos.pk, pos.sk] as const),
    );
    const payload = Buffer.from(
      JSON.stringify({ v: CURSOR_VERSION, s: state.scope, t: state.since, p }),
    ).toString('base64url');
    return `${payload}.${this.mac(payload).toString('base64url')}`;
  }

  /** Verifies and decodes a cursor issued for `scope` with `shards` positions. */
  decode(cursor: string, scope: string, shards: number): CursorState {
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
    if (parsed.p.length !== shards) throw new CursorError('cursor is malformed');
    return {
      scope: parsed.s,
      since: parsed.t,
      positions: parsed.p.map((p) =>
        p === 0 ? 'start' : p === 1 ? 'done' : { bucket: p[0], pk: p[1], sk: p[2] },
      ),
    };
  }
}
