/**
 * One scan of a host's UDP sockets joined with their owning processes and the
 * namespace's UDP error counters: what `ss -uanp` shows, as data. This is what
 * `udpwatch-agent snapshot` prints and where listeners come from.
 */
import type { ListeningSocket } from './observation.js';
import { readUdpSnmp, type UdpSnmp } from './proc-net-snmp.js';
import { type LineError, readProcNetUdp, type UdpSocketEntry } from './proc-net-udp.js';
import { findSocketOwners, type SocketOwner } from './proc-sockets-owners.js';

/** A UDP socket with its owner(s) and, when connected, its peer. */
export interface HostSocket extends UdpSocketEntry {
  /** First owning process in /proc order (what `ss` lists first). */
  owner?: SocketOwner;
  /** Every process holding the socket. */
  owners: SocketOwner[];
  /** The one peer of a connected socket. */
  peer?: { ip: string; port: number };
}

/** Result of one host scan. */
export interface HostSocketScan {
  sockets: HostSocket[];
  /** Unconnected sockets with a non-zero local port: the daemon side of flows. */
  listeners: ListeningSocket[];
  snmp: UdpSnmp;
  /** Malformed /proc lines, skipped. */
  errors: LineError[];
  /** Processes/fds skipped during the owner walk (vanished, not permitted). */
  ownerSkips: number;
}

/** Options for scanHostSockets. */
export interface HostSocketScanOptions {
  procRoot?: string;
  /** Directory with udp, udp6, snmp, snmp6 (default `${procRoot}/net`). */
  netDir?: string;
  /**
   * Owners already known by inode. When given, only inodes missing from it are
   * looked up (the fd walk is skipped when there are none), and it is updated:
   * new sockets are added (with [] when no owner was found), closed ones pruned.
   */
  ownerCache?: Map<number, SocketOwner[]>;
  /** Skip the fd walk entirely (no owners). */
  withOwners?: boolean;
}

/** Turns an unconnected socket into the listener shape the flow table and conntrack source use. */
export function toListeningSocket(s: HostSocket): ListeningSocket {
  const l: ListeningSocket = {
    localIp: s.localIp,
    localPort: s.localPort,
    family: s.family,
    inode: s.inode,
    drops: s.drops,
    rxQueueBytes: s.rxQueue,
  };
  if (s.owner) {
    l.pid = s.owner.pid;
    l.pids = s.owners.map((o) => o.pid);
    l.process = s.owner.comm;
    l.cmdline = s.owner.cmdline;
    l.name = s.owner.name;
  }
  return l;
}

/** Scans /proc/net/udp{,6}, the owning processes and the UDP counters in one go. */
export async function scanHostSockets(opts: HostSocketScanOptions = {}): Promise<HostSocketScan> {
  const procRoot = opts.procRoot ?? '/proc';
  const netDir = opts.netDir ?? `${procRoot}/net`;
  const [table, snmp] = await Promise.all([readProcNetUdp({ netDir }), readUdpSnmp({ netDir })]);
  let owners = new Map<number, SocketOwner[]>();
  let ownerSkips = 0;
  if (opts.withOwners !== false) {
    const cache = opts.ownerCache;
    const wanted = new Set<number>();
    for (const s of table.sockets) if (s.inode !== 0 && !cache?.has(s.inode)) wanted.add(s.inode);
    if (wanted.size > 0) {
      const scan = await findSocketOwners(wanted, { procRoot });
      owners = scan.owners;
      ownerSkips = scan.skipped;
    }
    if (cache) {
      const live = new Set<number>();
      for (const s of table.sockets) live.add(s.inode);
      for (const inode of cache.keys()) if (!live.has(inode)) cache.delete(inode);
      for (const inode of wanted) cache.set(inode, owners.get(inode) ?? []);
      owners = cache;
    }
  }
  const sockets: HostSocket[] = [];
  const listeners: ListeningSocket[] = [];
  for (const entry of table.sockets) {
    const list = owners.get(entry.inode) ?? [];
    const s: HostSocket = { ...entry, owners: list };
    if (list.length > 0) s.owner = list[0]!;
    if (entry.connected) s.peer = { ip: entry.remoteIp, port: entry.remotePort };
    else if (entry.localPort !== 0) listeners.push(toListeningSocket(s));
    sockets.push(s);
  }
  return { sockets, listeners, snmp, errors: table.errors.concat(snmp.errors), ownerSkips };
}
