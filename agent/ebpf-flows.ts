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
import { keyRead, readKey } from './bpftrace-output.js';
import { type DrainedTuples, MAX_KEY_WORDS } from './drained-tuples.js';
import { keptObservation, type PeerObservation, refilledObservation } from './observation.js';
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

/** A key's words (see readKey) into `words`; returns how many (4 or 10), or 0 unless that is all of `key`. */
function keyWords(key: string, words: Float64Array): number {
  return readKey(key, 0, words) === key.length ? keyRead.width : 0;
}

/** A raw network-order 16-bit word read in host order, as a port number. */
function port(raw: number): number {
  return HOST_LE ? ((raw & 0xff) << 8) | (raw >> 8) : raw;
}

/**
 * The text of IPv4 words met lately: the same peers come back every drain,
 * and a new string per tuple and drain was most of a drain's garbage.
 * Bounded: starts over past MAX_REMEMBERED_V4.
 */
const v4Texts = new Map<number, string>();
const MAX_REMEMBERED_V4 = 65_536;

/** An IPv4 address from the 32-bit word the kernel read in host order. */
function ipv4(word: number): string {
  let text = v4Texts.get(word);
  if (text === undefined) {
    if (v4Texts.size >= MAX_REMEMBERED_V4) v4Texts.clear();
    text = ipv4Text(word);
    v4Texts.set(word, text);
  }
  return text;
}

/** The dotted quad of an IPv4 word read in host order. */
function ipv4Text(word: number): string {
  return HOST_LE
    ? `${word & 0xff}.${(word >>> 8) & 0xff}.${(word >>> 16) & 0xff}.${word >>> 24}`
    : `${word >>> 24}.${(word >>> 16) & 0xff}.${(word >>> 8) & 0xff}.${word & 0xff}`;
}

/** Appends the two 16-bit address words in memory order of a 32-bit word read in host order. */
function pushWords16(word: number, out: number[]): void {
  if (HOST_LE) {
    out.push(
      ((word & 0xff) << 8) | ((word >>> 8) & 0xff),
      (((word >>> 16) & 0xff) << 8) | (word >>> 24),
    );
  } else {
    out.push(word >>> 16, word & 0xffff);
  }
}

/** An IPv6 address from its two u64 halves (bytes 0..7, 8..15), each as [hi, lo] 32-bit words. */
function ipv6(w: Float64Array, at: number): string {
  const words: number[] = [];
  // Bytes 0..3 of a raw 64-bit half are its low word, as the program reads it (see udp-flows.bt).
  pushWords16(w[at + 1]!, words);
  pushWords16(w[at]!, words);
  pushWords16(w[at + 3]!, words);
  pushWords16(w[at + 2]!, words);
  return formatIpWords(words);
}

/** The program's direction codes (meta bits 33..34); 3 is never printed. */
const DIRS: readonly (PacketTuple['dir'] | undefined)[] = ['in', 'out', 'lo', undefined];

/**
 * Decodes a key (see agent/ebpf/udp-flows.bt), or null when malformed: IPv4
 * `meta,addresses` (source word << 32 | destination word), IPv6
 * `meta,srcHi,srcLo,dstHi,dstLo`.
 */
export function decodeTupleKey(key: string): PacketTuple | null {
  const t = scratchTuple();
  const count = keyWords(key, keyScratch);
  return count > 0 && decodeWordsInto(keyScratch, count, t)
    ? { dir: t.dir, srcIp: t.srcIp, srcPort: t.srcPort, dstIp: t.dstIp, dstPort: t.dstPort }
    : null;
}

const scratchTuple = (): PacketTuple => ({
  dir: 'in',
  srcIp: '',
  srcPort: 0,
  dstIp: '',
  dstPort: 0,
});

/** The words of the key being decoded, one array for every key. */
const keyScratch = new Float64Array(MAX_KEY_WORDS);

/** Decodes a key's `count` words `w` into `out`, no object of its own; false when malformed. */
function decodeWordsInto(w: Float64Array, count: number, out: PacketTuple): boolean {
  const metaHi = w[0]!;
  const metaLo = w[1]!;
  const dir = DIRS[(metaHi >>> 1) & 3];
  if (metaHi >>> 3 !== 0 || !dir) return false;
  const v6 = (metaHi & 1) === 1;
  // The family is in both the key's shape and its meta bit: they must agree.
  if (v6 !== (count === 10)) return false;
  out.dir = dir;
  out.srcPort = port(metaLo >>> 16);
  out.dstPort = port(metaLo & 0xffff);
  if (v6) {
    out.srcIp = ipv6(w, 2);
    out.dstIp = ipv6(w, 6);
  } else {
    out.srcIp = ipv4(w[2]!);
    out.dstIp = ipv4(w[3]!);
  }
  return true;
}

/** What turning one batch into observations left out. */
export interface ClassifyStats {
  /** Packets to or from ports no local socket owns (not clients). */
  unownedPackets: number;
  /** Keys that did not decode (a program/agent mismatch). */
  badKeys: number;
}

/** How to turn tuples into observations. */
export interface AttributionOptions {
  sampleRate: number;
  /** Kernel ns to epoch ms. */
  toEpochMs: (ns: number) => number;
  stats?: ClassifyStats;
}

/**
 * Hands each drained tuple to `visit` as an observation of the flow of its
 * local socket (a loopback tuple twice, once for each end), counters scaled
 * by `sampleRate`. The observation is one object refilled for every call:
 * nothing is kept per tuple or per flow, and the flow table adds up what a
 * flow's tuples bring (its packets in and out come in separate tuples).
 */
export function visitTupleObservations(
  tuples: DrainedTuples,
  sockets: SocketIndex,
  options: AttributionOptions,
  visit: (o: PeerObservation) => void,
): void {
  const scale = options.sampleRate;
  const from = { ip: '', port: 0 };
  const o = refilledObservation('ebpf');
  if (scale > 1) o.sampleRate = scale;
  /** Credits row r's counters to the flow of its local end (`inbound`: the receiver's). */
  const credit = (r: number, tuple: PacketTuple, inbound: boolean) => {
    from.ip = inbound ? tuple.srcIp : tuple.dstIp;
    from.port = inbound ? tuple.srcPort : tuple.dstPort;
    const socket = sockets.find(
      inbound ? tuple.dstIp : tuple.srcIp,
      inbound ? tuple.dstPort : tuple.srcPort,
      from,
    );
    const packets = tuples.packets(r) * scale;
    if (!socket) {
      if (options.stats) options.stats.unownedPackets += packets;
      return;
    }
    const bytes = tuples.bytes(r) * scale;
    const last = options.toEpochMs(tuples.lastNs(r));
    const firstNs = tuples.firstNs(r);
    o.localIp = socket.localIp;
    o.localPort = socket.localPort;
    o.remoteIp = from.ip;
    o.remotePort = from.port;
    o.pktsIn = inbound ? packets : 0;
    o.bytesIn = inbound ? bytes : 0;
    o.pktsOut = inbound ? 0 : packets;
    o.bytesOut = inbound ? 0 : bytes;
    o.lastSeen = last;
    o.firstSeen = Math.min(firstNs > 0 ? options.toEpochMs(firstNs) : last, last);
    o.pid = socket.pid;
    o.process = socket.process;
    visit(o);
  };
  const tuple = scratchTuple();
  for (let r = 0; r < tuples.size; r++) {
    if (!decodeWordsInto(keyScratch, tuples.keyInto(r, keyScratch), tuple)) {
      if (options.stats) options.stats.badKeys++;
      continue;
    }
    // A loopback datagram is counted once in the kernel: both its ends are local sockets.
    if (tuple.dir !== 'out') credit(r, tuple, true);
    if (tuple.dir !== 'in') credit(r, tuple, false);
  }
}

/**
 * The drained tuples as one observation per flow (its tuples' counters
 * added, first and last seen widened), in the order flows were first met.
 */
export function tuplesToObservations(
  tuples: DrainedTuples,
  sockets: SocketIndex,
  options: AttributionOptions,
): PeerObservation[] {
  const flows = new Map<string, PeerObservation>();
  visitTupleObservations(tuples, sockets, options, (o) => {
    const key = `${o.localIp}|${o.localPort}|${o.remoteIp}|${o.remotePort}|${o.pid ?? ''}`;
    const flow = flows.get(key);
    if (!flow) {
      flows.set(key, keptObservation(o));
      return;
    }
    flow.pktsIn += o.pktsIn;
    flow.bytesIn += o.bytesIn;
    flow.pktsOut += o.pktsOut;
    flow.bytesOut += o.bytesOut;
    if (o.firstSeen !== undefined && o.firstSeen < (flow.firstSeen ?? o.firstSeen))
      flow.firstSeen = o.firstSeen;
    if (o.lastSeen > flow.lastSeen) flow.lastSeen = o.lastSeen;
  });
  return [...flows.values()];
}
