/**
 * Parser and reader for the kernel's UDP socket tables, /proc/net/udp and
 * /proc/net/udp6.
 *
 * Each line is one socket, printed by the kernel as
 *   `sl: LLLLLLLL:PPPP RRRRRRRR:PPPP st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops`
 * Addresses are the raw in-memory bytes of the address printed as 32-bit words
 * in host byte order (so 127.0.0.1 is `0100007F` on little-endian hosts);
 * IPv6 is four such words in network order. Ports, state and queues are hex;
 * uid, inode, ref and drops are decimal.
 */
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { formatIpWords } from '../contract/ip-address.js';

/** Socket state 01: the socket is connected to one peer (`ss` prints ESTAB). */
export const UDP_STATE_ESTABLISHED = 0x01;
/** Socket state 07: unconnected (`ss` prints UNCONN). */
export const UDP_STATE_UNCONNECTED = 0x07;

/** One UDP socket as the kernel lists it. Addresses are canonical (contract/ip-address.ts). */
export interface UdpSocketEntry {
  family: 4 | 6;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  /** Raw kernel state: 0x01 connected, 0x07 unconnected. */
  state: number;
  /** True when the socket is connected to one peer (state 01). */
  connected: boolean;
  /** Bytes queued to send / waiting to be read (what `ss` shows as Send-Q / Recv-Q). */
  txQueue: number;
  rxQueue: number;
  uid: number;
  inode: number;
  refs: number;
  /** Datagrams the kernel dropped on this socket since it was created. */
  drops: number;
}

/** A malformed line of a /proc text, with where it was. */
export interface LineError {
  path: string;
  /** 1-based line number in the file (the header is line 1). */
  line: number;
  reason: string;
}

/** Renders a line error the way a person acts on it: `/proc/net/udp line 7: bad address "zz:01"`. */
export function formatLineError(e: LineError): string {
  return `${e.path} line ${e.line}: ${e.reason}`;
}

/** What parsing one /proc/net/udp{,6} text yields. */
export interface ProcNetUdpParse {
  sockets: UdpSocketEntry[];
  errors: LineError[];
}

const LITTLE_ENDIAN = endianness() === 'LE';
const HEX_RE = /^[0-9A-Fa-f]+$/;
const DEC_RE = /^[0-9]+$/;
// The kernel prints 13 fields; later kernels may append more, so more is fine.
const MIN_FIELDS = 13;

/** Splits on runs of spaces without a regex (the hot loop of every /proc reader). */
export function splitFields(line: string): string[] {
  const out: string[] = [];
  const n = line.length;
  let i = 0;
  while (i < n) {
    while (i < n && (line.charCodeAt(i) === 32 || line.charCodeAt(i) === 9)) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && line.charCodeAt(i) !== 32 && line.charCodeAt(i) !== 9) i++;
    out.push(line.slice(start, i));
  }
  return out;
}

function hexNumber(text: string, maxDigits: number): number | null {
  if (text.length === 0 || text.length > maxDigits || !HEX_RE.test(text)) return null;
  return Number.parseInt(text, 16);
}

function decNumber(text: string): number | null {
  if (text.length === 0 || text.length > 15 || !DEC_RE.test(text)) return null;
  return Number(text);
}

/** Reads one 32-bit word printed by the kernel as host-order hex into its 4 memory bytes. */
function wordBytes(hex: string, out: number[]): boolean {
  const v = hexNumber(hex, 8);
  if (v === null || hex.length !== 8) return false;
  if (LITTLE_ENDIAN) out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
  else out.push(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  return true;
}

/** Decodes a kernel hex address (8 digits IPv4, 32 digits IPv6) to canonical text, or null. */
export function decodeProcAddress(hex: string, family: 4 | 6): string | null {
  const bytes: number[] = [];
  if (family === 4) {
    if (hex.length !== 8 || !wordBytes(hex, bytes)) return null;
    return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  }
  if (hex.length !== 32) return null;
  for (let w = 0; w < 4; w++) if (!wordBytes(hex.slice(w * 8, w * 8 + 8), bytes)) return null;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  return formatIpWords(words);
}

/** Splits `ADDR:PORT` into canonical address and port, caching decoded addresses. */
function decodeEndpoint(
  text: string,
  family: 4 | 6,
  cache: Map<string, string>,
): { ip: string; port: number } | null {
  const colon = text.indexOf(':');
  if (colon < 0 || colon !== text.lastIndexOf(':')) return null;
  const hex = text.slice(0, colon);
  const port = hexNumber(text.slice(colon + 1), 4);
  if (port === null) return null;
  let ip = cache.get(hex);
  if (ip === undefined) {
    const decoded = decodeProcAddress(hex, family);
    if (decoded === null) return null;
    ip = decoded;
    cache.set(hex, ip);
  }
  return { ip, port };
}

function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
}

/** Parses one socket line, returning the entry or the reason it is malformed. */
function parseLine(
  line: string,
  family: 4 | 6,
  cache: Map<string, string>,
): UdpSocketEntry | string {
  const f = splitFields(line);
  if (f.length < MIN_FIELDS) return `expected ${MIN_FIELDS} fields, got ${f.length}`;
  if (!f[0]!.endsWith(':') || decNumber(f[0]!.slice(0, -1)) === null) {
    return `bad slot ${quote(f[0]!)}`;
  }
  const local = decodeEndpoint(f[1]!, family, cache);
  if (!local) return `bad address ${quote(f[1]!)}`;
  const remote = decodeEndpoint(f[2]!, family, cache);
  if (!remote) return `bad address ${quote(f[2]!)}`;
  const state = hexNumber(f[3]!, 2);
  if (state === null) return `bad state ${quote(f[3]!)}`;
  const queues = f[4]!;
  const qColon = queues.indexOf(':');
  const txQueue = qColon > 0 ? hexNumber(queues.slice(0, qColon), 8) : null;
  const rxQueue = qColon > 0 ? hexNumber(queues.slice(qColon + 1), 8) : null;
  if (txQueue === null || rxQueue === null) return `bad queues ${quote(queues)}`;
  const uid = decNumber(f[7]!);
  if (uid === null) return `bad uid ${quote(f[7]!)}`;
  const inode = decNumber(f[9]!);
  if (inode === null) return `bad inode ${quote(f[9]!)}`;
  const refs = decNumber(f[10]!);
  if (refs === null) return `bad ref count ${quote(f[10]!)}`;
  const drops = decNumber(f[12]!);
  if (drops === null) return `bad drops ${quote(f[12]!)}`;
  return {
    family,
    localIp: local.ip,
    localPort: local.port,
    remoteIp: remote.ip,
    remotePort: remote.port,
    state,
    connected: state === UDP_STATE_ESTABLISHED,
    txQueue,
    rxQueue,
    uid,
    inode,
    refs,
    drops,
  };
}

/**
 * Parses the text of /proc/net/udp (family 4) or /proc/net/udp6 (family 6).
 * Malformed lines are skipped and reported with their line number; never throws.
 */
export function parseProcNetUdp(
  text: string,
  opts: { family: 4 | 6; path?: string },
): ProcNetUdpParse {
  const path = opts.path ?? (opts.family === 4 ? '/proc/net/udp' : '/proc/net/udp6');
  const sockets: UdpSocketEntry[] = [];
  const errors: LineError[] = [];
  const cache = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    // Blank lines (the trailing newline) and the column header carry no socket.
    let k = 0;
    while (k < line.length && line.charCodeAt(k) === 32) k++;
    if (k === line.length || line.startsWith('sl ', k)) continue;
    const parsed = parseLine(line, opts.family, cache);
    if (typeof parsed === 'string') errors.push({ path, line: i + 1, reason: parsed });
    else sockets.push(parsed);
  }
  return { sockets, errors };
}

/** Where to read the tables: `procRoot` (default /proc), or `netDir` for e.g. /proc/<pid>/net. */
export interface ProcNetUdpOptions {
  procRoot?: string;
  /** Directory holding udp and udp6; defaults to `${procRoot}/net`. Use /proc/<pid>/net for another namespace. */
  netDir?: string;
}

/** Reads and parses /proc/net/udp and /proc/net/udp6 (a missing udp6 means IPv6 is off). */
export async function readProcNetUdp(opts: ProcNetUdpOptions = {}): Promise<ProcNetUdpParse> {
  const netDir = opts.netDir ?? `${opts.procRoot ?? '/proc'}/net`;
  const read = async (name: string, family: 4 | 6): Promise<ProcNetUdpParse> => {
    const path = `${netDir}/${name}`;
    try {
      return parseProcNetUdp(await readFile(path, 'latin1'), { family, path });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (family === 6 && code === 'ENOENT') return { sockets: [], errors: [] };
      return { sockets: [], errors: [{ path, line: 0, reason: `cannot read: ${code ?? err}` }] };
    }
  };
  const [v4, v6] = await Promise.all([read('udp', 4), read('udp6', 6)]);
  return { sockets: v4.sockets.concat(v6.sockets), errors: v4.errors.concat(v6.errors) };
}
