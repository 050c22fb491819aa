/**
 * `udpwatch-agent snapshot`: every UDP socket of the host with its process and
 * the peers the sources know of, like `ss -uap` would show if UDP had
 * connections. No AWS involved.
 */
import { formatEndpoint } from '../contract/ip-address.js';
import type { FlowSource } from '../contract/wire.js';
import type { HostSocket, HostSocketScan } from './host-sockets.js';
import type { PeerObservation } from './observation.js';

/** One known peer of a socket with its counters over the watch window. */
export interface SnapshotPeer {
  ip: string;
  port: number;
  source: FlowSource;
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
  lastSeen: number;
  natFromIp?: string;
  natFromPort?: number;
  clientId?: string;
}

/** One socket of the snapshot (the `--json` shape, stable for scripts). */
export interface SnapshotSocket {
  family: 4 | 6;
  localIp: string;
  localPort: number;
  state: 'UNCONN' | 'ESTAB';
  remoteIp?: string;
  remotePort?: number;
  rxQueue: number;
  txQueue: number;
  drops: number;
  inode: number;
  pid?: number;
  process?: string;
  cmdline?: string;
  peers: SnapshotPeer[];
}

export interface Snapshot {
  at: number;
  sockets: SnapshotSocket[];
  /** Sources that contributed peers, and why others did not. */
  sources: Record<FlowSource, string>;
  udpErrors: { inErrors?: number; rcvbufErrors?: number; sndbufErrors?: number };
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

function socketOf(scan: HostSocket[], o: PeerObservation): HostSocket | undefined {
  let wildcard: HostSocket | undefined;
  for (const s of scan) {
    if (s.connected || s.localPort !== o.localPort) continue;
    if (s.localIp === o.localIp) return s;
    if (WILDCARDS.has(s.localIp) && (s.family === 6 || !o.localIp.includes(':'))) wildcard ??= s;
  }
  return wildcard;
}

/** Joins a socket scan with observations into the snapshot. */
export function buildSnapshot(
  scan: HostSocketScan,
  observations: readonly PeerObservation[],
  sources: Record<FlowSource, string>,
  now: number,
): Snapshot {
  const peers = new Map<HostSocket, Map<string, SnapshotPeer>>();
  const addPeer = (s: HostSocket, o: PeerObservation) => {
    let m = peers.get(s);
    if (!m) {
      m = new Map();
      peers.set(s, m);
    }
    const key = `${o.remoteIp}|${o.remotePort}`;
    const p = m.get(key);
    if (!p) {
      const peer: SnapshotPeer = {
        ip: o.remoteIp,
        port: o.remotePort,
        source: o.source,
        pktsIn: o.pktsIn,
        bytesIn: o.bytesIn,
        pktsOut: o.pktsOut,
        bytesOut: o.bytesOut,
        lastSeen: o.lastSeen,
      };
      if (o.natFromIp) peer.natFromIp = o.natFromIp;
      if (o.natFromPort !== undefined) peer.natFromPort = o.natFromPort;
      if (o.clientId) peer.clientId = o.clientId;
      m.set(key, peer);
      return;
    }
    // The hook's counters are authoritative for a hooked socket.
    if (o.source === 'hook' && p.source !== 'hook') {
      Object.assign(p, { source: 'hook', pktsIn: 0, bytesIn: 0, pktsOut: 0, bytesOut: 0 });
    }
    if (o.source === p.source) {
      p.pktsIn += o.pktsIn;
      p.bytesIn += o.bytesIn;
      p.pktsOut += o.pktsOut;
      p.bytesOut += o.bytesOut;
    }
    p.lastSeen = Math.max(p.lastSeen, o.lastSeen);
    if (o.natFromIp) p.natFromIp = o.natFromIp;
    if (o.clientId) p.clientId = o.clientId;
  };
  for (const o of observations) {
    const s = socketOf(scan.sockets, o);
    if (s) addPeer(s, o);
  }
  const sockets: SnapshotSocket[] = scan.sockets.map((s) => {
    const out: SnapshotSocket = {
      family: s.family,
      localIp: s.localIp,
      localPort: s.localPort,
      state: s.connected ? 'ESTAB' : 'UNCONN',
      rxQueue: s.rxQueue,
      txQueue: s.txQueue,
      drops: s.drops,
      inode: s.inode,
      peers: [...(peers.get(s)?.values() ?? [])].sort(
        (a, b) => a.ip.localeCompare(b.ip) || a.port - b.port,
      ),
    };
    if (s.connected) {
      out.remoteIp = s.remoteIp;
      out.remotePort = s.remotePort;
    }
    if (s.owner) {
      out.pid = s.owner.pid;
      out.process = s.owner.comm;
      out.cmdline = s.owner.cmdline;
    }
    return out;
  });
  sockets.sort((a, b) => a.localPort - b.localPort || a.localIp.localeCompare(b.localIp));
  const udp = scan.snmp.udp ?? {};
  const udpErrors: Snapshot['udpErrors'] = {};
  if (udp.inErrors !== undefined) udpErrors.inErrors = udp.inErrors;
  if (udp.rcvbufErrors !== undefined) udpErrors.rcvbufErrors = udp.rcvbufErrors;
  if (udp.sndbufErrors !== undefined) udpErrors.sndbufErrors = udp.sndbufErrors;
  return { at: now, sockets, sources, udpErrors };
}

function pad(text: string, width: number): string {
  return text.length >= width ? `${text} ` : text.padEnd(width);
}

/** The snapshot as a terminal table: a socket per line, its peers indented below. */
export function formatSnapshot(snap: Snapshot): string {
  const rows: string[] = [];
  rows.push(
    `${pad('State', 7)}${pad('Recv-Q', 8)}${pad('Drops', 7)}${pad('Local', 42)}${pad('Peer', 42)}Process`,
  );
  for (const s of snap.sockets) {
    const local = formatEndpoint(s.localIp, s.localPort);
    const peer = s.remoteIp !== undefined ? formatEndpoint(s.remoteIp, s.remotePort ?? 0) : '*';
    const proc = s.pid !== undefined ? `${s.process ?? '?'} (pid ${s.pid})` : '-';
    rows.push(
      `${pad(s.state, 7)}${pad(String(s.rxQueue), 8)}${pad(String(s.drops), 7)}${pad(local, 42)}${pad(peer, 42)}${proc}`,
    );
    for (const p of s.peers) {
      const nat = p.natFromIp ? ` nat-from ${formatEndpoint(p.natFromIp, p.natFromPort ?? 0)}` : '';
      const id = p.clientId ? ` client ${p.clientId}` : '';
      rows.push(
        `  <-> ${pad(formatEndpoint(p.ip, p.port), 42)}${pad(p.source, 10)}in ${p.pktsIn} pkts/${p.bytesIn} B  out ${p.pktsOut} pkts/${p.bytesOut} B${nat}${id}`,
      );
    }
  }
  const srcs = Object.entries(snap.sources)
    .map(([k, v]) => `${k}: ${v}`)
    .join('; ');
  rows.push('', `sources: ${srcs}`);
  const e = snap.udpErrors;
  rows.push(
    `udp errors (host): InErrors ${e.inErrors ?? '?'} RcvbufErrors ${e.rcvbufErrors ?? '?'} SndbufErrors ${e.sndbufErrors ?? '?'}`,
  );
  return `${rows.join('\n')}\n`;
}
