/**
 * Reads `ss -uanpH[m]` output into comparable rows, normalizing its address
 * spellings (`*`, `[::]`, `[::ffff:1.2.3.4]`, `%iface`) to canonical form.
 */
import { execFileSync } from 'node:child_process';
import { normalizeIp } from '../../../contract/ip-address.js';

export interface SsRow {
  state: string;
  recvQ: number;
  sendQ: number;
  localIp: string;
  localPort: number;
  peerIp: string;
  peerPort: number;
  users: Array<{ comm: string; pid: number; fd: number }>;
  /** skmem d (drops), with -m. */
  drops?: number;
}

function endpoint(text: string): { ip: string; port: number } {
  const colon = text.lastIndexOf(':');
  let host = text.slice(0, colon);
  const port = text.slice(colon + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const pct = host.indexOf('%');
  if (pct >= 0) host = host.slice(0, pct);
  // ss prints the IPv6 wildcard as `*` (IPv4's as 0.0.0.0).
  const ip = host === '*' ? '::' : normalizeIp(host);
  if (ip === null) throw new Error(`ss printed an address we cannot read: ${text}`);
  return { ip, port: port === '*' ? 0 : Number(port) };
}

/** Runs `ss -uanpH` (plus `-m` for skmem) and parses every row. */
export function readSs(withMem = false): SsRow[] {
  const out = execFileSync('ss', withMem ? ['-uanpHm'] : ['-uanpH'], { encoding: 'utf8' });
  const rows: SsRow[] = [];
  for (const line of out.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('\t') || line.startsWith(' ')) {
      const m = /skmem:\(.*\bd(\d+)\)/.exec(line);
      if (m && rows.length > 0) rows[rows.length - 1]!.drops = Number(m[1]);
      continue;
    }
    const f = line.trim().split(/\s+/);
    const local = endpoint(f[3]!);
    const peer = endpoint(f[4]!);
    const users = [
      ...f
        .slice(5)
        .join(' ')
        .matchAll(/\("([^"]*)",pid=(\d+),fd=(\d+)\)/g),
    ].map((m) => ({ comm: m[1]!, pid: Number(m[2]), fd: Number(m[3]) }));
    rows.push({
      state: f[0]!,
      recvQ: Number(f[1]),
      sendQ: Number(f[2]),
      localIp: local.ip,
      localPort: local.port,
      peerIp: peer.ip,
      peerPort: peer.port,
      users,
    });
  }
  return rows;
}
