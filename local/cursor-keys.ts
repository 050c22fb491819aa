/**
 * Cursor keys in local mode, where there is no Secrets Manager: the same
 * provider interface the deployed query function reads its secret through,
 * backed by memory. rotate() does what a rotation does to the secret (a new
 * current key; the old one stays valid as previous), so paging across a
 * rotation can be exercised without AWS.
 */
import { randomBytes } from 'node:crypto';
import type { CursorKeys } from '../functions/query/cursor.js';
import type { CursorKeyProvider } from '../functions/query/cursor-keys.js';

/** Cursor keys held in this process. */
export class LocalCursorKeys implements CursorKeyProvider {
  private set: CursorKeys;

  /** `current` e.g. from UDPWATCH_CURSOR_KEY to keep cursors valid across restarts; default random. */
  constructor(current?: string) {
    this.set = {
      current: current || fresh(),
      previous: [],
    };
  }

  /** The keys now: current signs, previous still verifies. */
  async keys(): Promise<CursorKeys> {
    return this.set;
  }

  /** A new current key; the current one becomes the only previous one (AWSPREVIOUS). */
  rotate(): void {
    this.set = { current: fresh(), previous: [this.set.current] };
  }
}

function fresh(): string {
  return randomBytes(32).toString('base64url');
}
