/**
 * Which process is on the other end of an accepted hook connection, learned
 * from the kernel rather than from what the process says. Node has no
 * SO_PEERCRED, so this does what `ss -xp` does: sock_diag (through `ss -x`,
 * iproute2) names the peer socket's inode of each of our accepted sockets,
 * and /proc/<pid>/fd tells which process holds that inode.
 *
 * Only numbers are parsed out of `ss` (the inodes at the end of lines whose
 * local address is our own socket path), never a client-chosen name.
 */
import { execFile } from 'node:child_process';
import { readFile, readlink } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { findSocketOwners } from './proc-sockets-owners.js';

/** The kernel's view of a connected hook process. */
export interface HookPeer {
  pid: number;
  /** /proc/<pid>/comm with control characters replaced, at most 64 characters. */
  process: string;
}

/** Why a peer could not be identified, for a log line. */
export type PeerLookup = { ok: true; peer: HookPeer } | { ok: false; reason: string };

const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/g;
/** ss output we read at most (a host with very many Unix sockets). */
const MAX_SS_OUTPUT = 16 * 1024 * 1024;

/** The inode of one of this process's sockets, from /proc/self/fd; null when unknown. */
export async function ownSocketInode(socket: Socket): Promise<number | null> {
  // net.Socket keeps its fd on the libuv handle; it is not public API, so any surprise means "unknown".
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  try {
    const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/self/fd/${fd}`));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Maps each of our accepted sockets on `path` (by its inode) to its peer's
 * inode, from `ss -xnH src <path>`: lines ending `<local inode> * <peer inode>`.
 */
export function peerInodes(path: string, ss = 'ss'): Promise<Map<number, number>> {
  return new Promise((resolve, reject) => {
    execFile(
      ss,
      ['-xnH', 'src', path],
      { timeout: 5_000, maxBuffer: MAX_SS_OUTPUT },
      (err, stdout) => {
        if (err) {
          reject(new Error(`${ss} -xnH src ${path} failed: ${err.message}`));
          return;
        }
        const out = new Map<number, number>();
        for (const line of stdout.split('\n')) {
          const t = line.trim().split(/\s+/);
          if (t.length < 3) continue;
          const local = Number(t[t.length - 3]);
          const peer = Number(t[t.length - 1]);
          if (Number.isSafeInteger(local) && Number.isSafeInteger(peer) && peer > 0) {
            out.set(local, peer);
          }
        }
        resolve(out);
      },
    );
  });
}

/** A process name safe for logs and tables. */
export function safeProcessName(comm: string): string {
  const s = comm.replace(CONTROL_RE, '?').slice(0, 64);
  return s === '' ? '?' : s;
}

/**
 * Identifies the peers of accepted connections on one listening path. Lookups
 * that arrive together share one `ss` run and one /proc walk, and at most one
 * runs at a time, so a flood of connections costs one walk per batch.
 */
export class HookPeerResolver {
  private queue: Array<{ socket: Socket; resolve: (r: PeerLookup) => void }> = [];
  private running = false;

  constructor(
    private readonly path: string,
    private readonly options: { ss?: string; procRoot?: string } = {},
  ) {}

  /** The kernel's pid and name of the process on the other end of `socket`. Never rejects. */
  lookup(socket: Socket): Promise<PeerLookup> {
    return new Promise((resolve) => {
      this.queue.push({ socket, resolve });
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        await this.resolveBatch(batch);
      }
    } finally {
      this.running = false;
    }
  }

  private async resolveBatch(
    batch: Array<{ socket: Socket; resolve: (r: PeerLookup) => void }>,
  ): Promise<void> {
    const own = await Promise.all(batch.map((b) => ownSocketInode(b.socket)));
    let peers: Map<number, number>;
    try {
      peers = await peerInodes(this.path, this.options.ss);
    } catch (err) {
      for (const b of batch) b.resolve({ ok: false, reason: (err as Error).message });
      return;
    }
    const wanted = new Set<number>();
    for (const ino of own) {
      const peer = ino === null ? undefined : peers.get(ino);
      if (peer !== undefined) wanted.add(peer);
    }
    const procRoot = this.options.procRoot ?? '/proc';
    const scan = await findSocketOwners(wanted, { procRoot });
    await Promise.all(
      batch.map(async (b, i) => {
        const ino = own[i];
        if (ino === null || ino === undefined) {
          b.resolve({ ok: false, reason: 'the connection’s own socket inode is unknown' });
          return;
        }
        const peer = peers.get(ino);
        if (peer === undefined) {
          b.resolve({ ok: false, reason: `ss lists no peer for socket inode ${ino}` });
          return;
        }
        const owner = scan.owners.get(peer)?.[0];
        if (owner === undefined) {
          b.resolve({
            ok: false,
            reason: `no process holds peer socket inode ${peer} (it exited, or /proc/<pid>/fd is not readable: the agent needs root or CAP_SYS_PTRACE)`,
          });
          return;
        }
        // findSocketOwners read comm already; read it again only if it came back empty.
        let comm = owner.comm;
        if (comm === '') {
          comm = (await readFile(`${procRoot}/${owner.pid}/comm`, 'utf8').catch(() => '')).trim();
        }
        b.resolve({ ok: true, peer: { pid: owner.pid, process: safeProcessName(comm) } });
      }),
    );
  }
}
