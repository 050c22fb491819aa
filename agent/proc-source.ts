/**
 * The /proc source: connected UDP sockets are peers (the kernel knows their
 * remote address), and unconnected sockets are the listeners other sources
 * attribute flows to (with process, receive-queue depth and drops).
 * /proc has no per-peer counters, so its observations carry zero deltas and
 * only keep a peer alive in the flow table.
 */
import {
  type HostSocket,
  type HostSocketScan,
  type HostSocketScanOptions,
  scanHostSockets,
} from './host-sockets.js';
import type { ListeningSocket, PeerObservation } from './observation.js';
import type { SocketOwner } from './proc-sockets-owners.js';
import type { ConnectedSocket } from './socket-index.js';

/** Options for createProcSource. */
export interface ProcSourceOptions {
  procRoot?: string;
  netDir?: string;
  now?: () => number;
  /**
   * Owners are looked up only for sockets not seen before; every this many ms
   * the whole owner map is rebuilt, catching sockets handed to another process
   * (default 60 s).
   */
  ownerRefreshMs?: number;
}

/** A /proc source. */
export interface ProcSource {
  /** Scans the sockets and returns each connected socket as a peer. */
  poll(): Promise<PeerObservation[]>;
  /** Listeners of the latest scan ([] before the first poll). */
  listeners(): ListeningSocket[];
  /** Connected sockets of the latest scan, with their one peer ([] before the first poll). */
  connected(): ConnectedSocket[];
  /** The latest full scan, or undefined before the first poll. */
  lastScan(): HostSocketScan | undefined;
}

/** Turns a connected socket into a zero-count observation of its peer. */
export function peerObservation(s: HostSocket, t: number): PeerObservation {
  const obs: PeerObservation = {
    source: 'proc',
    localIp: s.localIp,
    localPort: s.localPort,
    remoteIp: s.remoteIp,
    remotePort: s.remotePort,
    pktsIn: 0,
    bytesIn: 0,
    pktsOut: 0,
    bytesOut: 0,
    lastSeen: t,
  };
  if (s.owner) {
    obs.pid = s.owner.pid;
    obs.process = s.owner.comm;
  }
  return obs;
}

/** Creates a /proc source; nothing is read until the first poll(). */
export function createProcSource(opts: ProcSourceOptions = {}): ProcSource {
  const now = opts.now ?? Date.now;
  const refreshMs = opts.ownerRefreshMs ?? 60_000;
  let cache = new Map<number, SocketOwner[]>();
  let cacheBuiltAt = Number.NEGATIVE_INFINITY;
  let scan: HostSocketScan | undefined;

  const poll = async (): Promise<PeerObservation[]> => {
    const t = now();
    if (t - cacheBuiltAt >= refreshMs) {
      cache = new Map();
      cacheBuiltAt = t;
    }
    const scanOpts: HostSocketScanOptions = { ownerCache: cache };
    if (opts.procRoot !== undefined) scanOpts.procRoot = opts.procRoot;
    if (opts.netDir !== undefined) scanOpts.netDir = opts.netDir;
    scan = await scanHostSockets(scanOpts);
    const out: PeerObservation[] = [];
    for (const s of scan.sockets) if (s.connected) out.push(peerObservation(s, t));
    return out;
  };

  const connected = (): ConnectedSocket[] => {
    const out: ConnectedSocket[] = [];
    for (const s of scan?.sockets ?? []) {
      if (!s.connected) continue;
      const c: ConnectedSocket = {
        localIp: s.localIp,
        localPort: s.localPort,
        remoteIp: s.remoteIp,
        remotePort: s.remotePort,
      };
      if (s.owner) {
        c.pid = s.owner.pid;
        c.process = s.owner.comm;
      }
      out.push(c);
    }
    return out;
  };

  return { poll, listeners: () => scan?.listeners ?? [], connected, lastScan: () => scan };
}
