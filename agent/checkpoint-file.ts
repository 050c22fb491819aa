/**
 * The checkpoint file in the agent's state directory (`<state-dir>/checkpoint`):
 * written atomically (temp file, fsync, rename, fsync of the directory, like
 * the spool and the seq reservation), so a crash, even `kill -9`, leaves the
 * previous checkpoint or the new one, never a mix. A write encodes at once
 * (the state it is given may change right after), then hashes and writes off
 * the event loop (the SHA-256 on libuv's thread pool through WebCrypto, the
 * file through fs.promises); writes never overlap. A write encodes into
 * memory the file keeps for the next one, unless an earlier write still
 * reads it. A file that does not
 * decode is set aside as `checkpoint.bad`, counted and reported; it never
 * keeps the agent from starting.
 */
import { subtle } from 'node:crypto';
import { readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurablyAsync } from './agent-state.js';
import {
  type CheckpointLimits,
  CheckpointScratch,
  type CheckpointState,
  checkpointPreamble,
  decodeCheckpoint,
  encodeCheckpointBody,
} from './checkpoint-codec.js';

const FILE = 'checkpoint';

/** What reading the checkpoint found. */
export type CheckpointRead =
  | { found: 'none' }
  | { found: 'ok'; state: CheckpointState }
  | { found: 'bad'; reason: string };

/** Counters of the checkpoint file, for logs and tests. */
export interface CheckpointFileStats {
  writes: number;
  failedWrites: number;
  /** Checkpoints found damaged, of another version or agent, or too large, and skipped. */
  skipped: number;
  lastBytes: number;
  /** ms from the write's start until its file was durable under its name. */
  lastWriteMs: number;
  /** ms of that the write held the event loop (encoding, mostly). */
  lastBlockedMs: number;
}

/** Reads and writes `<stateDir>/checkpoint`. */
export class CheckpointFile {
  private readonly counters: CheckpointFileStats = {
    writes: 0,
    failedWrites: 0,
    skipped: 0,
    lastBytes: 0,
    lastWriteMs: 0,
    lastBlockedMs: 0,
  };
  /** The write in flight (settled), so the next one starts after it. */
  private previous: Promise<void> = Promise.resolve();
  /** Encoding memory reused across writes; busy while a write of a body in it is under way. */
  private readonly scratch = new CheckpointScratch();
  private scratchBusy = false;

  constructor(
    private readonly stateDir: string,
    private readonly agentId: string,
    readonly limits: CheckpointLimits,
  ) {}

  get path(): string {
    return join(this.stateDir, FILE);
  }

  stats(): CheckpointFileStats {
    return { ...this.counters };
  }

  /**
   * Writes `state` durably; resolves once it is the checkpoint on disk,
   * rejects (with the path) when the disk refuses. `state` is encoded before
   * this returns, so the caller may change what it refers to right away.
   */
  write(state: CheckpointState): Promise<void> {
    const started = performance.now();
    const reuse = !this.scratchBusy;
    const body = encodeCheckpointBody(state, reuse ? this.scratch : undefined);
    const encodedMs = performance.now() - started;
    if (reuse) this.scratchBusy = true;
    const run = this.previous
      .then(() => this.writeBody(body, started, encodedMs))
      .finally(() => {
        if (reuse) this.scratchBusy = false;
      });
    this.previous = run.catch(() => {});
    return run;
  }

  private async writeBody(body: Uint8Array, started: number, encodedMs: number): Promise<void> {
    let preamble: Buffer;
    try {
      const digest = Buffer.from(await subtle.digest('SHA-256', body)).toString('hex');
      preamble = checkpointPreamble(digest);
      await writeFileDurablyAsync(this.stateDir, FILE, [preamble, body]);
    } catch (err) {
      this.counters.failedWrites++;
      throw new Error(`cannot write checkpoint ${this.path}: ${(err as Error).message}`);
    }
    this.counters.writes++;
    this.counters.lastBytes = preamble.length + body.length;
    this.counters.lastWriteMs = performance.now() - started;
    this.counters.lastBlockedMs = encodedMs;
  }

  /**
   * Removes the checkpoint, so a crash from now on restores nothing it held
   * (used when a write failed: an older checkpoint may hold deltas sealed since).
   * True when no checkpoint is left.
   */
  remove(): boolean {
    try {
      unlinkSync(this.path);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }

  /** Reads the checkpoint; a bad one is renamed `checkpoint.bad` and counted. */
  read(): CheckpointRead {
    let buf: Buffer;
    try {
      // Stat first: a huge file is refused before it is read into memory.
      const size = statSync(this.path).size;
      if (size > this.limits.maxBytes)
        return this.bad(`${size} bytes, more than ${this.limits.maxBytes}`);
      buf = readFileSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { found: 'none' };
      return this.bad(`unreadable: ${(err as Error).message}`);
    }
    const decoded = decodeCheckpoint(buf, this.agentId, this.limits);
    if (!decoded.ok) return this.bad(decoded.reason);
    return { found: 'ok', state: decoded.state };
  }

  private bad(reason: string): CheckpointRead {
    this.counters.skipped++;
    try {
      renameSync(this.path, `${this.path}.bad`);
    } catch {
      // Left in place: the next good write replaces it.
    }
    return { found: 'bad', reason };
  }
}
