/**
 * Which local UDP socket receives a datagram sent to ip:port here: the lookup
 * the conntrack and eBPF sources share to tell a daemon's side of a flow.
 *
 * Like the kernel: a connected socket matching the full 4-tuple first, then a
 * socket bound to the exact address, then a wildcard bind (0.0.0.0, ::), the
 * latter only for destinations that are this namespace's own addresses (plus
 * loopback, multicast and broadcast), so forwarded traffic is not mistaken
 * for ours.
 */
import { networkInterfaces } from 'node:os';
import type { ListeningSocket } from './observation.js';

/** A connected local socket: the one peer it talks to is part of its identity. */
export interface ConnectedSocket {
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  pid?: number;
  process?: string;
}

/** The socket a lookup found: its own bound address (what flows are keyed by) and owner. */
export interface LocalSocket {
  localIp: string;
  localPort: number;
  pid?: number;
  process?: string;
}

const WILDCARD_V4 = '0.0.0.0';
const WILDCARD_V6 = '::';

/** Destinations every wildcard socket accepts without the address being on an interface. */
export function isImplicitLocal(ip: string): boolean {
  if (ip.includes(':')) return ip === '::1' || ip.startsWith('ff');
  const first = Number(ip.slice(0, ip.indexOf('.')));
  return first === 127 || (first >= 224 && first <= 239) || ip === '255.255.255.255';
}

/** This namespace's interface addresses (without IPv6 zone suffixes). */
export function interfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) out.push(a.address.split('%')[0]!);
  }
  return out;
}

/** Local socket lookup by 4-tuple, exact address and wildcard, per port. */
export class SocketIndex {
  private readonly connected = new Map<string, ConnectedSocket>();
  private readonly exact = new Map<string, ListeningSocket>();
  private readonly any4 = new Map<number, ListeningSocket>();
  private readonly any6 = new Map<number, ListeningSocket>();
  /** Every port some socket owns: most lookups of a busy host's other end miss here, before any string is built. */
  private readonly ports = new Set<number>();
  /** find()'s previous listener lookup (the index never changes, so it stays right). */
  private lastIp: string | undefined;
  private lastPort = -1;
  private lastListener: ListeningSocket | undefined;

  constructor(
    listeners: Iterable<ListeningSocket>,
    private readonly local: ReadonlySet<string>,
    connected: Iterable<ConnectedSocket> = [],
  ) {
    for (const l of listeners) {
      this.ports.add(l.localPort);
      if (l.localIp === WILDCARD_V4) this.any4.set(l.localPort, l);
      else if (l.localIp === WILDCARD_V6) this.any6.set(l.localPort, l);
      else this.exact.set(`${l.localIp} ${l.localPort}`, l);
    }
    for (const c of connected) {
      this.ports.add(c.localPort);
      this.connected.set(`${c.localIp} ${c.localPort} ${c.remoteIp} ${c.remotePort}`, c);
    }
  }

  /** Whether nothing at all is indexed. */
  get empty(): boolean {
    return (
      this.connected.size === 0 &&
      this.exact.size === 0 &&
      this.any4.size === 0 &&
      this.any6.size === 0
    );
  }

  /** The socket that receives datagrams sent to ip:port here (from `from`, when known), if any. */
  find(
    ip: string,
    port: number,
    from?: { ip: string; port: number },
  ): ListeningSocket | ConnectedSocket | undefined {
    if (!this.ports.has(port)) return undefined;
    if (from && this.connected.size > 0) {
      const c = this.connected.get(`${ip} ${port} ${from.ip} ${from.port}`);
      if (c) return c;
    }
    // A drain's tuples mostly share their local end: the previous answer, without a key string.
    if (ip === this.lastIp && port === this.lastPort) return this.lastListener;
    const listener = this.listenerOf(ip, port);
    this.lastIp = ip;
    this.lastPort = port;
    this.lastListener = listener;
    return listener;
  }

  /** The listening socket that receives datagrams to (ip, port), if any. */
  private listenerOf(ip: string, port: number): ListeningSocket | undefined {
    const hit = this.exact.get(`${ip} ${port}`);
    if (hit) return hit;
    if (!this.local.has(ip) && !isImplicitLocal(ip)) return undefined;
    // A dual-stack [::] socket also receives IPv4 (unless IPV6_V6ONLY, which /proc does not show).
    if (!ip.includes(':')) return this.any4.get(port) ?? this.any6.get(port);
    return this.any6.get(port);
  }
}
