/**
 * From the eBPF program's per-tuple counters to flows: decodes each key into
 * addresses and ports, and decides which side is ours.
 *
 * Direction rule: a datagram received for a local UDP socket (a listener or
 * a connected socket /proc lists; the kernel's own lookup order, see
 * socket-index.ts) is that flow's packet in; a datagram sent from one is its
 * packet out. The flow is keyed by the socket's own bound address (a wildcard
 * stays a wildcard, as conntrack flows are), so both sources name one flow
 * alike. Datagrams to ports no socket owns are not clients: they are counted
 * as unowned and dropped.
 */
import { endianness } from 'node:os';
import { formatIpWords } from '../contract/ip-address.js';
import type { RawTuple } from './bpftrace-output.js';
import type { PeerObservation } from './observation.js';
import type { SocketIndex } from './socket-index.js';

/**
 * A decoded tuple. `lo`: a datagram between two sockets of the namespace,
 * counted once at receive on loopback; it is the sender's packet out and the
 * receiver's packet in.
 */
export interface PacketTuple {
  dir: 'in' | 'out' | 'lo';
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
}

const HOST_LE = endianness() === 'LE';

/** The memory bytes of a 32-bit word the kernel read in host order. */
function wordBytes(word: bigint, out: Buffer, at: number): void {
  const n = Number(word & 0xffffffffn);
  if (HOST_LE) out.writeUInt32LE(n, at);
  else out.writeUInt32BE(n, at);
}

/** A raw network-order 16-bit word read in host order, as a port number. */
function port(raw: number): number {
  return HOST_LE ? ((raw & 0xff) << 8) | (raw >> 8) : raw;
}

function address(hi: bigint, lo: bigint, v6: boolean): string {
  if (!v6) {
    const b = Buffer.alloc(4);
    wordBytes(hi, b, 0);
    return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  }
  const b = Buffer.alloc(16);
  wordBytes(hi, b, 0);
  wordBytes(hi >> 32n, b, 4);
  wordBytes(lo, b, 8);
  wordBytes(lo >> 32n, b, 12);
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i));
  return formatIpWords(words);
}

const U64_MAX = (1n << 64n) - 1n;
/** The program's direction codes (meta bits 33..34); 3 is never printed. */
const DIRS: readonly (PacketTuple['dir'] | undefined)[] = ['in', 'out', 'lo', undefined];

/**
 * Decodes a key (see agent/ebpf/udp-flows.bt), or null when malformed: IPv4
 * `meta,addresses` (source word << 32 | destination word), IPv6
 * `meta,srcHi,srcLo,dstHi,dstLo`.
 */
export function decodeTupleKey(key: string): PacketTuple | null {
  const parts = key.split(',');
  if (parts.length !== 2 && parts.length !== 5) return null;
  const n: bigint[] = [];
  for (const p of parts) {
    if (!/^\d{1,20}$/.test(p)) return null;
    const v = BigInt(p);
    if (v > U64_MAX) return null;
    n.push(v);
  }
  const meta = n[0]!;
  const dir = DIRS[Number((meta >> 33n) & 3n)];
  if (meta >> 35n !== 0n || !dir) return null;
  const v6 = ((meta >> 32n) & 1n) === 1n;
  // The family is in both the key's shape and its meta bit: they must agree.
  if (v6 !== (parts.length === 5)) return null;
  const [ah, al, bh, bl] = v6
    ? [n[1]!, n[2]!, n[3]!, n[4]!]
    : [n[1]! >> 32n, 0n, n[1]! & 0xffffffffn, 0n];
  return {
    dir,
    srcIp: address(ah, al, v6),
    srcPort: port(Number((meta >> 16n) & 0xffffn)),
    dstIp: address(bh, bl, v6),
    dstPort: port(Number(meta & 0xffffn)),
  };
}

/**
 * decodeTupleKey behind a bounded cache: a busy flow's tuples print the same
 * keys every drain, so each is decoded once instead of once a second. The
 * cache starts over once it holds `max` keys.
 */
export function cachedTupleDecoder(max: number): (key: string) => PacketTuple | null {
  const cache = new Map<string, PacketTuple | null>();
  return (key) => {
    let t = cache.get(key);
    if (t === undefined) {
      if (cache.size >= max) cache.clear();
      t = decodeTupleKey(key);
      cache.set(key, t);
    }
    return t;
  };
}

/** What turning one batch into observations left out. */
export interface ClassifyStats {
  /** Packets to or from ports no local socket owns (not clients). */
  unownedPackets: number;
  /** Keys that did not decode (a program/agent mismatch). */
  badKeys: number;
}

/**
 * Turns a batch's tuples into one observation per flow, counters scaled by
 * `sampleRate`; `toEpochMs` maps kernel ns to epoch ms.
 */
export function tuplesToObservations(
  tuples: readonly RawTuple[],
  sockets: SocketIndex,
  options: {
    sampleRate: number;
    toEpochMs: (ns: number) => number;
    stats?: ClassifyStats;
    /** How keys are decoded (default decodeTupleKey; the source passes a cachedTupleDecoder). */
    decode?: (key: string) => PacketTuple | null;
  },
): PeerObservation[] {
  const flows = new Map<string, PeerObservation>();
  const scale = options.sampleRate;
  const decode = options.decode ?? decodeTupleKey;
  /** Credits a tuple's counters to the flow of its local end (`inbound`: the receiver's). */
  const credit = (t: RawTuple, tuple: PacketTuple, inbound: boolean) => {
    const localIp = inbound ? tuple.dstIp : tuple.srcIp;
    const localPort = inbound ? tuple.dstPort : tuple.srcPort;
    const remoteIp = inbound ? tuple.srcIp : tuple.dstIp;
    const remotePort = inbound ? tuple.srcPort : tuple.dstPort;
    const socket = sockets.find(localIp, localPort, { ip: remoteIp, port: remotePort });
    if (!socket) {
      if (options.stats) options.stats.unownedPackets += t.packets * scale;
      return;
    }
    const key = `${socket.localIp}|${socket.localPort}|${remoteIp}|${remotePort}`;
    const last = options.toEpochMs(t.lastNs);
    const first = Math.min(t.firstNs > 0 ? options.toEpochMs(t.firstNs) : last, last);
    let obs = flows.get(key);
    if (!obs) {
      obs = {
        source: 'ebpf',
        localIp: socket.localIp,
        localPort: socket.localPort,
        remoteIp,
        remotePort,
        pktsIn: 0,
        bytesIn: 0,
        pktsOut: 0,
        bytesOut: 0,
        firstSeen: first,
        lastSeen: last,
      };
      if (scale > 1) obs.sampleRate = scale;
      if (socket.pid !== undefined) obs.pid = socket.pid;
      if (socket.process !== undefined) obs.process = socket.process;
      flows.set(key, obs);
    }
    if (inbound) {
      obs.pktsIn += t.packets * scale;
      obs.bytesIn += t.bytes * scale;
    } else {
      obs.pktsOut += t.packets * scale;
      obs.bytesOut += t.bytes * scale;
    }
    if (first < (obs.firstSeen ?? first)) obs.firstSeen = first;
    if (last > obs.lastSeen) obs.lastSeen = last;
  };
  for (const t of tuples) {
    const tuple = decode(t.key);
    if (!tuple) {
      if (options.stats) options.stats.badKeys++;
      continue;
    }
    // A loopback datagram is counted once in the kernel: both its ends are local sockets.
    if (tuple.dir !== 'out') credit(t, tuple, true);
    if (tuple.dir !== 'in') credit(t, tuple, false);
  }
  return [...flows.values()];
}
