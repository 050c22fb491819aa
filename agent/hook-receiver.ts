/**
 * The agent's end of the dgram hook channel: a Unix stream socket on which
 * hooked daemons write one JSON message per line per window, in the format
 * of contract/hook-protocol.ts (docs/hook-protocol.md). Each message turns
 * into PeerObservations (source 'hook') carrying the daemon's pid and
 * process name; nothing a message says can throw out of the receiver.
 */
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import {
  HOOK_PROTOCOL_VERSION,
  type HookMessage,
  MAX_HOOK_MESSAGE_BYTES,
  parseHookMessage,
} from '../contract/hook-protocol.js';
import type { PeerObservation } from './observation.js';

/** Default path of the hook socket; the systemd unit's RuntimeDirectory holds it. */
export const DEFAULT_HOOK_SOCKET = '/run/udpwatch/hook.sock';

/** Observations held between drains before the oldest are shed (and counted). */
const MAX_PENDING = 200_000;
/** Daemons whose counters are remembered; the one silent longest is forgotten first. */
const MAX_DAEMONS = 4096;
/** Distinct refused major versions logged; each is logged once. */
const MAX_LOGGED_VERSIONS = 16;

/** What the receiver has seen, for heartbeats and the start log. */
export interface HookReceiverStats {
  connections: number;
  /** Messages used (possibly with some rows skipped). */
  messages: number;
  /** Lines refused whole: not JSON, malformed, too long, or of an unknown major version. */
  badMessages: number;
  /** Of badMessages, those refused for an unknown major protocol version. */
  unsupportedVersions: number;
  /** Flow rows skipped as malformed inside otherwise good messages. */
  badRows: number;
  /**
   * Packets hooked daemons could not report in this receiver's lifetime:
   * windows that never reached an agent (absent or slow) and packets a full
   * hook table could not count. Only grows, across daemon restarts too.
   */
  droppedPackets: number;
  /** Flow windows hooked daemons could not deliver (agent absent or slow) in this receiver's lifetime; only grows. */
  droppedFlows: number;
  /** Observations shed because nobody drained them. */
  shed: number;
  /** Pids of the daemons that reported (the latest MAX_DAEMONS). */
  pids: number[];
}

export interface HookReceiver {
  path: string;
  /** Returns and forgets every observation received since the previous drain. */
  drain(): PeerObservation[];
  stats(): HookReceiverStats;
  close(): Promise<void>;
}

/** The cumulative counters a daemon reported last. */
interface DaemonCounters {
  droppedFlows: number;
  droppedPackets: number;
}

/**
 * Folds the drop counters of hook messages into totals. A hook reports
 * `droppedFlows` and `droppedPackets` cumulatively (so a lost message loses
 * nothing); the totals add each daemon's increase since its previous message.
 * A daemon's first message adds its whole count (drops from before this
 * receiver listened are news), and so does a count lower than the last one,
 * which can only be a new process under a reused pid. `overflowPackets` is
 * already a per-window delta and is simply added.
 */
export class HookDropTotals {
  droppedFlows = 0;
  droppedPackets = 0;
  private readonly daemons = new Map<number, DaemonCounters>();

  constructor(private readonly maxDaemons: number = MAX_DAEMONS) {}

  /** Adds one message's counters; true when it is the first from this daemon process. */
  add(m: HookMessage): boolean {
    const last = this.daemons.get(m.pid);
    const restarted =
      last === undefined ||
      m.droppedFlows < last.droppedFlows ||
      m.droppedPackets < last.droppedPackets;
    const base = restarted ? { droppedFlows: 0, droppedPackets: 0 } : last;
    this.droppedFlows += m.droppedFlows - base.droppedFlows;
    this.droppedPackets += m.droppedPackets - base.droppedPackets + m.overflowPackets;
    // Re-inserting keeps the map in order of last report, oldest first.
    this.daemons.delete(m.pid);
    this.daemons.set(m.pid, { droppedFlows: m.droppedFlows, droppedPackets: m.droppedPackets });
    if (this.daemons.size > this.maxDaemons) {
      const oldest = this.daemons.keys().next();
      if (!oldest.done) this.daemons.delete(oldest.value);
    }
    return restarted;
  }

  /** Pids of the daemons remembered, oldest report first. */
  pids(): number[] {
    return [...this.daemons.keys()];
  }
}

/** A valid message's rows as observations (source 'hook') carrying the daemon's pid and name. */
export function hookObservations(m: HookMessage): PeerObservation[] {
  return m.flows.map(([li, lp, ri, rp, pi, bi, po, bo, f, l, tag]) => {
    const obs: PeerObservation = {
      source: 'hook',
      localIp: li,
      localPort: lp,
      remoteIp: ri,
      remotePort: rp,
      pktsIn: pi,
      bytesIn: bi,
      pktsOut: po,
      bytesOut: bo,
      firstSeen: f,
      // A clock stepped back mid-window can put the last datagram before the first.
      lastSeen: Math.max(f, l),
      pid: m.pid,
      process: m.process,
    };
    if (typeof tag === 'string') obs.clientId = tag;
    return obs;
  });
}

/** Listens on `path` (replacing a stale socket file) for hooked daemons. */
export async function startHookReceiver(
  path: string = DEFAULT_HOOK_SOCKET,
  options: {
    onError?: (message: string) => void;
    /** Called for the first message of each daemon process. */
    onDaemon?: (pid: number, process: string | undefined) => void;
    /** Called after a message added observations (the agent may flush early). */
    onObservations?: () => void;
  } = {},
): Promise<HookReceiver> {
  await mkdir(dirname(path), { recursive: true });
  await unlink(path).catch(() => {});
  let pending: PeerObservation[] = [];
  const totals = new HookDropTotals();
  const loggedVersions = new Set<string>();
  const sockets = new Set<Socket>();
  const counters = {
    connections: 0,
    messages: 0,
    badMessages: 0,
    unsupportedVersions: 0,
    badRows: 0,
    shed: 0,
  };
  const report = (message: string): void => {
    try {
      options.onError?.(message);
    } catch {
      // A failing logger must not cost the message.
    }
  };

  const handleLine = (line: string): void => {
    if (line.trim() === '') return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      counters.badMessages++;
      report(`hook message is not JSON: ${JSON.stringify(line.slice(0, 40))}`);
      return;
    }
    const parsed = parseHookMessage(json);
    if (!parsed.ok) {
      counters.badMessages++;
      if (parsed.kind === 'version') {
        counters.unsupportedVersions++;
        // A daemon with a newer hook sends every window: say it once per version.
        if (loggedVersions.has(parsed.reason) || loggedVersions.size >= MAX_LOGGED_VERSIONS) return;
        loggedVersions.add(parsed.reason);
        report(
          `hook messages refused: ${parsed.reason} (this agent speaks version ${HOOK_PROTOCOL_VERSION})`,
        );
      } else {
        report(`hook message refused: ${parsed.reason}`);
      }
      return;
    }
    const m = parsed.message;
    counters.messages++;
    counters.badRows += parsed.skipped.length;
    if (parsed.skipped.length > 0) {
      const more = parsed.skipped.length > 1 ? ` (and ${parsed.skipped.length - 1} more rows)` : '';
      report(`hook message from pid ${m.pid}: ${parsed.skipped[0]!.reason}${more}`);
    }
    try {
      if (totals.add(m)) options.onDaemon?.(m.pid, m.process);
    } catch {
      // The counters are folded; only the callback failed.
    }
    const observations = hookObservations(m);
    for (const o of observations) pending.push(o);
    if (pending.length > MAX_PENDING) {
      const excess = pending.length - MAX_PENDING;
      counters.shed += excess;
      pending = pending.slice(excess);
    }
    if (observations.length > 0) {
      try {
        options.onObservations?.();
      } catch {
        // The observations wait for the next drain.
      }
    }
  };

  const server: Server = createServer((socket) => {
    counters.connections++;
    sockets.add(socket);
    // The unfinished line, in pieces: scanning only each new chunk for a
    // newline keeps a long line linear in its length.
    let parts: string[] = [];
    let partLength = 0;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      let from = 0;
      let nl = chunk.indexOf('\n');
      while (nl >= 0) {
        parts.push(chunk.slice(from, nl));
        const line = parts.join('');
        parts = [];
        partLength = 0;
        handleLine(line);
        from = nl + 1;
        nl = chunk.indexOf('\n', from);
      }
      if (from < chunk.length) {
        parts.push(chunk.slice(from));
        partLength += chunk.length - from;
      }
      // Characters, not bytes: a line over the limit in characters is over it in bytes too.
      if (partLength > MAX_HOOK_MESSAGE_BYTES) {
        counters.badMessages++;
        report(`hook message longer than ${MAX_HOOK_MESSAGE_BYTES} bytes; closing its connection`);
        parts = [];
        partLength = 0;
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
      return {
        ...counters,
        droppedPackets: totals.droppedPackets,
        droppedFlows: totals.droppedFlows,
        pids: totals.pids(),
      };
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
