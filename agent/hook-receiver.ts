/**
 * The agent's end of the dgram hook channel: a Unix stream socket on which
 * hooked daemons write one JSON message per line per window. Each message
 * turns into PeerObservations (source 'hook') carrying the daemon's pid and
 * process name.
 */
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { normalizeIp } from '../contract/ip-address.js';
import type { PeerObservation } from './observation.js';

/** Default path of the hook socket; the systemd unit's RuntimeDirectory holds it. */
export const DEFAULT_HOOK_SOCKET = '/run/udpwatch/hook.sock';

/** Longest message line accepted; a longer one closes that daemon's connection. */
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
/** Observations held between drains before the oldest are shed (and counted). */
const MAX_PENDING = 200_000;

/** What the receiver has seen, for heartbeats and the start log. */
export interface HookReceiverStats {
  connections: number;
  messages: number;
  badMessages: number;
  /** Flow rows skipped as malformed inside otherwise good messages. */
  badRows: number;
  /** Packets hooked daemons could not report (agent absent or slow, hook table full), latest total per daemon. */
  droppedPackets: number;
  /** Observations shed because nobody drained them. */
  shed: number;
  /** Pids of daemons that reported in the receiver's lifetime. */
  pids: number[];
}

export interface HookReceiver {
  path: string;
  /** Returns and forgets every observation received since the previous drain. */
  drain(): PeerObservation[];
  stats(): HookReceiverStats;
  close(): Promise<void>;
}

interface DaemonDrops {
  droppedPackets: number;
  overflowPackets: number;
}

const isCount = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isPort = (v: unknown): v is number => isCount(v) && v <= 65_535;

/** One flow row of a hook message as an observation, or why it is malformed. */
function parseFlowRow(
  row: unknown,
  pid: number,
  processName: string | undefined,
): PeerObservation | string {
  if (!Array.isArray(row) || row.length < 10) return 'row has too few fields';
  const [li, lp, ri, rp, pi, bi, po, bo, f, l, tag] = row as unknown[];
  const localIp = typeof li === 'string' ? normalizeIp(li) : null;
  const remoteIp = typeof ri === 'string' ? normalizeIp(ri) : null;
  if (localIp === null) return `bad local address ${JSON.stringify(li)}`;
  if (remoteIp === null) return `bad remote address ${JSON.stringify(ri)}`;
  if (!isPort(lp) || !isPort(rp)) return 'bad port';
  if (!isCount(pi) || !isCount(bi) || !isCount(po) || !isCount(bo)) return 'bad counter';
  if (!isCount(f) || !isCount(l)) return 'bad timestamp';
  const obs: PeerObservation = {
    source: 'hook',
    localIp,
    localPort: lp,
    remoteIp,
    remotePort: rp,
    pktsIn: pi,
    bytesIn: bi,
    pktsOut: po,
    bytesOut: bo,
    firstSeen: f,
    lastSeen: Math.max(f, l),
    pid,
  };
  if (processName) obs.process = processName;
  if (typeof tag === 'string' && tag.length > 0 && tag.length <= 256) obs.clientId = tag;
  return obs;
}

/** Turns one hook message into observations; throws with the reason when it is malformed. */
export function parseHookMessage(text: string): {
  pid: number;
  process: string | undefined;
  observations: PeerObservation[];
  /** Rows skipped, each with its index and reason. */
  errors: string[];
  droppedPackets: number;
  overflowPackets: number;
} {
  const msg = JSON.parse(text) as Record<string, unknown>;
  if (msg === null || typeof msg !== 'object') throw new Error('message is not an object');
  if (msg.v !== 1) throw new Error(`unknown hook protocol version ${JSON.stringify(msg.v)}`);
  const pid = msg.pid;
  if (!isCount(pid)) throw new Error('pid is not a number');
  const processName = typeof msg.process === 'string' && msg.process ? msg.process : undefined;
  if (!Array.isArray(msg.flows)) throw new Error('flows is not an array');
  const observations: PeerObservation[] = [];
  const errors: string[] = [];
  (msg.flows as unknown[]).forEach((row, i) => {
    const obs = parseFlowRow(row, pid, processName);
    if (typeof obs === 'string') errors.push(`flow ${i}: ${obs}`);
    else observations.push(obs);
  });
  return {
    pid,
    process: processName,
    observations,
    errors,
    droppedPackets: isCount(msg.droppedPackets) ? msg.droppedPackets : 0,
    overflowPackets: isCount(msg.overflowPackets) ? msg.overflowPackets : 0,
  };
}

/** Listens on `path` (replacing a stale socket file) for hooked daemons. */
export async function startHookReceiver(
  path: string = DEFAULT_HOOK_SOCKET,
  options: {
    onError?: (message: string) => void;
    /** Called the first time a daemon (pid) reports. */
    onDaemon?: (pid: number, process: string | undefined) => void;
    /** Called after a message added observations (the agent may flush early). */
    onObservations?: () => void;
  } = {},
): Promise<HookReceiver> {
  await mkdir(dirname(path), { recursive: true });
  await unlink(path).catch(() => {});
  let pending: PeerObservation[] = [];
  const drops = new Map<number, DaemonDrops>();
  const pids = new Set<number>();
  const sockets = new Set<Socket>();
  const counters = { connections: 0, messages: 0, badMessages: 0, badRows: 0, shed: 0 };

  const handleLine = (line: string): void => {
    if (line.trim() === '') return;
    try {
      const parsed = parseHookMessage(line);
      counters.messages++;
      if (!pids.has(parsed.pid)) {
        pids.add(parsed.pid);
        options.onDaemon?.(parsed.pid, parsed.process);
      }
      const d = drops.get(parsed.pid) ?? { droppedPackets: 0, overflowPackets: 0 };
      d.droppedPackets = parsed.droppedPackets;
      d.overflowPackets += parsed.overflowPackets;
      drops.set(parsed.pid, d);
      for (const o of parsed.observations) pending.push(o);
      if (parsed.errors.length > 0) {
        counters.badRows += parsed.errors.length;
        options.onError?.(`hook message from pid ${parsed.pid}: ${parsed.errors[0]}`);
      }
      if (pending.length > MAX_PENDING) {
        const excess = pending.length - MAX_PENDING;
        counters.shed += excess;
        pending = pending.slice(excess);
      }
      if (parsed.observations.length > 0) options.onObservations?.();
    } catch (err) {
      counters.badMessages++;
      options.onError?.(`hook message: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  const server: Server = createServer((socket) => {
    counters.connections++;
    sockets.add(socket);
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        handleLine(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        nl = buffer.indexOf('\n');
      }
      if (buffer.length > MAX_MESSAGE_BYTES) {
        counters.badMessages++;
        options.onError?.(`hook message longer than ${MAX_MESSAGE_BYTES} bytes; closing`);
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Daemons may run as other users; access is governed by the directory's mode.
  await chmod(path, 0o666).catch(() => {});

  return {
    path,
    drain() {
      const out = pending;
      pending = [];
      return out;
    },
    stats() {
      let droppedPackets = 0;
      for (const d of drops.values()) droppedPackets += d.droppedPackets + d.overflowPackets;
      return { ...counters, droppedPackets, pids: [...pids] };
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          unlink(path).then(
            () => resolve(),
            () => resolve(),
          );
        });
      });
    },
  };
}
