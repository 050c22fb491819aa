/**
 * The conntrack source: clients of any daemon, in any language, with no code
 * change, read from the kernel's connection-tracking table.
 *
 * Each poll reads the table (/proc/net/nf_conntrack, or `conntrack -L` where
 * the file is absent), keeps UDP flows whose destination is a local socket
 * (a listener, or a socket connected to that very client), and turns each
 * entry's cumulative counters into deltas since the previous poll. Bytes are UDP payload, as every source counts them: the
 * kernel's IP packet lengths less the IP and UDP headers of each packet.
 * When conntrack is missing or not permitted, poll() returns [] and status()
 * says why; the agent runs on with its other sources.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { type ConntrackEntry, parseConntrack } from './nf-conntrack.js';
import type { ListeningSocket, PeerObservation } from './observation.js';
import type { LineError } from './proc-net-udp.js';
import { type ConnectedSocket, interfaceAddresses, SocketIndex } from './socket-index.js';

/**
 * IP + UDP header bytes per packet that conntrack's byte counters include and
 * payload does not: 20 + 8 for IPv4, 40 + 8 for IPv6. Conntrack counts
 * reassembled datagrams, so a fragmented datagram is one packet here.
 */
export const IP_UDP_HEADER_BYTES: Readonly<Record<4 | 6, number>> = { 4: 28, 6: 48 };

/**
 * Payload bytes of a cumulative conntrack byte count over `packets` packets;
 * never below zero (IPv4 options or IPv6 extension headers make the real
 * headers longer, which only ever lowers the result).
 */
export function payloadBytes(bytes: number, packets: number, family: 4 | 6): number {
  return Math.max(0, bytes - packets * IP_UDP_HEADER_BYTES[family]);
}

/** Where the table comes from, or why it cannot be read. */
export interface ConntrackStatus {
  available: boolean;
  /** 'proc' for /proc/net/nf_conntrack, 'tool' for the conntrack command. */
  via?: 'proc' | 'tool';
  /** Why conntrack is unavailable. */
  reason?: string;
  /** False when entries carry no packet/byte counters (net.netfilter.nf_conntrack_acct=0). */
  accounting?: boolean;
}

/** Options for createConntrackSource. */
export interface ConntrackSourceOptions {
  procRoot?: string;
  /** The local listening sockets, asked once per poll (e.g. the proc source's listeners()). */
  listeners: () => Iterable<ListeningSocket> | Map<unknown, ListeningSocket>;
  /**
   * The local connected sockets (the proc source's connected()): a server that
   * connect()s a socket per client answers from it, and its flows are that
   * socket's, as the kernel delivers them.
   */
  connected?: () => Iterable<ConnectedSocket>;
  /**
   * Addresses of this host/namespace; a wildcard listener (0.0.0.0, ::) only
   * matches flows to these (plus loopback and multicast), so forwarded traffic
   * is not mistaken for ours. Defaults to os.networkInterfaces().
   */
  localAddresses?: () => Iterable<string>;
  now?: () => number;
  /** The conntrack command (default `conntrack` on PATH). */
  conntrackCommand?: string;
  /** Called once each time availability changes, e.g. to log it. */
  onStatus?: (status: ConntrackStatus) => void;
}

/** A conntrack source. */
export interface ConntrackSource {
  /** Reads the table and returns what moved since the previous poll. */
  poll(): Promise<PeerObservation[]>;
  status(): ConntrackStatus;
  /** Malformed lines of the latest read. */
  lastErrors(): LineError[];
  /**
   * Each entry's counters as of the latest poll (what its deltas so far add
   * up to), for the agent's checkpoint; null when there are more than `max`.
   */
  baselines(max: number): ConntrackBaseline[] | null;
  /**
   * Takes checkpointed counters as the previous poll's (a restarted agent):
   * the next poll counts what each entry moved since, nothing before.
   */
  restoreBaselines(baselines: readonly ConntrackBaseline[]): void;
}

/** An entry's key and cumulative counters: [key, pktsIn, bytesIn, pktsOut, bytesOut]. */
export type ConntrackBaseline = [string, number, number, number, number];

/** Per-entry memory between polls. */
interface EntryState {
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
  timeout: number;
  polledAt: number;
  firstSeen: number;
}

function entryKey(e: ConntrackEntry): string {
  const o = e.orig;
  return `${o.src} ${o.sport} ${o.dst} ${o.dport} ${e.zone ?? 0}`;
}

/** Creates a conntrack source; nothing is read until the first poll(). */
export function createConntrackSource(opts: ConntrackSourceOptions): ConntrackSource {
  const procRoot = opts.procRoot ?? '/proc';
  const path = `${procRoot}/net/nf_conntrack`;
  const now = opts.now ?? Date.now;
  const command = opts.conntrackCommand ?? 'conntrack';
  let state = new Map<string, EntryState>();
  let current: ConntrackStatus = { available: false, reason: 'not polled yet' };
  let reported = '';
  let errors: LineError[] = [];

  const setStatus = (s: ConntrackStatus) => {
    current = s;
    const tag = `${s.available} ${s.via ?? ''} ${s.reason ?? ''}`;
    if (tag !== reported) {
      reported = tag;
      opts.onStatus?.(s);
    }
  };

  const runTool = () =>
    new Promise<string>((resolve, reject) => {
      execFile(
        command,
        ['-L', '-p', 'udp', '-o', 'extended'],
        { maxBuffer: 512 * 1024 * 1024, encoding: 'latin1' },
        (err, stdout, stderr) => {
          if (err) {
            const code = (err as NodeJS.ErrnoException).code;
            reject(
              new Error(
                code === 'ENOENT'
                  ? `no ${command} command`
                  : `${command} -L failed: ${String(stderr).trim().split('\n')[0] || err.message}`,
              ),
            );
          } else resolve(stdout);
        },
      );
    });

  /** Reads the raw table, or returns null after recording why it cannot be read. */
  const readTable = async (): Promise<{
    text: string;
    via: 'proc' | 'tool';
    source: string;
  } | null> => {
    // An unreadable file (no CAP_DAC_READ_SEARCH) may still leave the tool
    // usable (CAP_NET_ADMIN), so any file error falls through to the tool.
    let fileReason: string;
    try {
      return { text: await readFile(path, 'latin1'), via: 'proc', source: path };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      fileReason = code === 'ENOENT' ? `no ${path}` : `cannot read ${path}: ${code ?? err}`;
    }
    try {
      return { text: await runTool(), via: 'tool', source: `${command} -L` };
    } catch (err) {
      setStatus({ available: false, reason: `${fileReason}; ${(err as Error).message}` });
      return null;
    }
  };

  const poll = async (): Promise<PeerObservation[]> => {
    const table = await readTable();
    if (!table) {
      state = new Map();
      return [];
    }
    const t = now();
    const parsed = parseConntrack(table.text, { path: table.source });
    errors = parsed.errors;
    const local = new Set(opts.localAddresses ? opts.localAddresses() : interfaceAddresses());
    const ls = opts.listeners();
    const index = new SocketIndex(
      ls instanceof Map ? ls.values() : ls,
      local,
      opts.connected ? opts.connected() : [],
    );
    const next = new Map<string, EntryState>();
    const out: PeerObservation[] = [];
    // Entries tell whether they carry counters; an empty table does not, so
    // ask the sysctl (readable only for our own namespace's /proc).
    const accounting =
      parsed.entries.length > 0
        ? parsed.entries.some((e) => e.orig.packets !== undefined)
        : ((await readAccountingSysctl(procRoot)) ?? current.accounting);
    for (const e of parsed.entries) {
      // The daemon's socket is where the reply comes from: the reply source,
      // which differs from the original destination after DNAT.
      const listener =
        index.find(e.reply.src, e.reply.sport, { ip: e.reply.dst, port: e.reply.dport }) ??
        index.find(e.orig.dst, e.orig.dport, { ip: e.orig.src, port: e.orig.sport });
      if (!listener) continue;
      const hasCounters = e.orig.packets !== undefined && e.reply.packets !== undefined;
      const pktsIn = e.orig.packets ?? 0;
      const bytesIn = payloadBytes(e.orig.bytes ?? 0, pktsIn, e.family);
      const pktsOut = e.reply.packets ?? 0;
      const bytesOut = payloadBytes(e.reply.bytes ?? 0, pktsOut, e.family);
      const key = entryKey(e);
      let prev = state.get(key);
      // Counters going backwards mean the entry died and was re-created between polls.
      if (
        prev &&
        (pktsIn < prev.pktsIn ||
          bytesIn < prev.bytesIn ||
          pktsOut < prev.pktsOut ||
          bytesOut < prev.bytesOut)
      ) {
        prev = undefined;
      }
      const firstSeen = prev?.firstSeen ?? t;
      next.set(key, {
        pktsIn,
        bytesIn,
        pktsOut,
        bytesOut,
        timeout: e.timeout,
        polledAt: t,
        firstSeen,
      });
      const dIn = pktsIn - (prev?.pktsIn ?? 0);
      const dOut = pktsOut - (prev?.pktsOut ?? 0);
      let moved: boolean;
      if (!prev) moved = true;
      else if (hasCounters) moved = dIn > 0 || dOut > 0;
      else {
        // Without counters, a packet shows as the timeout being pushed back up.
        // After >= 1 s the printed (whole-second) timeout must have dropped, so
        // an equal value is a refresh too.
        moved =
          e.timeout > prev.timeout || (e.timeout === prev.timeout && t - prev.polledAt >= 1000);
      }
      if (!moved) continue;
      // The client as the daemon sees it is where replies go: the reply destination.
      const obs: PeerObservation = {
        source: 'conntrack',
        localIp: listener.localIp,
        localPort: listener.localPort,
        remoteIp: e.reply.dst,
        remotePort: e.reply.dport,
        pktsIn: dIn,
        bytesIn: bytesIn - (prev?.bytesIn ?? 0),
        pktsOut: dOut,
        bytesOut: bytesOut - (prev?.bytesOut ?? 0),
        firstSeen,
        lastSeen: t,
      };
      if (listener.pid !== undefined) obs.pid = listener.pid;
      if (listener.process !== undefined) obs.process = listener.process;
      // Translated to reach the socket: packet-level sources saw another address.
      if (e.orig.dst !== e.reply.src || e.orig.dport !== e.reply.sport) obs.localNat = true;
      if (e.orig.src !== e.reply.dst || e.orig.sport !== e.reply.dport) {
        obs.natFromIp = e.orig.src;
        obs.natFromPort = e.orig.sport;
      }
      out.push(obs);
    }
    state = next;
    setStatus({ available: true, via: table.via, accounting });
    return out;
  };

  return {
    poll,
    status: () => current,
    lastErrors: () => errors,
    baselines(max) {
      if (state.size > max) return null;
      return [...state].map(([k, s]) => [k, s.pktsIn, s.bytesIn, s.pktsOut, s.bytesOut]);
    },
    restoreBaselines(baselines) {
      const t = now();
      state = new Map(
        baselines.map(([k, pktsIn, bytesIn, pktsOut, bytesOut]) => [
          k,
          { pktsIn, bytesIn, pktsOut, bytesOut, timeout: 0, polledAt: 0, firstSeen: t },
        ]),
      );
    },
  };
}

/** net.netfilter.nf_conntrack_acct of the namespace behind `procRoot`, when it can be read. */
async function readAccountingSysctl(procRoot: string): Promise<boolean | undefined> {
  // /proc/sys shows the reader's own network namespace, so it only speaks for '/proc'.
  if (procRoot !== '/proc') return undefined;
  try {
    return (await readFile('/proc/sys/net/netfilter/nf_conntrack_acct', 'latin1')).trim() === '1';
  } catch {
    return undefined;
  }
}
