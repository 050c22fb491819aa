/**
 * What the agent keeps across restarts in its state directory: its id
 * (generated once) and a reservation of record sequence numbers.
 *
 * Sequence numbers must grow strictly across restarts, even after a crash, so
 * the agent reserves them in blocks: before handing out a number beyond the
 * reservation it durably records a new upper bound. A crash loses at most the
 * unused rest of a block (a gap, which is allowed).
 */
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

const ID_FILE = 'agent-id';
const SEQ_FILE = 'seq-reserved';
/** Sequence numbers reserved per durable write. */
export const SEQ_BLOCK = 10_000;

/** Writes a file atomically and durably (temp file, fsync, rename, fsync dir). */
export function writeFileDurably(dir: string, name: string, data: string | Buffer): void {
  const tmp = join(dir, `.${name}.tmp`);
  try {
    const fd = openSync(tmp, 'w', 0o640);
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(dir, name));
    fsyncDir(dir);
  } catch (err) {
    // A full disk leaves a partial temp file: take it back before reporting.
    try {
      unlinkSync(tmp);
    } catch {
      // Never created.
    }
    throw err;
  }
}

/** Makes a directory's entries (renames, unlinks) durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Returns the agent id stored in `stateDir`, creating it the first time. */
export function loadAgentId(stateDir: string): string {
  mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  try {
    const id = readFileSync(join(stateDir, ID_FILE), 'utf8').trim();
    if (/^[A-Za-z0-9._-]{1,128}$/.test(id)) return id;
  } catch {
    // First start.
  }
  const id = randomUUID();
  writeFileDurably(stateDir, ID_FILE, `${id}\n`);
  return id;
}

/**
 * Hands out strictly increasing sequence numbers that survive restarts. If
 * the reservation cannot be written (full disk, read-only state directory),
 * numbers keep coming and the write is retried at every take: refusing them
 * would lose the blocks being sealed now, while the risk of going on is only
 * that a crash before the next good write reuses some numbers (the store keeps
 * such blocks aside as conflicts and counts them).
 */
export class SeqAllocator {
  private next: number;
  private reservedUpTo: number;
  private failing = false;

  constructor(
    private readonly stateDir: string,
    private readonly block: number = SEQ_BLOCK,
    private readonly onError: (message: string) => void = () => {},
  ) {
    mkdirSync(stateDir, { recursive: true, mode: 0o750 });
    let reserved = 0;
    try {
      const text = readFileSync(join(stateDir, SEQ_FILE), 'utf8').trim();
      const n = Number(text);
      if (!Number.isSafeInteger(n) || n < 0) {
        throw new Error(
          `${join(stateDir, SEQ_FILE)}: "${text.slice(0, 30)}" is not a sequence number`,
        );
      }
      reserved = n;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // Everything below the stored bound may have been used before the restart.
    this.next = reserved;
    this.reservedUpTo = reserved;
  }

  /** The next sequence number; reserves a new block durably when needed. */
  take(): number {
    if (this.next >= this.reservedUpTo) {
      try {
        writeFileDurably(this.stateDir, SEQ_FILE, `${this.next + this.block}\n`);
        this.reservedUpTo = this.next + this.block;
        if (this.failing) this.onError(`${join(this.stateDir, SEQ_FILE)} written again`);
        this.failing = false;
      } catch (err) {
        if (!this.failing) {
          this.onError(
            `cannot reserve sequence numbers in ${join(this.stateDir, SEQ_FILE)} (${(err as Error).message}); going on unreserved: free disk space or make the state directory writable, a crash meanwhile may reuse numbers`,
          );
        }
        this.failing = true;
      }
    }
    return this.next++;
  }
}

const RUNNING_FILE = 'running';

/**
 * Marks the agent as running; returns when the previous run began if it never
 * stopped cleanly (SIGKILL, crash, power loss), else null.
 */
export function markRunning(stateDir: string, now: number = Date.now()): number | null {
  let previous: number | null = null;
  try {
    const n = Number(readFileSync(join(stateDir, RUNNING_FILE), 'utf8').trim());
    // A start time between 2000 and 2100, else just "unclean" (0).
    previous = Number.isSafeInteger(n) && n >= 946_684_800_000 && n <= 4_102_444_800_000 ? n : 0;
  } catch {
    // No mark: the previous run stopped cleanly, or this is the first.
  }
  try {
    writeFileDurably(stateDir, RUNNING_FILE, `${now}\n`);
  } catch {
    // Advisory only: a full disk must not keep the agent from running.
  }
  return previous;
}

/** Marks a clean stop (everything sealed went to the spool). */
export function markStopped(stateDir: string): void {
  try {
    unlinkSync(join(stateDir, RUNNING_FILE));
  } catch {
    // Advisory only: the next start then reports an unclean stop that was not.
  }
}
