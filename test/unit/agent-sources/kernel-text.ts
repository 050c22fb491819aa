/**
 * Writes /proc/net/udp{,6} and nf_conntrack lines the way the kernel prints
 * them (format strings of udp4_format_sock / udp6_sock_seq_show and
 * ct_seq_show), so parser tests start from bytes rather than from text the
 * parser's author imagined. Little-endian hosts only, like the CI machines.
 */
import { parseIpv4, parseIpv6 } from '../../../contract/ip-address.js';

const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, '0');

/** An address's network-order bytes. */
export function addressBytes(ip: string): number[] {
  const v4 = parseIpv4(ip);
  if (v4) return v4;
  const words = parseIpv6(ip);
  if (!words) throw new Error(`not an address: ${ip}`);
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

/** %08X of each 32-bit word of the address read as a little-endian integer. */
export function kernelHexAddress(ip: string): string {
  const b = addressBytes(ip);
  let out = '';
  for (let i = 0; i < b.length; i += 4) {
    out += hex((b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0, 8);
  }
  return out;
}

export interface KernelSocket {
  slot: number;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  state: number;
  txQueue: number;
  rxQueue: number;
  uid: number;
  inode: number;
  refs: number;
  drops: number;
}

export const UDP_HEADER =
  '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops             ';
export const UDP6_HEADER =
  '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops';

/** One line as /proc/net/udp (IPv4 addresses) or /proc/net/udp6 prints it. */
export function kernelUdpLine(s: KernelSocket): string {
  return (
    `${String(s.slot).padStart(5)}: ${kernelHexAddress(s.localIp)}:${hex(s.localPort, 4)} ` +
    `${kernelHexAddress(s.remoteIp)}:${hex(s.remotePort, 4)} ${hex(s.state, 2)} ` +
    `${hex(s.txQueue, 8)}:${hex(s.rxQueue, 8)} 00:00000000 00000000 ${String(s.uid).padStart(5)} ` +
    `${String(0).padStart(8)} ${s.inode} ${s.refs} 0000000000000000 ${s.drops}`
  );
}

/** The full form the kernel's %pI6 prints in nf_conntrack (no zero compression). */
export function fullIpv6(ip: string): string {
  const words = parseIpv6(ip)!;
  return words.map((w) => w.toString(16).padStart(4, '0')).join(':');
}
