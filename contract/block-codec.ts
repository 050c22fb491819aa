/**
 * Wire format v2: a sealed block part as deterministic bytes, and back.
 *
 * Record = magic `UWB` + version byte 2 + a brotli stream (quality 5 from
 * agents, 11 for roll-ups; see BlockQuality) of a columnar body: the header,
 * then one column per field over the endpoints in canonical order (client
 * IPs front-coded, numbers as varints, byte counters as residuals against
 * the previous endpoint's datagram size, repeated strings and local
 * endpoints as first-use dictionaries). docs/blocks.md gives the layout byte
 * by byte. The same content always gives the same body, and the decoder
 * only accepts a body in that one canonical form, so equal content means
 * equal body and the store can compare blocks by hash.
 *
 * The decoder never throws: untrusted bytes get a reason naming what and
 * where (`endpoint 17: port 70000 out of range`). The store's readers decode
 * with `{ stored: true }`: the same bounds, without the canonical-form check
 * and without re-parsing the address text it made itself (several times
 * faster; the aggregate function checked both before storing).
 */
import { createHash } from 'node:crypto';
import { brotliCompressSync, brotliDecompressSync, constants as zlib } from 'node:zlib';
import {
  BLOCK_VERSION,
  type Block,
  type BlockEndpoint,
  type BlockOwner,
  MAX_BLOCK_COUNTER,
  MAX_INFLATED_PART_BYTES,
  MAX_PART_BYTES,
  MAX_PART_ENDPOINTS,
  MAX_PARTS,
} from './block.js';
import { formatIpWords, ipv4Number, parseIpv6 } from './ip-address.js';
import { FLOW_SOURCES, type FlowSource, flowSourceIndex } from './wire.js';

/** The first three bytes of every v2 record: ASCII `UWB`. */
export const BLOCK_MAGIC = Buffer.from('UWB', 'ascii');

/** Bytes before the compressed stream: magic and version. */
const PREFIX_BYTES = BLOCK_MAGIC.length + 1;

/** A block without its part numbering and endpoints: what all parts of one block share. */
export type BlockHead = Omit<Block, 'part' | 'parts' | 'endpoints'>;

/** The outcome of decoding untrusted bytes. */
export type DecodedBlock = { ok: true; block: Block } | { ok: false; reason: string };

/** Bounds of names and free text, the same as the v1 line format's. */
const NAME_LIMITS = { agentId: 128, host: 253, service: 128 } as const;
/** Longest process name and client id (free text: spaces allowed, control characters not). */
const MAX_TEXT = 256;
/** Largest pid Linux hands out. */
const MAX_PID = 4_194_304;
const MAX_SAMPLE_RATE = 1_000_000;
/** Epoch minutes of 2000-01-01 and 2100-01-01, the same window as the v1 timestamps. */
const MIN_MINUTE = 15_778_080;
const MAX_MINUTE = 68_374_080;

const NAME_RE = /^[^\s\u0000-\u001f]+$/;
const TEXT_RE = /^[^\u0000-\u001f\u007f]+$/;
const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Owner flags in the owner dictionary. */
const OWNER_PID = 1;
const OWNER_PROCESS = 2;
/** Header flags. */
const HEAD_SOCKET = 1;
/** Bit of an IP column head byte marking IPv6; the low five bits are the shared prefix. */
const IP_V6 = 0x80;

// ---------------------------------------------------------------------------
// IP addresses as bytes

/**
 * Writes the bytes of `ip` into `out` (room for 16); returns 4 or 16, or 0
 * when `ip` is not a canonical address. Sealing asks per endpoint, so IPv4
 * first from one scan (what normalizeIp also tries first), and no array.
 */
function addressInto(ip: string, out: Uint8Array): number {
  const v4 = ipv4Number(ip);
  if (v4 >= 0) {
    out[0] = v4 >>> 24;
    out[1] = (v4 >>> 16) & 0xff;
    out[2] = (v4 >>> 8) & 0xff;
    out[3] = v4 & 0xff;
    return 4;
  }
  // One parse: canonical when the words format back to the same text.
  const words = parseIpv6(ip);
  if (words === null || formatIpWords(words) !== ip) return 0;
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return 16;
}

/** The bytes of a canonical address (4 or 16), or null when it is not canonical. */
function ipBytes(ip: string): Uint8Array | null {
  const out = new Uint8Array(16);
  const length = addressInto(ip, out);
  return length === 0 ? null : out.subarray(0, length);
}

/** Whether `ip` is a canonical address (ipBytes would give its bytes), without building them. */
function isCanonical(ip: string): boolean {
  return ipv4Number(ip) >= 0 || ipBytes(ip) !== null;
}

/** The canonical text of 4 or 16 address bytes, or null for IPv6 bytes that hold an IPv4-mapped address. */
function ipText(bytes: Uint8Array): string | null {
  if (bytes.length === 4) return bytes.join('.');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  const text = formatIpWords(words);
  // A mapped address is written as IPv4 in canonical form; as IPv6 bytes it has two spellings.
  return text.includes(':') ? text : null;
}

/** A string that sorts like the address: IPv4 before IPv6, then by bytes. */
function ipSortKey(ip: string): string {
  const v4 = ipv4Number(ip);
  // The same text as the bytes' hex below, without building them.
  if (v4 >= 0) return `4${v4.toString(16).padStart(8, '0')}`;
  const bytes = ipBytes(ip);
  if (!bytes) return `9${ip}`;
  return (bytes.length === 4 ? '4' : '6') + Buffer.from(bytes).toString('hex');
}

const cmp = (a: string | number, b: string | number): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * ipSortKey's order of two addresses from their IPv4 numbers (ipv4Number,
 * -1 for others): IPv4 first, by number; two others by their text keys
 * (given only for them).
 */
function compareAddressKeys(
  va: number,
  vb: number,
  ta: string | undefined,
  tb: string | undefined,
): number {
  if (va >= 0 && vb >= 0) return va - vb;
  if (va >= 0) return -1;
  if (vb >= 0) return 1;
  return cmp(ta!, tb!);
}

/** ipSortKey's order of two addresses, building no key for IPv4 ones. */
function compareIps(a: string, b: string): number {
  const va = ipv4Number(a);
  const vb = ipv4Number(b);
  return compareAddressKeys(
    va,
    vb,
    va < 0 ? ipSortKey(a) : undefined,
    vb < 0 ? ipSortKey(b) : undefined,
  );
}

/** The canonical endpoint order: client ip bytes, port, local ip bytes, local port. */
export function compareEndpoints(a: BlockEndpoint, b: BlockEndpoint): number {
  return (
    compareIps(a.ip, b.ip) ||
    a.port - b.port ||
    compareIps(a.localIp, b.localIp) ||
    a.localPort - b.localPort
  );
}

// ---------------------------------------------------------------------------
// Validation, shared by the encoder (a violation is a bug: RangeError) and
// the decoder (a violation is bad input: a reason)

const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

function nameProblem(what: string, value: unknown, max: number): string | null {
  if (typeof value !== 'string' || value.length < 1 || value.length > max) {
    return `${what} must be 1..${max} characters`;
  }
  if (!NAME_RE.test(value) || LONE_SURROGATE_RE.test(value)) {
    return `${what} ${JSON.stringify(value.slice(0, 64))} has spaces or control characters`;
  }
  return null;
}

function textProblem(what: string, value: string): string | null {
  if (value.length < 1 || value.length > MAX_TEXT)
    return `${what} must be 1..${MAX_TEXT} characters`;
  if (!TEXT_RE.test(value) || LONE_SURROGATE_RE.test(value)) {
    return `${what} ${JSON.stringify(value.slice(0, 64))} has control characters`;
  }
  return null;
}

const COUNTERS = ['pktsIn', 'bytesIn', 'pktsOut', 'bytesOut'] as const;

function endpointProblem(e: BlockEndpoint): string | null {
  if (!isCanonical(e.ip))
    return `ip ${JSON.stringify(String(e.ip).slice(0, 64))} is not a canonical address`;
  if (!isInt(e.port, 0, 65_535)) return `port ${e.port} out of range`;
  if (!isCanonical(e.localIp)) {
    return `localIp ${JSON.stringify(String(e.localIp).slice(0, 64))} is not a canonical address`;
  }
  if (!isInt(e.localPort, 0, 65_535)) return `localPort ${e.localPort} out of range`;
  // Indexed: a for-of here made an iterator per endpoint.
  for (let k = 0; k < COUNTERS.length; k++) {
    const c = COUNTERS[k]!;
    if (!isInt(e[c], 0, MAX_BLOCK_COUNTER)) return `${c} ${e[c]} out of range`;
  }
  if (!isInt(e.firstSecond, 0, 59)) return `firstSecond ${e.firstSecond} out of range`;
  if (!isInt(e.lastSecond, 0, 59)) return `lastSecond ${e.lastSecond} out of range`;
  if (e.lastSecond < e.firstSecond) {
    return `lastSecond ${e.lastSecond} is before firstSecond ${e.firstSecond}`;
  }
  if (!FLOW_SOURCES.includes(e.source)) return `source ${JSON.stringify(e.source)} is unknown`;
  if (!isInt(e.sampleRate, 1, MAX_SAMPLE_RATE)) return `sampleRate ${e.sampleRate} out of range`;
  if (e.natFromIp !== undefined && !isCanonical(e.natFromIp)) {
    return `natFromIp ${JSON.stringify(String(e.natFromIp).slice(0, 64))} is not a canonical address`;
  }
  if (e.natFromPort !== undefined && !isInt(e.natFromPort, 0, 65_535)) {
    return `natFromPort ${e.natFromPort} out of range`;
  }
  if (e.owner !== undefined) {
    const { pid, process } = e.owner;
    if (pid === undefined && process === undefined) return 'owner has neither pid nor process';
    if (pid !== undefined && !isInt(pid, 0, MAX_PID)) return `owner pid ${pid} out of range`;
    if (process !== undefined) {
      const p =
        typeof process === 'string'
          ? textProblem('owner process', process)
          : 'owner process is not text';
      if (p) return p;
    }
  }
  if (e.clientId !== undefined) {
    const p =
      typeof e.clientId === 'string' ? textProblem('clientId', e.clientId) : 'clientId is not text';
    if (p) return p;
  }
  return null;
}

/** Why a block breaks the format's bounds, or null when it keeps them. */
export function blockProblem(block: Block): string | null {
  for (const [field, max] of Object.entries(NAME_LIMITS)) {
    const p = nameProblem(field, block[field as keyof typeof NAME_LIMITS], max);
    if (p) return p;
  }
  if (!isInt(block.minute, MIN_MINUTE, MAX_MINUTE)) return `minute ${block.minute} out of range`;
  if (!isInt(block.seq, 0, Number.MAX_SAFE_INTEGER)) return `seq ${block.seq} out of range`;
  if (!isInt(block.parts, 1, MAX_PARTS)) return `parts ${block.parts} out of range 1..${MAX_PARTS}`;
  if (!isInt(block.part, 0, block.parts - 1)) {
    return `part ${block.part} out of range 0..${block.parts - 1}`;
  }
  if (block.socket !== undefined) {
    if (!isInt(block.socket.rxQueueBytes, 0, MAX_BLOCK_COUNTER)) {
      return `socket rxQueueBytes ${block.socket.rxQueueBytes} out of range`;
    }
    if (!isInt(block.socket.drops, 0, MAX_BLOCK_COUNTER)) {
      return `socket drops ${block.socket.drops} out of range`;
    }
  }
  const n = block.endpoints.length;
  if (n > MAX_PART_ENDPOINTS) return `${n} endpoints, more than ${MAX_PART_ENDPOINTS}`;
  for (let i = 0; i < n; i++) {
    const e = block.endpoints[i]!;
    const p = endpointProblem(e);
    if (p) return `endpoint ${i}: ${p}`;
    const order = i > 0 ? compareEndpoints(block.endpoints[i - 1]!, e) : -1;
    if (order >= 0) {
      return order === 0
        ? `endpoint ${i}: duplicates endpoint ${i - 1}`
        : `endpoint ${i}: sorts before endpoint ${i - 1}`;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------
// Body serialization

/** A growable byte buffer. */
class ByteWriter {
  private buf = new Uint8Array(1024);
  length = 0;

  private room(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  byte(v: number): void {
    this.room(1);
    this.buf[this.length++] = v;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** Unsigned LEB128 of a safe integer (arithmetic, not bitwise: values exceed 32 bits). */
  varint(v: number): void {
    while (v >= 0x80) {
      this.byte((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.byte(v);
  }

  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.varint(b.length);
    this.bytes(b);
  }

  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/**
 * Indexes of each value in a first-use dictionary of its keys. Values come
 * in runs (sorted endpoints share a local side, an owner, a source): a value
 * `same` as the one before takes its index without building its key.
 */
function dictionary<T>(
  values: readonly T[],
  same: (a: T, b: T) => boolean,
  keyOf: (v: T) => string,
): { entries: T[]; index: number[] } {
  const seen = new Map<string, number>();
  const entries: T[] = [];
  const index = new Array<number>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (i > 0 && same(values[i - 1]!, v)) {
      index[i] = index[i - 1]!;
      continue;
    }
    const k = keyOf(v);
    let at = seen.get(k);
    if (at === undefined) {
      at = entries.length;
      seen.set(k, at);
      entries.push(v);
    }
    index[i] = at;
  }
  return { entries, index };
}

/** Bitmap of `has` over the endpoints, bit i of byte i>>3 (least significant first). */
function presence(eps: readonly BlockEndpoint[], has: (e: BlockEndpoint) => boolean): Uint8Array {
  const out = new Uint8Array(Math.ceil(eps.length / 8));
  for (let i = 0; i < eps.length; i++) if (has(eps[i]!)) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

function writeIp(w: ByteWriter, ip: string): void {
  const b = ipBytes(ip)!;
  w.byte(b.length === 4 ? 4 : 6);
  w.bytes(b);
}

const ownerKey = (o: BlockOwner): string => `${o.pid ?? ''}|${o.process ?? ''}`;

/** Signed to unsigned, small magnitudes small (arithmetic: values exceed 32 bits). */
const zigzag = (v: number): number => (v >= 0 ? 2 * v : -2 * v - 1);
const unzigzag = (v: number): number => (v % 2 === 0 ? v / 2 : -(v + 1) / 2);

/**
 * The byte counter endpoint i is coded against: its packets times the
 * previous endpoint's whole mean datagram size in that direction (0 for the
 * first). A service's datagrams are of similar sizes, so the residual is
 * small. Exact in doubles: the mean is floored, the product capped at
 * MAX_BLOCK_COUNTER before it can lose precision.
 */
function predictedBytes(eps: readonly BlockEndpoint[], i: number, dir: 'in' | 'out'): number {
  if (i === 0) return 0;
  const prev = eps[i - 1]!;
  const e = eps[i]!;
  // Fields by name, not a destructured triple: that ran the array iterator for every endpoint.
  const prevPkts = dir === 'in' ? prev.pktsIn : prev.pktsOut;
  if (prevPkts === 0) return 0;
  const prevBytes = dir === 'in' ? prev.bytesIn : prev.bytesOut;
  const pkts = dir === 'in' ? e.pktsIn : e.pktsOut;
  return Math.min(MAX_BLOCK_COUNTER, pkts * Math.floor(prevBytes / prevPkts));
}

/** Brotli window bits for a body: just large enough to hold it (10..24), so small parts stay small. */
const windowBits = (bytes: number): number =>
  Math.max(zlib.BROTLI_MIN_WINDOW_BITS, Math.min(24, Math.ceil(Math.log2(bytes + 1))));

/**
 * Brotli quality of a body, 0..11; the decoder reads every quality. 11 gives
 * the smallest bodies and costs about 50 µs an endpoint; 5 costs about 1 µs
 * for 3 to 9 % more bytes (bench: blocks).
 */
export type BlockQuality = number;
/** The smallest bodies: for parts built once and kept long (roll-ups), and the default. */
export const SMALLEST_BLOCK_QUALITY: BlockQuality = 11;
/**
 * Agents seal every host's minutes on the host's own CPU, once a minute per
 * service: at quality 11 brotli was most of the agent's CPU per flow.
 */
export const AGENT_BLOCK_QUALITY: BlockQuality = 5;

function checkQuality(quality: BlockQuality): void {
  if (!Number.isInteger(quality) || quality < 0 || quality > 11)
    throw new RangeError(`brotli quality ${quality} must be an integer 0..11`);
}

/** The compressed stream of a body: brotli at `quality`, the window sized to the body. */
function compressBody(body: Uint8Array, quality: BlockQuality): Buffer {
  checkQuality(quality);
  return brotliCompressSync(body, {
    params: {
      [zlib.BROTLI_PARAM_QUALITY]: quality,
      [zlib.BROTLI_PARAM_LGWIN]: windowBits(body.length),
      [zlib.BROTLI_PARAM_SIZE_HINT]: body.length,
    },
  });
}

/**
 * The most bytes brotli can turn `n` bytes into (incompressible input is
 * stored in meta-blocks: a few bytes of framing per 16 KiB and at the ends).
 */
const maxCompressedBytes = (n: number): number => n + 4 * Math.ceil(n / 16_384) + 8;

/** The uncompressed columnar body of a valid block. */
function serializeBody(block: Block): Uint8Array {
  const w = new ByteWriter();
  const eps = block.endpoints;
  const n = eps.length;
  w.string(block.agentId);
  w.string(block.host);
  w.string(block.service);
  w.varint(block.minute);
  w.varint(block.seq);
  w.varint(block.part);
  w.varint(block.parts);
  w.byte(block.socket ? HEAD_SOCKET : 0);
  if (block.socket) {
    w.varint(block.socket.rxQueueBytes);
    w.varint(block.socket.drops);
  }
  w.varint(n);

  // Client IPs, front-coded: a head byte each (family, shared prefix with the previous), then the rest.
  // The bytes go through two scratch arrays: an array per address was most of the encoder's garbage.
  const rest = new ByteWriter();
  let cur = new Uint8Array(16);
  let prev = new Uint8Array(16);
  let prevLength = 0;
  for (const e of eps) {
    const length = addressInto(e.ip, cur);
    let shared = 0;
    if (prevLength === length) {
      while (shared < length && prev[shared] === cur[shared]) shared++;
    }
    w.byte((length === 16 ? IP_V6 : 0) | shared);
    for (let k = shared; k < length; k++) rest.byte(cur[k]!);
    const was = prev;
    prev = cur;
    cur = was;
    prevLength = length;
  }
  w.bytes(rest.result());

  // Ports: the first port of an IP as is, later ones (sorted, same IP) as the gap to the previous.
  for (let i = 0; i < n; i++) {
    const samePrevIp = i > 0 && eps[i - 1]!.ip === eps[i]!.ip;
    w.varint(samePrevIp ? eps[i]!.port - eps[i - 1]!.port : eps[i]!.port);
  }

  // Local endpoints: a dictionary, then an index each when there is more than one.
  const locals = dictionary(
    eps,
    (a, b) => a.localIp === b.localIp && a.localPort === b.localPort,
    (e) => `${e.localIp}|${e.localPort}`,
  );
  w.varint(locals.entries.length);
  for (const e of locals.entries) {
    writeIp(w, e.localIp);
    w.varint(e.localPort);
  }
  if (locals.entries.length > 1) for (const i of locals.index) w.varint(i);

  const sources = dictionary(
    eps,
    (a, b) => a.source === b.source,
    (e) => e.source,
  );
  w.varint(sources.entries.length);
  for (const e of sources.entries) w.string(e.source);
  if (sources.entries.length > 1) for (const i of sources.index) w.varint(i);

  for (const e of eps) w.varint(e.sampleRate);
  for (const e of eps) w.varint(e.pktsIn);
  for (let i = 0; i < n; i++) w.varint(zigzag(eps[i]!.bytesIn - predictedBytes(eps, i, 'in')));
  for (const e of eps) w.varint(e.pktsOut);
  for (let i = 0; i < n; i++) w.varint(zigzag(eps[i]!.bytesOut - predictedBytes(eps, i, 'out')));
  for (const e of eps) w.byte(e.firstSecond);
  for (const e of eps) w.byte(e.lastSecond);

  // Optional text: a dictionary of the present values, then index + 1 each (0 = absent).
  const withOwner = eps.filter((e) => e.owner !== undefined);
  const owners = dictionary(
    withOwner,
    (a, b) => a.owner!.pid === b.owner!.pid && a.owner!.process === b.owner!.process,
    (e) => ownerKey(e.owner!),
  );
  w.varint(owners.entries.length);
  for (const { owner } of owners.entries) {
    w.byte(
      (owner!.pid !== undefined ? OWNER_PID : 0) |
        (owner!.process !== undefined ? OWNER_PROCESS : 0),
    );
    if (owner!.pid !== undefined) w.varint(owner!.pid);
    if (owner!.process !== undefined) w.string(owner!.process);
  }
  if (owners.entries.length > 0) {
    let k = 0;
    for (const e of eps) w.varint(e.owner !== undefined ? owners.index[k++]! + 1 : 0);
  }

  const withClient = eps.filter((e) => e.clientId !== undefined);
  const clients = dictionary(
    withClient,
    (a, b) => a.clientId === b.clientId,
    (e) => e.clientId!,
  );
  w.varint(clients.entries.length);
  for (const e of clients.entries) w.string(e.clientId!);
  if (clients.entries.length > 0) {
    let k = 0;
    for (const e of eps) w.varint(e.clientId !== undefined ? clients.index[k++]! + 1 : 0);
  }

  // NAT: presence bitmaps, then the present values.
  w.bytes(presence(eps, (e) => e.natFromIp !== undefined));
  w.bytes(presence(eps, (e) => e.natFromPort !== undefined));
  for (const e of eps) if (e.natFromIp !== undefined) writeIp(w, e.natFromIp);
  for (const e of eps) if (e.natFromPort !== undefined) w.varint(e.natFromPort);
  return w.result();
}

/**
 * Encodes a block without checking it: only for building invalid input in
 * the decoder's tests. Everything else uses encodeBlock.
 */
export function encodeBlockUnchecked(
  block: Block,
  quality: BlockQuality = SMALLEST_BLOCK_QUALITY,
): Buffer {
  return Buffer.concat([
    BLOCK_MAGIC,
    Buffer.of(BLOCK_VERSION),
    compressBody(serializeBody(block), quality),
  ]);
}

/** Encodes a valid block part; throws RangeError naming the problem when it is not valid (a bug in the caller). */
export function encodeBlock(block: Block, quality: BlockQuality = SMALLEST_BLOCK_QUALITY): Buffer {
  assertValid(block);
  return encodeBlockUnchecked(block, quality);
}

/** Throws RangeError naming the problem when a block to encode breaks the format's bounds. */
function assertValid(block: Block): void {
  const problem = blockProblem(block);
  if (problem) {
    throw new RangeError(
      `block part ${block.part} of agent ${String(block.agentId).slice(0, 128)} seq ${block.seq}: ${problem}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Decoding

/** Bad input found while reading; caught at the top and turned into a reason. */
class FormatError extends Error {}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class ByteReader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get left(): number {
    return this.buf.length - this.pos;
  }

  byte(what: string): number {
    if (this.pos >= this.buf.length) throw new FormatError(`body ends while reading ${what}`);
    return this.buf[this.pos++]!;
  }

  bytes(count: number, what: string): Uint8Array {
    if (count > this.left) throw new FormatError(`body ends while reading ${what}`);
    const out = this.buf.subarray(this.pos, this.pos + count);
    this.pos += count;
    return out;
  }

  /** A varint of at most 8 bytes (covers every safe integer); range checks come after. */
  varint(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte(what);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 0x80;
    }
    throw new FormatError(`${what}: varint longer than 8 bytes`);
  }

  /** A count that must not exceed `max` (checked before anything is allocated for it). */
  count(what: string, max: number): number {
    const v = this.varint(what);
    if (v > max) throw new FormatError(`${what} ${v} is more than ${max}`);
    return v;
  }

  string(what: string, maxChars: number): string {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const len = this.count(`${what} length`, maxChars * 3);
    try {
      return utf8.decode(this.bytes(len, what));
    } catch (err) {
      if (err instanceof FormatError) throw err;
      throw new FormatError(`${what} is not valid UTF-8`);
    }
  }

  ip(what: string): string {
    return this.ipWithBytes(what).text;
  }

  /** An address as text and as the bytes it was read from (for order checks on bytes). */
  ipWithBytes(what: string): { text: string; bytes: Uint8Array } {
    const family = this.byte(what);
    if (family !== 4 && family !== 6)
      throw new FormatError(`${what}: address family ${family} is unknown`);
    const bytes = this.bytes(family === 4 ? 4 : 16, what);
    const text = ipText(bytes);
    if (text === null) throw new FormatError(`${what}: IPv6 bytes hold an IPv4-mapped address`);
    return { text, bytes };
  }
}

function readBitmap(r: ByteReader, n: number, what: string): boolean[] {
  const b = r.bytes(Math.ceil(n / 8), what);
  return Array.from({ length: n }, (_, i) => (b[i >> 3]! & (1 << (i & 7))) !== 0);
}

/** Reads per-endpoint dictionary indexes (`offset` 1 when 0 means absent). */
function readIndexes(
  r: ByteReader,
  n: number,
  size: number,
  offset: number,
  what: string,
): number[] {
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const v = r.varint(`endpoint ${i}: ${what} index`);
    if (v >= size + offset) {
      throw new FormatError(`endpoint ${i}: ${what} index ${v} is past the dictionary of ${size}`);
    }
    out[i] = v - offset;
  }
  return out;
}

/**
 * A parsed body: the block, and what the stored path needs to check it
 * without re-reading text: the address bytes in endpoint order and the
 * dictionaries (every entry, used or not).
 */
interface ParsedBody {
  block: Block;
  clientIps: Uint8Array[];
  locals: { bytes: Uint8Array; port: number }[];
  localIndex: number[] | null;
  sources: string[];
  owners: BlockOwner[];
  clientIds: string[];
}

/** Parses a body into a block (structure only; bounds are checked by blockProblem or storedProblem). */
function parseBody(body: Uint8Array): ParsedBody {
  const r = new ByteReader(body);
  const agentId = r.string('agentId', NAME_LIMITS.agentId);
  const host = r.string('host', NAME_LIMITS.host);
  const service = r.string('service', NAME_LIMITS.service);
  const minute = r.varint('minute');
  const seq = r.varint('seq');
  const part = r.varint('part');
  const parts = r.varint('parts');
  const flags = r.byte('header flags');
  if ((flags & ~HEAD_SOCKET) !== 0) throw new FormatError(`header flags ${flags} are unknown`);
  const socket =
    flags & HEAD_SOCKET
      ? { rxQueueBytes: r.varint('socket rxQueueBytes'), drops: r.varint('socket drops') }
      : undefined;
  const n = r.count('endpoint count', MAX_PART_ENDPOINTS);

  const heads = r.bytes(n, 'client IP heads');
  const ips: string[] = new Array(n);
  const clientIps: Uint8Array[] = new Array(n);
  let prev: Uint8Array | undefined;
  for (let i = 0; i < n; i++) {
    const head = heads[i]!;
    const len = head & IP_V6 ? 16 : 4;
    const shared = head & 0x1f;
    if ((head & 0x60) !== 0 || shared > len) {
      throw new FormatError(`endpoint ${i}: client IP head byte ${head} is malformed`);
    }
    if (shared > 0 && prev?.length !== len) {
      throw new FormatError(
        `endpoint ${i}: client IP shares a prefix with an address of another family`,
      );
    }
    const b = new Uint8Array(len);
    if (shared > 0) b.set(prev!.subarray(0, shared));
    b.set(r.bytes(len - shared, `endpoint ${i}: client IP`), shared);
    const text = ipText(b);
    if (text === null)
      throw new FormatError(`endpoint ${i}: client IPv6 bytes hold an IPv4-mapped address`);
    ips[i] = text;
    clientIps[i] = b;
    prev = b;
  }

  const ports: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const v = r.varint(`endpoint ${i}: port`);
    ports[i] = i > 0 && ips[i - 1] === ips[i] ? ports[i - 1]! + v : v;
  }

  const localCount = r.count('local endpoint count', n);
  const locals: { ip: string; bytes: Uint8Array; port: number }[] = [];
  for (let k = 0; k < localCount; k++) {
    const { text, bytes } = r.ipWithBytes(`local endpoint ${k}`);
    locals.push({ ip: text, bytes, port: r.varint(`local endpoint ${k} port`) });
  }
  if (n > 0 && localCount === 0) throw new FormatError('local endpoint dictionary is empty');
  const localIndex = localCount > 1 ? readIndexes(r, n, localCount, 0, 'local endpoint') : null;

  const sourceCount = r.count('source count', Math.min(n, FLOW_SOURCES.length));
  const sources: string[] = [];
  for (let k = 0; k < sourceCount; k++) sources.push(r.string(`source ${k}`, 16));
  if (n > 0 && sourceCount === 0) throw new FormatError('source dictionary is empty');
  const sourceIndex = sourceCount > 1 ? readIndexes(r, n, sourceCount, 0, 'source') : null;

  const sampleRates = Array.from({ length: n }, (_, i) => r.varint(`endpoint ${i}: sampleRate`));
  // Bytes are residuals against the previous endpoint's packets and bytes, read just before.
  const counters = COUNTERS.map(() => new Array<number>(n));
  const [pktsIn, bytesIn, pktsOut, bytesOut] = counters as [number[], number[], number[], number[]];
  const readDirection = (pkts: number[], bytes: number[], dir: 'In' | 'Out'): void => {
    for (let i = 0; i < n; i++) pkts[i] = r.varint(`endpoint ${i}: pkts${dir}`);
    for (let i = 0; i < n; i++) {
      const residual = unzigzag(r.varint(`endpoint ${i}: bytes${dir}`));
      const mean = i > 0 && pkts[i - 1]! > 0 ? Math.floor(bytes[i - 1]! / pkts[i - 1]!) : 0;
      const value = Math.min(MAX_BLOCK_COUNTER, pkts[i]! * mean) + residual;
      // Out of range here would also put the next prediction out of range: refuse at once.
      if (!isInt(value, 0, MAX_BLOCK_COUNTER)) {
        throw new FormatError(`endpoint ${i}: bytes${dir} ${value} out of range`);
      }
      bytes[i] = value;
    }
  };
  readDirection(pktsIn, bytesIn, 'In');
  readDirection(pktsOut, bytesOut, 'Out');
  const firsts = r.bytes(n, 'firstSecond column');
  const lasts = r.bytes(n, 'lastSecond column');

  const ownerCount = r.count('owner count', n);
  const owners: BlockOwner[] = [];
  for (let k = 0; k < ownerCount; k++) {
    const f = r.byte(`owner ${k} flags`);
    if (f === 0 || (f & ~(OWNER_PID | OWNER_PROCESS)) !== 0) {
      throw new FormatError(`owner ${k}: flags ${f} are malformed`);
    }
    const owner: BlockOwner = {};
    if (f & OWNER_PID) owner.pid = r.varint(`owner ${k} pid`);
    if (f & OWNER_PROCESS) owner.process = r.string(`owner ${k} process`, MAX_TEXT);
    owners.push(owner);
  }
  const ownerIndex = ownerCount > 0 ? readIndexes(r, n, ownerCount, 1, 'owner') : null;

  const clientCount = r.count('clientId count', n);
  const clientIds: string[] = [];
  for (let k = 0; k < clientCount; k++) clientIds.push(r.string(`clientId ${k}`, MAX_TEXT));
  const clientIndex = clientCount > 0 ? readIndexes(r, n, clientCount, 1, 'clientId') : null;

  const natIps = readBitmap(r, n, 'natFromIp bitmap');
  const natPorts = readBitmap(r, n, 'natFromPort bitmap');
  const natIpValues = natIps.map((has, i) => (has ? r.ip(`endpoint ${i}: natFromIp`) : undefined));
  const natPortValues = natPorts.map((has, i) =>
    has ? r.varint(`endpoint ${i}: natFromPort`) : undefined,
  );
  if (r.left > 0) throw new FormatError(`${r.left} bytes after the last column`);

  const endpoints: BlockEndpoint[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const local = locals[localIndex ? localIndex[i]! : 0]!;
    const e: BlockEndpoint = {
      ip: ips[i]!,
      port: ports[i]!,
      localIp: local.ip,
      localPort: local.port,
      pktsIn: counters[0]![i]!,
      bytesIn: counters[1]![i]!,
      pktsOut: counters[2]![i]!,
      bytesOut: counters[3]![i]!,
      firstSecond: firsts[i]!,
      lastSecond: lasts[i]!,
      source: sources[sourceIndex ? sourceIndex[i]! : 0] as FlowSource,
      sampleRate: sampleRates[i]!,
    };
    if (natIpValues[i] !== undefined) e.natFromIp = natIpValues[i];
    if (natPortValues[i] !== undefined) e.natFromPort = natPortValues[i];
    const o = ownerIndex?.[i];
    if (o !== undefined && o >= 0) e.owner = { ...owners[o]! };
    const c = clientIndex?.[i];
    if (c !== undefined && c >= 0) e.clientId = clientIds[c]!;
    endpoints[i] = e;
  }
  const block: Block = { agentId, host, service, minute, seq, part, parts, endpoints };
  if (socket) block.socket = socket;
  return { block, clientIps, locals, localIndex, sources, owners, clientIds };
}

/** Orders two address byte strings like ipSortKey: IPv4 before IPv6, then by bytes. */
function compareIpBytes(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/**
 * Why a parsed body breaks the format's bounds, or null: what blockProblem
 * checks, minus what parsing already guarantees (address text made from
 * bytes is canonical; counts, string lengths, indexes and byte counters are
 * bounded while reading). Dictionary entries are checked once each, and the
 * endpoint order on the address bytes just read, so no text is parsed again.
 */
function storedProblem(p: ParsedBody): string | null {
  const b = p.block;
  for (const [field, max] of Object.entries(NAME_LIMITS)) {
    const problem = nameProblem(field, b[field as keyof typeof NAME_LIMITS], max);
    if (problem) return problem;
  }
  if (!isInt(b.minute, MIN_MINUTE, MAX_MINUTE)) return `minute ${b.minute} out of range`;
  if (!isInt(b.seq, 0, Number.MAX_SAFE_INTEGER)) return `seq ${b.seq} out of range`;
  if (!isInt(b.parts, 1, MAX_PARTS)) return `parts ${b.parts} out of range 1..${MAX_PARTS}`;
  if (b.part > b.parts - 1) return `part ${b.part} out of range 0..${b.parts - 1}`;
  if (b.socket !== undefined) {
    if (b.socket.rxQueueBytes > MAX_BLOCK_COUNTER) {
      return `socket rxQueueBytes ${b.socket.rxQueueBytes} out of range`;
    }
    if (b.socket.drops > MAX_BLOCK_COUNTER) return `socket drops ${b.socket.drops} out of range`;
  }
  for (let k = 0; k < p.locals.length; k++) {
    const port = p.locals[k]!.port;
    if (port > 65_535) return `local endpoint ${k}: localPort ${port} out of range`;
  }
  for (const s of p.sources) {
    if (!FLOW_SOURCES.includes(s as FlowSource)) return `source ${JSON.stringify(s)} is unknown`;
  }
  for (let k = 0; k < p.owners.length; k++) {
    const { pid, process } = p.owners[k]!;
    if (pid !== undefined && pid > MAX_PID) return `owner ${k}: pid ${pid} out of range`;
    const problem = process !== undefined ? textProblem(`owner ${k}: process`, process) : null;
    if (problem) return problem;
  }
  for (let k = 0; k < p.clientIds.length; k++) {
    const problem = textProblem(`clientId ${k}`, p.clientIds[k]!);
    if (problem) return problem;
  }
  const eps = b.endpoints;
  for (let i = 0; i < eps.length; i++) {
    const e = eps[i]!;
    if (e.port > 65_535) return `endpoint ${i}: port ${e.port} out of range`;
    if (e.pktsIn > MAX_BLOCK_COUNTER) return `endpoint ${i}: pktsIn ${e.pktsIn} out of range`;
    if (e.pktsOut > MAX_BLOCK_COUNTER) return `endpoint ${i}: pktsOut ${e.pktsOut} out of range`;
    if (e.firstSecond > 59) return `endpoint ${i}: firstSecond ${e.firstSecond} out of range`;
    if (e.lastSecond > 59) return `endpoint ${i}: lastSecond ${e.lastSecond} out of range`;
    if (e.lastSecond < e.firstSecond) {
      return `endpoint ${i}: lastSecond ${e.lastSecond} is before firstSecond ${e.firstSecond}`;
    }
    if (e.sampleRate < 1 || e.sampleRate > MAX_SAMPLE_RATE) {
      return `endpoint ${i}: sampleRate ${e.sampleRate} out of range`;
    }
    if (e.natFromPort !== undefined && e.natFromPort > 65_535) {
      return `endpoint ${i}: natFromPort ${e.natFromPort} out of range`;
    }
    if (i === 0) continue;
    const prev = eps[i - 1]!;
    const order =
      compareIpBytes(p.clientIps[i - 1]!, p.clientIps[i]!) ||
      prev.port - e.port ||
      compareIpBytes(
        p.locals[p.localIndex ? p.localIndex[i - 1]! : 0]!.bytes,
        p.locals[p.localIndex ? p.localIndex[i]! : 0]!.bytes,
      ) ||
      prev.localPort - e.localPort;
    if (order >= 0) {
      return order === 0
        ? `endpoint ${i}: duplicates endpoint ${i - 1}`
        : `endpoint ${i}: sorts before endpoint ${i - 1}`;
    }
  }
  return null;
}

/** Whether record data is a v2 block (any version byte: the decoder names a wrong one). */
export function isBlockRecord(data: Uint8Array): boolean {
  return (
    data.length >= BLOCK_MAGIC.length &&
    data[0] === BLOCK_MAGIC[0] &&
    data[1] === BLOCK_MAGIC[1] &&
    data[2] === BLOCK_MAGIC[2]
  );
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && Buffer.compare(a, b) === 0;

/** Options of decodeBlock. */
export interface DecodeOptions {
  /**
   * The bytes come from the store, where the aggregate function put them
   * after a strict decode: check every bound (a corrupt item is still a
   * reason, never a throw or an unbounded allocation) but not the canonical
   * form, and no address text again. Same block as the strict path for
   * every record the strict path accepts.
   */
  stored?: boolean;
}

/** Decodes and validates record data (untrusted unless `options.stored`); never throws. */
export function decodeBlock(data: Uint8Array, options: DecodeOptions = {}): DecodedBlock {
  try {
    if (!isBlockRecord(data)) return { ok: false, reason: 'not a block record (no UWB magic)' };
    if (data.length < PREFIX_BYTES)
      return { ok: false, reason: 'record ends before the version byte' };
    const version = data[BLOCK_MAGIC.length]!;
    if (version !== BLOCK_VERSION) {
      return {
        ok: false,
        reason: `block version ${version} is not supported (expected ${BLOCK_VERSION})`,
      };
    }
    if (data.length > MAX_PART_BYTES) {
      return {
        ok: false,
        reason: `record of ${data.length} bytes is larger than ${MAX_PART_BYTES}`,
      };
    }
    let body: Buffer;
    try {
      body = brotliDecompressSync(data.subarray(PREFIX_BYTES), {
        maxOutputLength: MAX_INFLATED_PART_BYTES,
      });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
        return { ok: false, reason: `body inflates to more than ${MAX_INFLATED_PART_BYTES} bytes` };
      }
      return { ok: false, reason: `body is not valid brotli data: ${(err as Error).message}` };
    }
    const parsed = parseBody(body);
    const block = parsed.block;
    if (options.stored) {
      const problem = storedProblem(parsed);
      return problem ? { ok: false, reason: problem } : { ok: true, block };
    }
    const problem = blockProblem(block);
    if (problem) return { ok: false, reason: problem };
    // One content, one body: anything else (unused or reordered dictionary
    // entries, padded varints) would let equal blocks carry different hashes.
    if (!sameBytes(serializeBody(block), body)) {
      return { ok: false, reason: 'body is not in canonical form' };
    }
    return { ok: true, block };
  } catch (err) {
    if (err instanceof FormatError) return { ok: false, reason: err.message };
    return {
      ok: false,
      reason: `undecodable block: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

/** Hex content hash of encoded bytes: the first 32 hex digits of their SHA-256. */
export function blockHash(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 32);
}

// ---------------------------------------------------------------------------
// Sealing

/**
 * The encoded size of a valid block when it is over `limit` bytes, else null.
 * Compresses only when the body's worst case could be over: brotli quality 11
 * is slow (~0.4 MB/s), and a part far below the limit needs no proof.
 */
function encodedBytesOver(block: Block, limit: number, quality: BlockQuality): number | null {
  assertValid(block);
  const body = serializeBody(block);
  if (PREFIX_BYTES + maxCompressedBytes(body.length) <= limit) return null;
  const size = PREFIX_BYTES + compressBody(body, quality).length;
  return size > limit ? size : null;
}

/** Limits of one part; tests shrink them, everyone else uses the contract's. */
export interface PartLimits {
  maxEndpoints: number;
  maxBytes: number;
}

/** The contract's part limits. */
export const DEFAULT_LIMITS: PartLimits = {
  maxEndpoints: MAX_PART_ENDPOINTS,
  maxBytes: MAX_PART_BYTES,
};

/** Room left when sizing a chunk with placeholder part numbers, for the real ones. */
const PART_NUMBER_SLACK = 64;

/** Of two optional values, the present one; of two present ones, the one whose key sorts first. */
function pick<T>(a: T | undefined, b: T | undefined, key: (v: T) => string): T | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return key(b) < key(a) ? b : a;
}

/**
 * Merges two records of one endpoint key: counters add up (saturating at
 * MAX_BLOCK_COUNTER), first second is the min, last the max; for the rest a
 * fixed preference, so the outcome does not depend on input order.
 */
function mergeEndpoint(a: BlockEndpoint, b: BlockEndpoint): BlockEndpoint {
  const out: BlockEndpoint = {
    ip: a.ip,
    port: a.port,
    localIp: a.localIp,
    localPort: a.localPort,
    pktsIn: Math.min(MAX_BLOCK_COUNTER, a.pktsIn + b.pktsIn),
    bytesIn: Math.min(MAX_BLOCK_COUNTER, a.bytesIn + b.bytesIn),
    pktsOut: Math.min(MAX_BLOCK_COUNTER, a.pktsOut + b.pktsOut),
    bytesOut: Math.min(MAX_BLOCK_COUNTER, a.bytesOut + b.bytesOut),
    firstSecond: Math.min(a.firstSecond, b.firstSecond),
    lastSecond: Math.max(a.lastSecond, b.lastSecond),
    // The most precise source wins (the order of FLOW_SOURCES); counters already scaled, so the larger rate.
    source: flowSourceIndex(b.source) < flowSourceIndex(a.source) ? b.source : a.source,
    sampleRate: Math.max(a.sampleRate, b.sampleRate),
  };
  const natFromIp = pick(a.natFromIp, b.natFromIp, ipSortKey);
  if (natFromIp !== undefined) out.natFromIp = natFromIp;
  const natFromPort = pick(a.natFromPort, b.natFromPort, (p) => String(p).padStart(5, '0'));
  if (natFromPort !== undefined) out.natFromPort = natFromPort;
  const owner = pick(a.owner, b.owner, ownerKey);
  if (owner !== undefined) out.owner = { ...owner };
  const clientId = pick(a.clientId, b.clientId, (c) => c);
  if (clientId !== undefined) out.clientId = clientId;
  return out;
}

/** A copy holding only the fields of the format (no stray properties, no empty owner). */
function cleanEndpoint(e: BlockEndpoint, owner?: BlockOwner): BlockEndpoint {
  const out: BlockEndpoint = {
    ip: e.ip,
    port: e.port,
    localIp: e.localIp,
    localPort: e.localPort,
    pktsIn: e.pktsIn,
    bytesIn: e.bytesIn,
    pktsOut: e.pktsOut,
    bytesOut: e.bytesOut,
    firstSecond: e.firstSecond,
    lastSecond: e.lastSecond,
    source: e.source,
    sampleRate: e.sampleRate,
  };
  if (e.natFromIp !== undefined) out.natFromIp = e.natFromIp;
  if (e.natFromPort !== undefined) out.natFromPort = e.natFromPort;
  if (owner !== undefined) {
    out.owner = owner;
  } else if (e.owner && (e.owner.pid !== undefined || e.owner.process !== undefined)) {
    out.owner = {};
    if (e.owner.pid !== undefined) out.owner.pid = e.owner.pid;
    if (e.owner.process !== undefined) out.owner.process = e.owner.process;
  }
  if (e.clientId !== undefined) out.clientId = e.clientId;
  return out;
}

/**
 * Endpoints sorted canonically, with the records of one key merged into one.
 * `owned`: the endpoints are the caller's to give away, each already holding
 * only the format's fields (no undefined ones, no empty owner), and go into
 * the result as they are instead of as copies.
 */
export function mergeEndpoints(
  endpoints: readonly BlockEndpoint[],
  owned = false,
): BlockEndpoint[] {
  const n = endpoints.length;
  // Sort keys without a string per endpoint: an IPv4 address as its number
  // (ipv4Number; -1 for any other), the text key (ipSortKey) only for others.
  const clientV4 = new Float64Array(n);
  const localV4 = new Float64Array(n);
  const clientText: string[] = [];
  const localText: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = endpoints[i]!;
    clientV4[i] = ipv4Number(e.ip);
    if (clientV4[i]! < 0) clientText[i] = ipSortKey(e.ip);
    localV4[i] = ipv4Number(e.localIp);
    if (localV4[i]! < 0) localText[i] = ipSortKey(e.localIp);
  }
  // compareEndpoints' order on the precomputed keys: address, then port, per side.
  const side = (v4: Float64Array, text: string[], a: number, b: number, pa: number, pb: number) =>
    compareAddressKeys(v4[a]!, v4[b]!, text[a], text[b]) || pa - pb;
  const compare = (a: number, b: number): number =>
    side(clientV4, clientText, a, b, endpoints[a]!.port, endpoints[b]!.port) ||
    side(localV4, localText, a, b, endpoints[a]!.localPort, endpoints[b]!.localPort);
  const order = new Array<number>(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort(compare);
  const out: BlockEndpoint[] = [];
  // Endpoints of one daemon share its owner object: their copies share one copy.
  let ownerIn: BlockOwner | undefined;
  let ownerOut: BlockOwner | undefined;
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    const e = endpoints[i]!;
    if (k > 0 && compare(order[k - 1]!, i) === 0) {
      out[out.length - 1] = mergeEndpoint(out[out.length - 1]!, e);
      continue;
    }
    if (owned) {
      out.push(e);
      continue;
    }
    const copy = cleanEndpoint(
      e,
      e.owner !== undefined && e.owner === ownerIn ? ownerOut : undefined,
    );
    if (e.owner !== undefined && e.owner !== ownerIn) {
      ownerIn = e.owner;
      ownerOut = copy.owner;
    }
    out.push(copy);
  }
  return out;
}

/** One sealed part and its encoded bytes, as it is shipped. */
export interface SealedPart {
  block: Block;
  data: Buffer;
}

/**
 * Splits merged endpoints into numbered parts of at most
 * `limits.maxEndpoints` endpoints and, when `sized`, at most
 * `limits.maxBytes` encoded bytes (a chunk that encodes too large is halved
 * until it fits, which compresses to check). All parts share the head's seq;
 * socket health goes into part 0 only, so summing it over parts counts it
 * once. No endpoints give one empty part (it still carries socket health).
 */
function chunkParts(
  head: BlockHead,
  merged: readonly BlockEndpoint[],
  limits: PartLimits,
  sized: boolean,
  quality: BlockQuality,
): Block[] {
  const base = {
    agentId: head.agentId,
    host: head.host,
    service: head.service,
    minute: head.minute,
    seq: head.seq,
  };
  const socket = head.socket
    ? { rxQueueBytes: head.socket.rxQueueBytes, drops: head.socket.drops }
    : undefined;
  const build = (eps: BlockEndpoint[], part: number, parts: number): Block => {
    const b: Block = { ...base, part, parts, endpoints: eps };
    if (socket && part === 0) b.socket = socket;
    return b;
  };
  const budget = limits.maxBytes - PART_NUMBER_SLACK;
  const chunks: BlockEndpoint[][] = [];
  // Halve a chunk until it encodes within budget: deterministic, and few encodes for real data.
  const place = (eps: BlockEndpoint[]): void => {
    if (sized && eps.length > 1 && encodedBytesOver(build(eps, 0, 1), budget, quality) !== null) {
      const half = Math.ceil(eps.length / 2);
      place(eps.slice(0, half));
      place(eps.slice(half));
      return;
    }
    chunks.push(eps);
  };
  for (let i = 0; i < merged.length; i += limits.maxEndpoints) {
    place(merged.slice(i, i + limits.maxEndpoints));
  }
  if (chunks.length === 0) chunks.push([]);
  if (chunks.length > MAX_PARTS) {
    throw new RangeError(
      `block of agent ${head.agentId} seq ${head.seq}: ${chunks.length} parts, more than ${MAX_PARTS}`,
    );
  }
  return chunks.map((eps, part) => build(eps, part, chunks.length));
}

const overLimit = (block: Block, size: number, limits: PartLimits): RangeError =>
  new RangeError(
    `block part ${block.part} of agent ${block.agentId} seq ${block.seq}: ${size} bytes, more than ${limits.maxBytes}`,
  );

/**
 * Seals one block: sorts and merges the endpoints (mergeEndpoints) and
 * splits them into parts (see chunkParts), sized as they encode at
 * `quality`. Throws RangeError on invalid input.
 */
export function sealParts(
  head: BlockHead,
  endpoints: readonly BlockEndpoint[],
  limits: PartLimits = DEFAULT_LIMITS,
  quality: BlockQuality = SMALLEST_BLOCK_QUALITY,
): Block[] {
  return chunkParts(head, mergeEndpoints(endpoints), limits, true, quality).map((block) => {
    const size = encodedBytesOver(block, limits.maxBytes, quality);
    if (size !== null) throw overLimit(block, size, limits);
    return block;
  });
}

/**
 * sealParts with each part encoded once, its size checked on the bytes that
 * ship. Most blocks fit by endpoint count alone, so their parts are encoded
 * with their final numbers straight away; only when one is over the limit
 * are the chunks sized by halving (which compresses to check) and encoded
 * again. Brotli at `quality`. Throws RangeError on invalid input.
 * `owned` as for mergeEndpoints: the parts hold the caller's objects.
 */
export function sealEncodedParts(
  head: BlockHead,
  endpoints: readonly BlockEndpoint[],
  limits: PartLimits = DEFAULT_LIMITS,
  quality: BlockQuality = SMALLEST_BLOCK_QUALITY,
  owned = false,
): SealedPart[] {
  const merged = mergeEndpoints(endpoints, owned);
  const encode = (block: Block): SealedPart => ({ block, data: encodeBlock(block, quality) });
  const byCount = chunkParts(head, merged, limits, false, quality).map(encode);
  if (byCount.every((p) => p.data.length <= limits.maxBytes)) return byCount;
  return chunkParts(head, merged, limits, true, quality).map((block) => {
    const part = encode(block);
    if (part.data.length > limits.maxBytes) throw overLimit(block, part.data.length, limits);
    return part;
  });
}
