/**
 * What a source tells the flow table about one UDP flow. Every source (dgram
 * hook, eBPF, conntrack, /proc) speaks this shape, so the flow table merges them
 * without knowing where they came from.
 */
import type { FlowSource } from '../contract/wire.js';

/** One flow's activity seen by one source since that source's previous report. */
export interface PeerObservation {
  source: FlowSource;
  /** The daemon's side of the flow (canonical IP, see contract/ip-address.ts). */
  localIp: string;
  localPort: number;
  /** The client's side as the daemon sees it (after any NAT). */
  remoteIp: string;
  remotePort: number;
  /** Deltas since this source's previous observation of this flow. */
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
  /** Epoch ms of the first packet, when the source knows it. */
  firstSeen?: number;
  /** Epoch ms of the latest packet the source knows of. */
  lastSeen: number;
  /** Owning process of the local socket, when known. */
  pid?: number;
  process?: string;
  /** The client's address before NAT, when conntrack shows a translation. */
  natFromIp?: string;
  natFromPort?: number;
  /** Application-level client id set by a hooked daemon. */
  clientId?: string;
  /** 1 in N packets were counted and the counters are already scaled up by N (absent: 1). */
  sampleRate?: number;
  /**
   * Conntrack: the datagrams' destination was translated on this host (DNAT,
   * REDIRECT) to reach the socket, so a packet-level source (eBPF at the
   * device) saw them under another address and cannot count this flow.
   */
  localNat?: boolean;
}

/**
 * An observation for a source to refill and hand on row by row (none kept
 * per row): every optional field a refilled row sets is there from the
 * start, so all rows share one shape.
 */
export function refilledObservation(source: FlowSource): PeerObservation {
  return {
    source,
    localIp: '',
    localPort: 0,
    remoteIp: '',
    remotePort: 0,
    pktsIn: 0,
    bytesIn: 0,
    pktsOut: 0,
    bytesOut: 0,
    firstSeen: 0,
    lastSeen: 0,
    pid: undefined,
    process: undefined,
    clientId: undefined,
    sampleRate: undefined,
  };
}

/** A copy of a refilled observation to keep: no optional keys for what is unknown. */
export function keptObservation(o: PeerObservation): PeerObservation {
  const copy: PeerObservation = { ...o };
  if (copy.pid === undefined) delete copy.pid;
  if (copy.process === undefined) delete copy.process;
  if (copy.clientId === undefined) delete copy.clientId;
  if (copy.sampleRate === undefined) delete copy.sampleRate;
  return copy;
}

/** A local UDP socket that receives from many peers: the daemon side of flows. */
export interface ListeningSocket {
  localIp: string;
  localPort: number;
  family: 4 | 6;
  inode: number;
  pid?: number;
  /** Every process holding the socket (fork, fd passing), `pid` first. */
  pids?: number[];
  process?: string;
  cmdline?: string;
  /** The owner's recognizable name (unit, container, script or process; see process-identity.ts). */
  name?: string;
  /** Datagrams the kernel dropped on this socket (receive buffer full, ...). */
  drops: number;
  rxQueueBytes: number;
}
