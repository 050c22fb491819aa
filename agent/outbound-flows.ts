/**
 * Which flows are a local socket's own outbound traffic, a client of someone
 * else's service, rather than clients of a local service: a resolver's
 * upstream queries, a browser's QUIC connections, an NTP client's requests.
 *
 * The rule: a flow is outbound when its local port lies in the network
 * namespace's ephemeral range (net.ipv4.ip_local_port_range: where the
 * kernel picks a port for a socket that did not bind one) and its remote
 * port lies below that range (a well-known or registered port, where servers
 * listen), unless a configured service rule names the local port.
 *
 * What it keeps: a server on a fixed port below the range, whose clients come
 * from ephemeral ports, also when it connect()s a socket per client (that
 * socket has the server's own port); a server inside the range (mosh,
 * WireGuard) whose clients also use ports inside it; peer-to-peer flows
 * between two ephemeral ports. What it cannot tell: a client that binds a
 * fixed port below the range (an NTP client on 123) stays a service, as
 * before.
 */
import { readFileSync } from 'node:fs';

/** An inclusive port range. */
export interface PortRange {
  low: number;
  high: number;
}

/** Linux's default ephemeral range, for when the sysctl cannot be read. */
export const DEFAULT_EPHEMERAL_PORTS: PortRange = { low: 32768, high: 60999 };

/** Parses ip_local_port_range ("32768\t60999"); null when it is not two ports low <= high. */
export function parsePortRange(text: string): PortRange | null {
  const m = /^\s*(\d{1,5})\s+(\d{1,5})\s*$/.exec(text);
  if (!m) return null;
  const low = Number(m[1]);
  const high = Number(m[2]);
  return low >= 1 && high <= 65535 && low <= high ? { low, high } : null;
}

/** The ephemeral range of the reader's network namespace, or the default with why. */
export function readEphemeralPorts(procRoot = '/proc'): { range: PortRange; problem?: string } {
  const path = `${procRoot}/sys/net/ipv4/ip_local_port_range`;
  try {
    const range = parsePortRange(readFileSync(path, 'latin1'));
    if (range) return { range };
    return { range: DEFAULT_EPHEMERAL_PORTS, problem: `${path} holds no port range` };
  } catch (err) {
    return {
      range: DEFAULT_EPHEMERAL_PORTS,
      problem: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    };
  }
}

/** Whether a flow (local port, remote port) is the local socket's outbound traffic. */
export type OutboundRule = (localPort: number, remotePort: number) => boolean;

/** The rule above for one namespace's range, keeping the ports configured services name. */
export function outboundRule(range: PortRange, servicePorts: ReadonlySet<number>): OutboundRule {
  return (localPort, remotePort) =>
    localPort >= range.low &&
    localPort <= range.high &&
    remotePort < range.low &&
    !servicePorts.has(localPort);
}
