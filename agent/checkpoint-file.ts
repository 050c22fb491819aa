/**
 * The checkpoint in the agent's state directory: two slot files,
 * `<state-dir>/checkpoint.a` and `checkpoint.b`, written in turn. A write
 * goes in place into the slot that does not hold the newest checkpoint (one
 * positioned write of the whole file, a truncate when it shrank, fdatasync),
 * then marks the other slot retired; a read takes the slot with the highest
 * write sequence (in the digested body, so a clock stepping back cannot
 * reorder them) that decodes. A crash, even `kill -9` or a power cut in the
 * middle of a write, leaves the newest checkpoint whole, as a temp file and a
 * rename did, for about 0.6 of the CPU at 1,000 pending endpoints: each slot
 * file is opened once and kept open (made again if its name is deleted), no
 * file is created or renamed and no directory synced per write, and
 * fdatasync of overwritten blocks commits no metadata
 * (bench/cases/checkpoint.ts). Retiring the older slot keeps a damaged
 * newest one from being taken for the one before: that older one would
 * hold deltas sealed since. The single `checkpoint` of earlier agents is
 * read as the oldest candidate and removed after the first slot write.
 *
 * A write encodes at once (the state it is given may change right after),
 * then hashes (a large body on libuv's thread pool through WebCrypto) and
 * writes off the event loop; writes never overlap. A write encodes into
 * memory the file keeps for the next one, unless an earlier write still
 * reads it. A slot that does not decode while no other does is set aside as
 * `<slot>.bad`, counted and reported; it never keeps the agent from
 * starting.
 */
import { createHash, subtle } from 'node:crypto';
import {
  closeSync,
  constants,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
} from 'node:fs';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockEndpoint } from '../contract/block.js';
import { fsyncDir } from './agent-state.js';
import {
  type CheckpointLimits,
  CheckpointScratch,
  type CheckpointState,
  checkpointPreamble,
  decodeCheckpoint,
  encodeCheckpointBody,
  isRetiredCheckpoint,
  RETIRED_MARK,
} from './checkpoint-codec.js';

const SLOTS = ['checkpoint.a', 'checkpoint.b'] as const;
/** The one file of agents before the slots. */
const LEGACY = 'checkpoint';
/** Every file a read looks at, in the order of its candidates: slot a, slot b, the earlier one. */
const FILES = [...SLOTS, LEGACY] as const;
/** The earlier agents' file's place in FILES, after the slots. */
const LEGACY_AT = SLOTS.length;
/** Opened for writing in place; a symbolic link in the state directory is refused, not followed. */
const SLOT_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;

/**
 * Bodies up to this size are hashed on the event loop (under ~0.3 ms here),
 * where handing them to the thread pool costs as much; larger ones go there.
 */
const HASH_ON_LOOP_BYTES = 256 * 1024;

/** The SHA-256 of `body` in hex, off the event loop when it is large. */
async function digestOf(body: Uint8Array): Promise<string> {
  if (body.length <= HASH_ON_LOOP_BYTES) return createHash('sha256').update(body).digest('hex');
  return Buffer.from(await subtle.digest('SHA-256', body)).toString('hex');
}

/** A checkpoint file that did not decode, and why. */
export interface SetAside {
  path: string;
  reason: string;
}

/** What reading the checkpoint found: the newest good one, if any, and the files set aside. */
export type CheckpointRead =
  | { found: 'none'; setAside: SetAside[] }
  | { found: 'ok'; state: CheckpointState<BlockEndpoint[]>; path: string; setAside: SetAside[] };

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

/** One candidate file of a read. */
type Candidate =
  | { kind: 'none' }
  | { kind: 'retired' }
  | { kind: 'ok'; state: CheckpointState<BlockEndpoint[]>; bytes: number }
  | { kind: 'bad'; reason: string };

/** Reads and writes the checkpoint slots in `stateDir`. */
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
  /** Whether the slots on disk have been looked at (their sequences and sizes known). */
  private surveyed = false;
  /** Highest write sequence handed out or found on disk. */
  private sequence = 0;
  /** The slot holding the newest checkpoint, -1 when neither does. */
  private newest = -1;
  /** Each slot file's length as last seen or written; -1 when unknown or absent. */
  private readonly slotBytes = [-1, -1];
  /** Whether each slot file is known to exist durably (its directory entry synced). */
  private readonly slotExists = [false, false];
  private legacyPresent = false;
  /** Each slot file, open from its first write on (reopened if its name goes). */
  private readonly handles: (FileHandle | undefined)[] = [undefined, undefined];

  /** Every file a read looks at (FILES), and the slot files among them. */
  private readonly filePaths: readonly string[];
  readonly slotPaths: readonly string[];

  constructor(
    private readonly stateDir: string,
    private readonly agentId: string,
    readonly limits: CheckpointLimits,
  ) {
    this.filePaths = FILES.map((name) => join(stateDir, name));
    this.slotPaths = this.filePaths.slice(0, LEGACY_AT);
  }

  /** Where the checkpoint lives, for messages: the slot files' common stem. */
  get path(): string {
    return join(this.stateDir, `${LEGACY}.{a,b}`);
  }

  stats(): CheckpointFileStats {
    return { ...this.counters };
  }

  /**
   * Writes `state` durably; resolves once it is the newest checkpoint on disk,
   * rejects (with the path) when the disk refuses. `state` is encoded before
   * this returns, so the caller may change what it refers to right away.
   */
  write(state: CheckpointState): Promise<void> {
    const started = performance.now();
    if (!this.surveyed) this.survey();
    const reuse = !this.scratchBusy;
    const body = encodeCheckpointBody(state, reuse ? this.scratch : undefined, ++this.sequence);
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
    const slot = this.newest === 0 ? 1 : 0;
    const path = this.slotPaths[slot]!;
    let bytes = 0;
    try {
      const preamble = checkpointPreamble(await digestOf(body));
      bytes = preamble.length + body.length;
      if (!(await this.writeSlot(slot, [preamble, body], bytes))) {
        // The file was deleted under its handle (its directory emptied): make it again.
        await this.closeSlot(slot);
        await this.writeSlot(slot, [preamble, body], bytes);
      }
    } catch (err) {
      await this.closeSlot(slot);
      this.counters.failedWrites++;
      throw new Error(`cannot write checkpoint ${path}: ${(err as Error).message}`);
    }
    this.newest = slot;
    await this.retireOthers(slot);
    this.counters.writes++;
    this.counters.lastBytes = bytes;
    this.counters.lastWriteMs = performance.now() - started;
    this.counters.lastBlockedMs = encodedMs;
  }

  /**
   * Writes `parts` (`bytes` in all) as the whole of slot `slot` and makes
   * them durable; false when the file turned out to have no name any more.
   */
  private async writeSlot(slot: number, parts: Uint8Array[], bytes: number): Promise<boolean> {
    if (!this.handles[slot]) this.slotBytes[slot] = -1;
    const fh = await this.handleOf(slot);
    const { bytesWritten } = await fh.writev(parts, 0);
    if (bytesWritten !== bytes) throw new Error(`wrote ${bytesWritten} of ${bytes} bytes`);
    // A longer file's tail would be read as part of the body (and fail its digest).
    if (this.slotBytes[slot] !== bytes) await fh.truncate(bytes);
    this.slotBytes[slot] = bytes;
    await fh.datasync();
    if ((await fh.stat()).nlink === 0) return false;
    if (!this.slotExists[slot]) {
      fsyncDir(this.stateDir);
      this.slotExists[slot] = true;
    }
    return true;
  }

  /** Slot `slot`'s file, opened (made if absent) on first use. */
  private async handleOf(slot: number): Promise<FileHandle> {
    let fh = this.handles[slot];
    if (!fh) {
      fh = await open(this.slotPaths[slot]!, SLOT_FLAGS, 0o640);
      this.handles[slot] = fh;
    }
    return fh;
  }

  /** Closes slot `slot`'s file; its size on disk is then unknown. */
  private async closeSlot(slot: number): Promise<void> {
    const fh = this.handles[slot];
    this.handles[slot] = undefined;
    this.slotBytes[slot] = -1;
    this.slotExists[slot] = false;
    await fh?.close().catch(() => {});
  }

  /**
   * Marks the slot other than `slot` retired (one byte of its magic, not
   * synced: it only has to outlive the process, and a power cut keeps the
   * newest slot's higher sequence) and removes an earlier agent's file.
   */
  private async retireOthers(slot: number): Promise<void> {
    const other = 1 - slot;
    if (this.slotExists[other]) {
      try {
        const fh = await this.handleOf(other);
        await fh.write(RETIRED_MARK.bytes, 0, RETIRED_MARK.bytes.length, RETIRED_MARK.at);
      } catch {
        // Gone or unwritable: the newest slot's higher sequence still wins a read.
        await this.closeSlot(other);
      }
    }
    if (this.legacyPresent) {
      this.legacyPresent = false;
      await unlink(this.filePaths[LEGACY_AT]!).catch(() => {});
    }
  }

  /** Closes the slot files once the writes under way are done (a later write opens them again). */
  async close(): Promise<void> {
    await this.previous;
    await Promise.all([this.closeSlot(0), this.closeSlot(1)]);
  }

  /**
   * Removes every checkpoint file, so a crash from now on restores nothing
   * they held (used when a write failed: an older checkpoint may hold deltas
   * sealed since). True when none is left.
   */
  remove(): boolean {
    let left = false;
    for (const path of this.filePaths) {
      try {
        unlinkSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') left = true;
      }
    }
    for (const slot of [0, 1]) void this.closeSlot(slot);
    this.newest = -1;
    this.legacyPresent = false;
    return !left;
  }

  /**
   * Reads the newest good checkpoint. A file that does not decode is renamed
   * `<name>.bad` and counted, unless a newer good one was found: then it is
   * the write a crash interrupted, and the next write replaces it.
   */
  read(): CheckpointRead {
    const candidates = this.survey();
    const setAside: SetAside[] = [];
    // The newest slot, else the earlier agents' file.
    const at = this.newest >= 0 ? this.newest : LEGACY_AT;
    const best = candidates[at]!;
    candidates.forEach((c, i) => {
      if (c.kind !== 'bad' || best.kind === 'ok') return;
      const path = this.filePaths[i]!;
      this.counters.skipped++;
      setAside.push({ path, reason: c.reason });
      try {
        renameSync(path, `${path}.bad`);
      } catch {
        // Left in place: the next good write replaces it.
      }
      if (i < LEGACY_AT) void this.closeSlot(i);
    });
    if (best.kind !== 'ok') return { found: 'none', setAside };
    return { found: 'ok', state: best.state, path: this.filePaths[at]!, setAside };
  }

  /**
   * Looks at both slots and the earlier agents' file: learns the highest
   * sequence, which slot is newest and each one's size; returns what each
   * held (slot a, slot b, the earlier file).
   */
  private survey(): Candidate[] {
    const candidates = this.filePaths.map((path) => this.candidate(path));
    this.surveyed = true;
    this.newest = -1;
    let newestSequence = -1;
    for (let i = 0; i < LEGACY_AT; i++) {
      const c = candidates[i]!;
      this.slotExists[i] = c.kind !== 'none';
      this.slotBytes[i] = c.kind === 'ok' ? c.bytes : -1;
      if (c.kind !== 'ok') continue;
      const sequence = c.state.sequence ?? 0;
      this.sequence = Math.max(this.sequence, sequence);
      if (sequence > newestSequence) {
        newestSequence = sequence;
        this.newest = i;
      }
    }
    this.legacyPresent = candidates[LEGACY_AT]!.kind !== 'none';
    return candidates;
  }

  private candidate(path: string): Candidate {
    let buf: Buffer;
    try {
      // Stat first: a huge file is refused before it is read into memory.
      const size = lstatSync(path).size;
      if (size > this.limits.maxBytes)
        return { kind: 'bad', reason: `${size} bytes, more than ${this.limits.maxBytes}` };
      const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        buf = readFileSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
      return { kind: 'bad', reason: `unreadable: ${(err as Error).message}` };
    }
    if (isRetiredCheckpoint(buf)) return { kind: 'retired' };
    const decoded = decodeCheckpoint(buf, this.agentId, this.limits);
    if (!decoded.ok) return { kind: 'bad', reason: decoded.reason };
    return { kind: 'ok', state: decoded.state, bytes: buf.length };
  }
}
