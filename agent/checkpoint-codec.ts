/**
 * The bytes of the agent's checkpoint: what it holds unsealed (the block
 * sealer's pending per service-minute endpoints and socket health), the
 * sealed records it is about to spool (the outbox), and its cumulative loss
 * counter. See checkpoint-file.ts for when it is written and read.
 *
 * Layout (format 2): the magic line `UWCK2`, the SHA-256 (hex) of the body on
 * a second line, then the body: a 4-byte little-endian length, a small JSON
 * head (counters, groups, outbox keys, the string table, which columns
 * follow), then the endpoints as columns of typed arrays (one array per
 * field, little-endian: addresses and names as indexes into the string
 * table, counters 4 or 8 bytes wide as their largest value needs, optional
 * fields only when some endpoint has them), then the conntrack counters,
 * then the outbox records' bytes. No object per endpoint is built or parsed,
 * and IPv4 addresses (most) need no string table: 100,000 endpoints take
 * about 5.4 MB (format 1, one JSON array per endpoint, took 10.8 MB and
 * twice the time; bench/cases/checkpoint.ts). The file is local but is
 * still checked like any input: a wrong digest, format, agent or bound is a
 * reason, never a throw.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { z } from 'zod';
import {
  type BlockEndpoint,
  type BlockSocketHealth,
  MAX_BLOCK_COUNTER,
} from '../contract/block.js';
import { decodeBlock } from '../contract/block-codec.js';
import { FLOW_SOURCES, type FlowSource, flowSourceIndex } from '../contract/wire.js';
import type { ConntrackBaseline } from './conntrack-source.js';
import type { EndpointList } from './pending-endpoints.js';
import type { ShipRecord } from './record-packer.js';

/** Version of the format; a checkpoint of another version is set aside with a reason. */
export const CHECKPOINT_VERSION = 2;
const MAGIC = `UWCK${CHECKPOINT_VERSION}\n`;
/** Every format starts `UWCK<version>\n`. */
const MAGIC_RE = /^UWCK(\d{1,3})\n/;
const HEAD_BYTES = MAGIC.length + 65;

/** One service-minute the sealer holds unsealed (as a decoded checkpoint has it: an array). */
export interface PendingGroup<L extends EndpointList = EndpointList> {
  service: string;
  minute: number;
  endpoints: L;
  socket?: BlockSocketHealth;
}

/** What a checkpoint holds. */
export interface CheckpointState<L extends EndpointList = EndpointList> {
  agentId: string;
  /** Epoch ms of the write. */
  writtenAt: number;
  /** Written at a clean stop: everything pending was sealed and spooled, only the counters count. */
  clean: boolean;
  /** The agent's cumulative loss (the heartbeat's `dropped`) across its runs. */
  dropped: number;
  pending: PendingGroup<L>[];
  /** Sealed block records that may not be in the spool yet (spooled right after this write). */
  outbox: ShipRecord[];
  /** Conntrack entries' counters that the pending and sealed deltas add up to, when conntrack is read. */
  conntrack?: ConntrackBaseline[];
  /** Per hooked daemon (`<pid>@<start time>/<pid it says>`), the highest line number whose counts this holds or an earlier checkpoint did. */
  hookLines?: [string, number][];
  /** Order of the write among the file's writes (read back; 0 in one written without). */
  sequence?: number;
}

/** Bounds a checkpoint must respect, from the agent's memory bound. */
export interface CheckpointLimits {
  maxEndpoints: number;
  maxBytes: number;
}

/** Endpoints per flow the table may hold: the current minute, the one awaiting its seal, and evictions. */
export const CHECKPOINT_ENDPOINTS_PER_FLOW = 3;
/** Bytes an endpoint may take in the file (IPv6 text, a process name and a client id fit). */
const MAX_ENDPOINT_BYTES = 1_024;
/** Room for the outbox: one cycle's sealed parts, each under a Kinesis record's 1 MiB. */
const MAX_OUTBOX_RECORDS = 10_000;
const MAX_OUTBOX_BYTES = 256 * 1024 * 1024;
/** Hooked daemons whose line marks a checkpoint holds (the hook receiver remembers as many). */
const MAX_HOOK_DAEMONS = 4096;
/** Longest JSON head: groups, outbox keys and strings of the bounded endpoints. */
const MAX_HEAD_BYTES = 512 * 1024 * 1024;

/** The bounds for an agent holding at most `maxFlows` flows. */
export function checkpointLimits(maxFlows: number): CheckpointLimits {
  const maxEndpoints = CHECKPOINT_ENDPOINTS_PER_FLOW * maxFlows;
  return { maxEndpoints, maxBytes: maxEndpoints * MAX_ENDPOINT_BYTES + MAX_OUTBOX_BYTES };
}

/** Element types a column can have. */
type ColumnType = 'u8' | 'u16' | 'u32' | 'i32' | 'f64';
const ARRAYS = {
  u8: Uint8Array,
  u16: Uint16Array,
  u32: Uint32Array,
  i32: Int32Array,
  f64: Float64Array,
} as const;
type ColumnArray = InstanceType<(typeof ARRAYS)[ColumnType]>;

/**
 * The endpoint columns, in file order, and the types each may have. Strings
 * are indexes into the head's string table; an optional one is index + 1, 0
 * when absent (natFromPort: -1). An address is `ip4` (the IPv4
 * address as a number) when `ip` is 0, else the string `ip` - 1 (and so for
 * `localIp`): a table of 100,000 distinct strings would cost more than all
 * the rest.
 */
const COLUMNS = {
  ip: ['u32'],
  ip4: ['u32'],
  port: ['u16'],
  localIp: ['u32'],
  localIp4: ['u32'],
  localPort: ['u16'],
  pktsIn: ['u32', 'f64'],
  bytesIn: ['u32', 'f64'],
  pktsOut: ['u32', 'f64'],
  bytesOut: ['u32', 'f64'],
  firstSecond: ['u8'],
  lastSecond: ['u8'],
  source: ['u8'],
  sampleRate: ['u32'],
  natFromIp: ['u32'],
  natFromPort: ['i32'],
  pid: ['u32'],
  process: ['u32'],
  clientId: ['u32'],
} as const satisfies Record<string, readonly ColumnType[]>;
type ColumnName = keyof typeof COLUMNS;
const OPTIONAL = new Set<ColumnName>(['natFromIp', 'natFromPort', 'pid', 'process', 'clientId']);
const COUNTERS = ['pktsIn', 'bytesIn', 'pktsOut', 'bytesOut'] as const;

/** The position of `s` in FLOW_SOURCES, 255 for none (the column's byte for it). */
function sourceIndex(s: FlowSource): number {
  const k = flowSourceIndex(s);
  return k < 0 ? 255 : k;
}

/** An IPv4 address in canonical text (no leading zeros) as a number, else -1. */
function ipv4Number(s: string): number {
  if (s.length < 7 || s.length > 15) return -1;
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1;
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + part;
}

function ipv4Text(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** The typed arrays are the host's byte order: refuse to write or read on a big-endian host. */
function checkByteOrder(): void {
  if (endianness() !== 'LE') throw new Error('checkpoint columns need a little-endian host');
}

/**
 * Memory one encoder reuses from write to write: the body, whose columns
 * are written in place. A busy agent checkpoints every second, and a fresh
 * body each time (some 40 bytes an endpoint) is garbage that outlives young
 * collections. It grows to what a write needs and shrinks when a write needs
 * far less. The body a write returns is a view of it: valid until the next
 * encoding with the same scratch.
 */
export class CheckpointScratch {
  private memory = new ArrayBuffer(0);
  /** The last write's head length: where this one's columns start, unless its head is longer. */
  headBytes = 0;

  /** Memory of at least `bytes`, [zeroFrom, zeroTo) zeroed; `keep` bytes copied over when it is replaced. */
  memoryFor(bytes: number, zeroFrom: number, zeroTo: number, keep = 0): ArrayBuffer {
    if (needsNew(this.memory.byteLength, bytes)) {
      const old = this.memory;
      this.memory = new ArrayBuffer(roomFor(bytes));
      if (keep > 0) new Uint8Array(this.memory).set(new Uint8Array(old, 0, keep));
    } else new Uint8Array(this.memory, zeroFrom, zeroTo - zeroFrom).fill(0);
    return this.memory;
  }

  /** Bytes held between writes. */
  get heldBytes(): number {
    return this.memory.byteLength;
  }
}

/** A held buffer is replaced when too small, or four times larger than needed (a burst has passed). */
const needsNew = (held: number, wanted: number) => held < wanted || held > 4 * wanted + 65_536;
/** Room for `bytes` and an eighth more, so a slowly growing table does not reallocate every write. */
const roomFor = (bytes: number) => bytes + (bytes >>> 3);

/** Column arrays start at multiples of 8 bytes, so every typed array is aligned. */
const align8 = (n: number) => (n + 7) & ~7;

/** What the columns need, from one pass: the counters some endpoint has a value of over 4 bytes in (most have none), and the optional fields some endpoint has. */
function columnNeeds(state: CheckpointState): {
  wide: Set<(typeof COUNTERS)[number]>;
  present: Set<ColumnName>;
} {
  const wide = new Set<(typeof COUNTERS)[number]>();
  // Booleans in the loop: a Set operation per endpoint costs.
  let natIp = false;
  let natPort = false;
  let pid = false;
  let proc = false;
  let client = false;
  for (const g of state.pending) {
    g.endpoints.forEach((e) => {
      if (e.pktsIn > 0xffff_ffff) wide.add('pktsIn');
      if (e.bytesIn > 0xffff_ffff) wide.add('bytesIn');
      if (e.pktsOut > 0xffff_ffff) wide.add('pktsOut');
      if (e.bytesOut > 0xffff_ffff) wide.add('bytesOut');
      if (e.natFromIp !== undefined) natIp = true;
      if (e.natFromPort !== undefined) natPort = true;
      const o = e.owner;
      if (o !== undefined) {
        if (o.pid !== undefined) pid = true;
        if (o.process !== undefined) proc = true;
      }
      if (e.clientId !== undefined) client = true;
    });
  }
  const present = new Set<ColumnName>();
  if (natIp) present.add('natFromIp');
  if (natPort) present.add('natFromPort');
  if (pid) present.add('pid');
  if (proc) present.add('process');
  if (client) present.add('clientId');
  return { wide, present };
}

/**
 * Moves each column from where the pass wrote it (`from`, 8-byte aligned)
 * to where the file has it (`to`, packed after the head), in one buffer:
 * `to - from` only falls from column to column, so the columns moving up go
 * last first and those moving down first last, and none overwrites one
 * still to move.
 */
function packColumns(
  bytes: Uint8Array,
  from: readonly number[],
  to: readonly number[],
  sizes: readonly number[],
): void {
  let split = 0;
  while (split < from.length && to[split]! > from[split]!) split++;
  for (let k = split - 1; k >= 0; k--) bytes.copyWithin(to[k]!, from[k]!, from[k]! + sizes[k]!);
  for (let k = split; k < from.length; k++)
    if (to[k] !== from[k]) bytes.copyWithin(to[k]!, from[k]!, from[k]! + sizes[k]!);
}

/**
 * The body of a checkpoint (what the digest covers); the caller has bounded
 * what it holds. With `scratch` the body lives in its memory and the result
 * is a view of it (see CheckpointScratch). The columns are written straight
 * into the body, after room for the head as long as the last write's, and
 * moved up against the head once it is known: one buffer, no copy of them.
 */
export function encodeCheckpointBody(
  state: CheckpointState,
  scratch: CheckpointScratch = new CheckpointScratch(),
  sequence = state.sequence ?? 0,
): Uint8Array {
  checkByteOrder();
  let n = 0;
  for (const g of state.pending) n += g.endpoints.length;
  const strings: string[] = [];
  const index = new Map<string, number>();
  // Neighbouring endpoints mostly share a local address and a process.
  let lastString = '';
  let lastIndex = -1;
  const ref = (s: string): number => {
    if (s === lastString) return lastIndex;
    let i = index.get(s);
    if (i === undefined) {
      i = strings.length;
      strings.push(s);
      index.set(s, i);
    }
    lastString = s;
    lastIndex = i;
    return i;
  };
  // Every column's type and presence is known before the pass, from a scan of the endpoints.
  const needs = columnNeeds(state);
  const columns: [ColumnName, ColumnType][] = [];
  for (const name of Object.keys(COLUMNS) as ColumnName[]) {
    if (OPTIONAL.has(name) && !needs.present.has(name)) continue;
    columns.push([
      name,
      needs.wide.has(name as (typeof COUNTERS)[number]) ? 'f64' : COLUMNS[name][0],
    ]);
  }
  const sizes = columns.map(([, type]) => ARRAYS[type].BYTES_PER_ELEMENT * n);
  const headRoom = align8(4 + scratch.headBytes + (scratch.headBytes >>> 3));
  const written: number[] = [];
  let end = headRoom;
  for (const size of sizes) {
    written.push(end);
    end = align8(end + size);
  }
  const ct = state.conntrack;
  const ctBytes = ct ? ct.length * 32 : 0;
  let outboxBytes = 0;
  for (const r of state.outbox) outboxBytes += r.data.length;
  let memory = scratch.memoryFor(end + ctBytes + outboxBytes, headRoom, end);
  // Absent optional columns get an empty array: the pass writes nothing to them.
  const empty = {
    u8: new Uint8Array(0),
    u16: new Uint16Array(0),
    u32: new Uint32Array(0),
    i32: new Int32Array(0),
    f64: new Float64Array(0),
  };
  const all = {} as Record<ColumnName, ColumnArray>;
  for (const name of Object.keys(COLUMNS) as ColumnName[]) all[name] = empty[COLUMNS[name][0]];
  columns.forEach(([name, type], k) => {
    all[name] = new ARRAYS[type](memory, written[k], n);
  });
  const { ip, ip4, port, localIp, localIp4, localPort, firstSecond, lastSecond, source } = all;
  const { sampleRate, natFromIp, natFromPort, pid, clientId } = all;
  const proc = all.process;
  const [pi, bi, po, bo] = COUNTERS.map((k) => all[k]);
  let i = 0;
  let lastLocalIp = '';
  let lastLocal4 = -1;
  for (const g of state.pending) {
    g.endpoints.forEach((e) => {
      const v4 = ipv4Number(e.ip);
      // Client addresses rarely repeat: no lookup for them.
      if (v4 < 0) ip[i] = strings.push(e.ip);
      else ip4[i] = v4;
      port[i] = e.port;
      // Neighbours mostly share their local address: parse it once for a run of them.
      if (e.localIp !== lastLocalIp) {
        lastLocalIp = e.localIp;
        lastLocal4 = ipv4Number(lastLocalIp);
      }
      const l4 = lastLocal4;
      if (l4 < 0) localIp[i] = ref(e.localIp) + 1;
      else localIp4[i] = l4;
      localPort[i] = e.localPort;
      pi![i] = e.pktsIn;
      bi![i] = e.bytesIn;
      po![i] = e.pktsOut;
      bo![i] = e.bytesOut;
      firstSecond[i] = e.firstSecond;
      lastSecond[i] = e.lastSecond;
      source[i] = sourceIndex(e.source);
      sampleRate[i] = e.sampleRate;
      // Writes past an empty (absent) column's end are dropped.
      if (e.natFromIp !== undefined) natFromIp[i] = ref(e.natFromIp) + 1;
      natFromPort[i] = e.natFromPort ?? -1;
      const owner = e.owner;
      if (owner !== undefined) {
        if (owner.pid !== undefined) pid[i] = owner.pid;
        if (owner.process !== undefined) proc[i] = ref(owner.process) + 1;
      }
      if (e.clientId !== undefined) clientId[i] = ref(e.clientId) + 1;
      i++;
    });
  }
  const head = Buffer.from(
    JSON.stringify({
      v: CHECKPOINT_VERSION,
      agentId: state.agentId,
      writtenAt: state.writtenAt,
      clean: state.clean,
      dropped: state.dropped,
      groups: state.pending.map((g) => [
        g.service,
        g.minute,
        g.endpoints.length,
        ...(g.socket ? [g.socket.rxQueueBytes, g.socket.drops] : []),
      ]),
      columns,
      strings,
      outbox: state.outbox.map((r) => [r.partitionKey, r.seq, r.lines, r.data.length]),
      ...(ct ? { conntrack: ct.map((b) => b[0]) } : {}),
      ...(state.hookLines ? { hookLines: state.hookLines } : {}),
      ...(sequence > 0 ? { sequence } : {}),
    }),
  );
  scratch.headBytes = head.length;
  const packed: number[] = [];
  let at = 4 + head.length;
  for (const size of sizes) {
    packed.push(at);
    at += size;
  }
  const total = at + ctBytes + outboxBytes;
  // A head longer than the room left needs more memory (the columns come along) before they move.
  if (total > memory.byteLength) memory = scratch.memoryFor(total, 0, 0, end);
  // Over all the memory: the columns may have been written past the body's end.
  packColumns(new Uint8Array(memory), written, packed, sizes);
  const body = new Uint8Array(memory, 0, total);
  new DataView(memory).setUint32(0, head.length, true);
  body.set(head, 4);
  if (ct) {
    const view = new DataView(memory, at, ctBytes);
    for (let j = 0; j < ct.length; j++) {
      const b = ct[j]!;
      view.setFloat64(j * 32, b[1], true);
      view.setFloat64(j * 32 + 8, b[2], true);
      view.setFloat64(j * 32 + 16, b[3], true);
      view.setFloat64(j * 32 + 24, b[4], true);
    }
    at += ctBytes;
  }
  for (const r of state.outbox) {
    body.set(r.data, at);
    at += r.data.length;
  }
  return body;
}

/** What retiring a checkpoint writes over its magic (`UWCK` becomes `UWCR`): superseded, not damaged. */
export const RETIRED_MARK = { at: 3, bytes: Buffer.from('R', 'latin1') } as const;

/** Whether `buf` is a checkpoint a newer one retired. */
export function isRetiredCheckpoint(buf: Buffer): boolean {
  return buf.length >= 4 && buf.toString('latin1', 0, 4) === 'UWCR';
}

/** The two lines before the body: the magic and the body's SHA-256 in hex. */
export function checkpointPreamble(digestHex: string): Buffer {
  return Buffer.from(`${MAGIC}${digestHex}\n`, 'latin1');
}

/** Encodes a checkpoint in one buffer (the file writes the preamble and body apart, hashing off the loop). */
export function encodeCheckpoint(state: CheckpointState): Buffer {
  const body = encodeCheckpointBody(state);
  return Buffer.concat([checkpointPreamble(createHash('sha256').update(body).digest('hex')), body]);
}

const counter = z.number().int().min(0).max(MAX_BLOCK_COUNTER);
const text = z.string().min(1).max(256);
const HeadSchema = z.object({
  v: z.number(),
  agentId: z.string().min(1).max(128),
  writtenAt: z.number().int().min(946_684_800_000).max(4_102_444_800_000),
  clean: z.boolean(),
  dropped: counter,
  groups: z.array(
    z.union([
      z.tuple([text, z.number().int().min(0).max(100_000_000), z.number().int().min(0)]),
      z.tuple([
        text,
        z.number().int().min(0).max(100_000_000),
        z.number().int().min(0),
        counter,
        counter,
      ]),
    ]),
  ),
  columns: z.array(z.tuple([z.string(), z.enum(['u8', 'u16', 'u32', 'i32', 'f64'])])),
  strings: z.array(z.string().max(256)),
  outbox: z
    .array(
      z.tuple([
        z.string().min(1).max(256),
        z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
        z.number().int().min(0).max(1_000_000),
        z
          .number()
          .int()
          .min(1)
          .max(2 * 1024 * 1024),
      ]),
    )
    .max(MAX_OUTBOX_RECORDS),
  conntrack: z.array(z.string().min(1).max(200)).optional(),
  hookLines: z
    .array(
      z.tuple([z.string().min(3).max(64), z.number().int().min(1).max(Number.MAX_SAFE_INTEGER)]),
    )
    .max(MAX_HOOK_DAEMONS)
    .optional(),
  sequence: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});

const isCounter = (v: number) => Number.isInteger(v) && v >= 0 && v <= MAX_BLOCK_COUNTER;

/** Reads `count` elements of `type` at `at` of `buf` into a fresh (aligned) typed array. */
function column(buf: Buffer, at: number, type: ColumnType, count: number): ColumnArray {
  const arr = new ARRAYS[type](count);
  const bytes = new Uint8Array(arr.buffer);
  bytes.set(buf.subarray(at, at + bytes.length));
  return arr;
}

/** A decoded checkpoint, or why it cannot be used. */
export type DecodedCheckpoint =
  | { ok: true; state: CheckpointState<BlockEndpoint[]> }
  | { ok: false; reason: string };

/** Decodes and checks a checkpoint of agent `agentId`; never throws. */
export function decodeCheckpoint(
  buf: Buffer,
  agentId: string,
  limits: CheckpointLimits,
): DecodedCheckpoint {
  try {
    return decodeOrRefuse(buf, agentId, limits);
  } catch (err) {
    return { ok: false, reason: `undecodable: ${(err as Error).message}` };
  }
}

function decodeOrRefuse(buf: Buffer, agentId: string, limits: CheckpointLimits): DecodedCheckpoint {
  if (buf.length > limits.maxBytes)
    return { ok: false, reason: `${buf.length} bytes, more than ${limits.maxBytes}` };
  const magic = MAGIC_RE.exec(buf.toString('latin1', 0, 9));
  if (!magic) return { ok: false, reason: 'not a checkpoint (no UWCK magic)' };
  if (magic[0] !== MAGIC)
    return {
      ok: false,
      reason: `format ${magic[1]} is not read by this agent (it writes format ${CHECKPOINT_VERSION})`,
    };
  if (buf.length < HEAD_BYTES + 4)
    return { ok: false, reason: 'digest mismatch (damaged or cut short)' };
  const digest = buf.toString('latin1', MAGIC.length, HEAD_BYTES - 1);
  const body = buf.subarray(HEAD_BYTES);
  if (buf[HEAD_BYTES - 1] !== 0x0a || createHash('sha256').update(body).digest('hex') !== digest)
    return { ok: false, reason: 'digest mismatch (damaged or cut short)' };
  checkByteOrder();
  const headLength = body.readUInt32LE(0);
  if (headLength > MAX_HEAD_BYTES || 4 + headLength > body.length)
    return { ok: false, reason: `head of ${headLength} bytes does not fit the body` };
  const json: unknown = JSON.parse(body.toString('utf8', 4, 4 + headLength));
  const v = (json as { v?: unknown } | null)?.v;
  if (v !== CHECKPOINT_VERSION)
    return {
      ok: false,
      reason: `version ${String(v)} is not supported (expected ${CHECKPOINT_VERSION})`,
    };
  const parsed = HeadSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: `${issue?.path.join('.')}: ${issue?.message}` };
  }
  const c = parsed.data;
  if (c.agentId !== agentId)
    return { ok: false, reason: `written by agent ${c.agentId}, not this agent ${agentId}` };
  let n = 0;
  for (const g of c.groups) n += g[2];
  if (n > limits.maxEndpoints)
    return { ok: false, reason: `more than ${limits.maxEndpoints} endpoints` };
  if (c.conntrack && c.conntrack.length > limits.maxEndpoints)
    return { ok: false, reason: `more than ${limits.maxEndpoints} conntrack entries` };

  // The columns: each known, of an allowed type, the required ones all there.
  let at = 4 + headLength;
  const cols = new Map<ColumnName, ColumnArray>();
  for (const [name, type] of c.columns) {
    const allowed = (COLUMNS as Record<string, readonly ColumnType[]>)[name];
    if (!allowed?.includes(type) || cols.has(name as ColumnName))
      return { ok: false, reason: `column ${name} (${type}) is not one of this format` };
    const size = ARRAYS[type].BYTES_PER_ELEMENT * n;
    if (at + size > body.length) return { ok: false, reason: `column ${name} is cut short` };
    cols.set(name as ColumnName, column(body, at, type, n));
    at += size;
  }
  for (const name of Object.keys(COLUMNS) as ColumnName[]) {
    if (!OPTIONAL.has(name) && !cols.has(name))
      return { ok: false, reason: `column ${name} is missing` };
  }
  const col = (name: ColumnName) => cols.get(name)!;
  const ctValues = c.conntrack ? c.conntrack.length * 4 * 8 : 0;
  if (at + ctValues > body.length) return { ok: false, reason: 'conntrack counters cut short' };
  const ct = c.conntrack ? (column(body, at, 'f64', c.conntrack.length * 4) as Float64Array) : null;
  at += ctValues;

  const strings = c.strings;
  const str = (i: number): string | undefined => {
    const s = strings[i];
    return s !== undefined && s.length > 0 ? s : undefined;
  };
  const [ip, ip4, port, localIp, localIp4, localPort] = [
    col('ip'),
    col('ip4'),
    col('port'),
    col('localIp'),
    col('localIp4'),
    col('localPort'),
  ];
  const counters = COUNTERS.map((k) => col(k));
  const [fs, ls, source, rate] = [
    col('firstSecond'),
    col('lastSecond'),
    col('source'),
    col('sampleRate'),
  ];
  const [nIp, nPort, pid, proc, tag] = [
    cols.get('natFromIp'),
    cols.get('natFromPort'),
    cols.get('pid'),
    cols.get('process'),
    cols.get('clientId'),
  ];
  const pending: PendingGroup<BlockEndpoint[]>[] = [];
  let i = 0;
  for (const [gi, g] of c.groups.entries()) {
    const endpoints: BlockEndpoint[] = [];
    for (let j = 0; j < g[2]; j++, i++) {
      const bad = (why: string): DecodedCheckpoint => ({
        ok: false,
        reason: `pending.${gi}.endpoints.${j}: ${why}`,
      });
      const eIp = ip[i] === 0 ? ipv4Text(ip4[i]!) : str(ip[i]! - 1);
      const eLocal = localIp[i] === 0 ? ipv4Text(localIp4[i]!) : str(localIp[i]! - 1);
      if (eIp === undefined || eLocal === undefined) return bad('bad address');
      const [pi, bi, po, bo] = counters.map((a) => a[i]!) as [number, number, number, number];
      if (!isCounter(pi) || !isCounter(bi) || !isCounter(po) || !isCounter(bo))
        return bad('bad counter');
      if (fs[i]! > 59 || ls[i]! > 59 || fs[i]! > ls[i]!) return bad('bad seconds');
      const src = FLOW_SOURCES[source[i]!];
      if (src === undefined) return bad('bad source');
      if (rate[i]! < 1 || rate[i]! > 1_000_000) return bad('bad sample rate');
      const e: BlockEndpoint = {
        ip: eIp,
        port: port[i]!,
        localIp: eLocal,
        localPort: localPort[i]!,
        pktsIn: pi,
        bytesIn: bi,
        pktsOut: po,
        bytesOut: bo,
        firstSecond: fs[i]!,
        lastSecond: ls[i]!,
        source: src,
        sampleRate: rate[i]!,
      };
      if (nIp && nIp[i] !== 0) {
        const s = str(nIp[i]! - 1);
        if (s === undefined) return bad('bad NAT address');
        e.natFromIp = s;
      }
      if (nPort && nPort[i] !== -1) {
        if (nPort[i]! < 0 || nPort[i]! > 65_535) return bad('bad NAT port');
        e.natFromPort = nPort[i]!;
      }
      const ePid = pid && pid[i] !== 0 ? pid[i]! : undefined;
      if (ePid !== undefined && ePid > 4_194_304) return bad('bad pid');
      const eProc = proc && proc[i] !== 0 ? str(proc[i]! - 1) : undefined;
      if (proc && proc[i] !== 0 && eProc === undefined) return bad('bad process');
      if (ePid !== undefined || eProc !== undefined) {
        e.owner = {};
        if (ePid !== undefined) e.owner.pid = ePid;
        if (eProc !== undefined) e.owner.process = eProc;
      }
      if (tag && tag[i] !== 0) {
        const s = str(tag[i]! - 1);
        if (s === undefined) return bad('bad client id');
        e.clientId = s;
      }
      endpoints.push(e);
    }
    const group: PendingGroup<BlockEndpoint[]> = { service: g[0], minute: g[1], endpoints };
    if (g.length === 5) group.socket = { rxQueueBytes: g[3], drops: g[4] };
    pending.push(group);
  }

  const outbox: ShipRecord[] = [];
  for (const [j, [k, s, l, size]] of c.outbox.entries()) {
    if (at + size > body.length) return { ok: false, reason: `outbox.${j}: cut short` };
    const data = Buffer.from(body.subarray(at, at + size));
    at += size;
    // Only this agent's sealed blocks: the record goes to the stream as it is.
    const block = decodeBlock(data);
    if (!block.ok) return { ok: false, reason: `outbox.${j}: ${block.reason}` };
    if (block.block.agentId !== agentId || block.block.seq !== s)
      return { ok: false, reason: `outbox.${j}: not this agent's block ${s}` };
    outbox.push({ partitionKey: k, seq: s, lines: l, data });
  }
  if (at !== body.length) return { ok: false, reason: `${body.length - at} bytes after the body` };
  const state: CheckpointState<BlockEndpoint[]> = {
    agentId: c.agentId,
    writtenAt: c.writtenAt,
    clean: c.clean,
    dropped: c.dropped,
    pending,
    outbox,
  };
  if (c.hookLines) state.hookLines = c.hookLines;
  if (c.sequence !== undefined) state.sequence = c.sequence;
  if (c.conntrack && ct) {
    const baselines: ConntrackBaseline[] = [];
    for (const [j, key] of c.conntrack.entries()) {
      const v = [ct[j * 4]!, ct[j * 4 + 1]!, ct[j * 4 + 2]!, ct[j * 4 + 3]!];
      if (!v.every(isCounter)) return { ok: false, reason: `conntrack.${j}: bad counter` };
      baselines.push([key, v[0]!, v[1]!, v[2]!, v[3]!]);
    }
    state.conntrack = baselines;
  }
  return { ok: true, state };
}
