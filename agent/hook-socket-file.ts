/**
 * The hook socket as a file: who may create it, who may connect to it, and
 * who owns the path. One agent owns a path at a time: a second one finds the
 * live socket and refuses to start; only a stale socket (nobody answers) is
 * replaced; at exit an agent removes the path only if it is still its own
 * socket (same device and inode).
 *
 * Access: the directory must not be writable by group or others (else anyone
 * could replace the socket), and the socket is mode 0660 with the configured
 * group, so only root and the group's members can connect. Without that group
 * the socket is 0600 (root, or the agent's user, only), never world-writable.
 */
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir, stat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';

/** The group whose members' daemons may report, unless configured otherwise. */
export const DEFAULT_HOOK_SOCKET_GROUP = 'udpwatch-hook';

/** Another agent listens on the hook socket path; this one must not start on it. */
export class HookSocketInUseError extends Error {}

/** The hook socket path or its directory cannot be used safely; the message says what to fix. */
export class HookSocketPathError extends Error {}

/** What a path holds right now. */
export type SocketPathState = 'absent' | 'live' | 'stale' | 'unknown' | 'not-socket';

/** Tries to connect to `path`: live if someone accepts, stale if refused. */
export async function probeSocketPath(path: string, timeoutMs = 1_000): Promise<SocketPathState> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch {
    return 'absent';
  }
  if (!st.isSocket()) return 'not-socket';
  return new Promise((resolve) => {
    const c = connect({ path });
    const timer = setTimeout(() => {
      c.destroy();
      // Accepting nothing for a second: a hung listener still owns the path.
      resolve('live');
    }, timeoutMs);
    c.once('connect', () => {
      clearTimeout(timer);
      c.destroy();
      resolve('live');
    });
    c.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNREFUSED' ? 'stale' : err.code === 'ENOENT' ? 'absent' : 'unknown');
    });
  });
}

/**
 * Makes sure the directory exists and only its owner (this user or root) can
 * write it; throws HookSocketPathError naming the fix otherwise.
 */
export async function checkSocketDirectory(path: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const st = await stat(dir);
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid && st.uid !== 0) {
    throw new HookSocketPathError(
      `hook socket directory ${dir} belongs to uid ${st.uid}, not to this agent (uid ${uid}) or root: its owner could replace the socket; use a directory of the agent's own (the default /run/udpwatch) or remove ${dir}`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new HookSocketPathError(
      `hook socket directory ${dir} is writable by ${st.mode & 0o002 ? 'everyone' : 'its group'} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}): anyone who can write it could replace the socket; run chmod go-w ${dir}, or use a directory only the agent writes (the default /run/udpwatch)`,
    );
  }
}

/**
 * Readies `path` for listening: refuses a live socket (another agent) and a
 * file that is not a socket, and removes a stale socket.
 */
export async function claimSocketPath(path: string): Promise<void> {
  const state = await probeSocketPath(path);
  if (state === 'live' || state === 'unknown') throw inUse(path, state);
  if (state === 'not-socket') {
    throw new HookSocketPathError(
      `hook socket path ${path} exists and is not a socket; move it away or choose another path (--hook-socket)`,
    );
  }
  if (state === 'stale') await unlink(path).catch(() => {});
}

/** The error for a path some other agent holds (or may hold). */
export function inUse(path: string, state: 'live' | 'unknown' | 'race'): HookSocketInUseError {
  const why =
    state === 'unknown'
      ? 'exists and this agent cannot tell whether another agent listens on it (no permission to connect)'
      : 'is in use: another agent listens on it';
  return new HookSocketInUseError(
    `hook socket ${path} ${why}; stop that agent first, or give this one another path (--hook-socket, or hookSocket in the config)`,
  );
}

/** The gid of a group name (or a numeric gid as text); null when no such group. */
export function groupId(name: string): Promise<number | null> {
  if (/^\d+$/.test(name)) return Promise.resolve(Number(name));
  return new Promise((resolve) => {
    // getent asks NSS, so groups from LDAP or sssd count too, not only /etc/group.
    execFile('getent', ['group', name], { timeout: 5_000 }, (err, stdout) => {
      if (err) return resolve(null);
      const gid = Number(stdout.split(':')[2]);
      resolve(Number.isSafeInteger(gid) && gid >= 0 ? gid : null);
    });
  });
}

/** How the socket ended up accessible, for the start log. */
export interface SocketAccess {
  mode: number;
  gid?: number;
  /** Set when the configured group could not be used: what to do about it. */
  warning?: string;
}

/**
 * Gives the socket mode 0660 and the group `group`, or 0600 when the group is
 * missing or cannot be set (with a warning naming the fix).
 */
export async function applySocketAccess(path: string, group: string): Promise<SocketAccess> {
  const gid = await groupId(group);
  if (gid === null) {
    await chmod(path, 0o600);
    return {
      mode: 0o600,
      warning: `hook socket group "${group}" does not exist, so only root${process.geteuid?.() === 0 ? '' : ' and this agent’s user'} can report on ${path} (mode 0600). Create it with "groupadd --system ${group}" and add the users of hooked daemons ("usermod -aG ${group} USER"), then restart the agent; or set hookSocketGroup in the config`,
    };
  }
  try {
    await chown(path, -1, gid);
  } catch (err) {
    await chmod(path, 0o600);
    return {
      mode: 0o600,
      warning: `cannot give hook socket ${path} the group "${group}" (gid ${gid}): ${(err as Error).message}; only this agent’s user can report (mode 0600). Run the agent as root or as a member of ${group}`,
    };
  }
  await chmod(path, 0o660);
  return { mode: 0o660, gid };
}

/**
 * The identity of the socket file this agent created: device, inode and the
 * inode's change time in ns (a file created after ours was removed may reuse
 * its inode number, never also its change time).
 */
export interface SocketFileId {
  dev: bigint;
  ino: bigint;
  ctimeNs: bigint;
}

/** Reads the identity of `path`. */
export async function socketFileId(path: string): Promise<SocketFileId> {
  const st = await lstat(path, { bigint: true });
  return { dev: st.dev, ino: st.ino, ctimeNs: st.ctimeNs };
}

/** Removes `path` only if it is still the socket `id` names; true if removed. */
export async function unlinkIfOwn(path: string, id: SocketFileId): Promise<boolean> {
  try {
    const st = await lstat(path, { bigint: true });
    if (st.dev !== id.dev || st.ino !== id.ino || st.ctimeNs !== id.ctimeNs) return false;
    await unlink(path);
    return true;
  } catch {
    return false;
  }
}
