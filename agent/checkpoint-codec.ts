/**
 * The bytes of the agent's checkpoint: what it holds unsealed (the block
 * sealer's pending per service-minute endpoints and socket health), the
 * sealed records it is about to spool (the outbox), and its cumulative loss
 * counter. See checkpoint-file.ts for when it is written and read.
 *
 * Layout: the magic line `UWCK1`, the SHA-256 (hex) of the body on a second
 * line, then the body as JSON. Endpoints are arrays of positions, so a
 * checkpoint of 100,000 endpoints stays near 8 MB and encodes in tens of ms
 * (the block codec's brotli would take seconds). The file is local but is
 * still checked like any input: a wrong digest, version, agent or bound is a
 * reason, never a throw.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  type BlockEndpoint,
  type BlockSocketHealth,
  MAX_BLOCK_COUNTER,
} from '../contract/block.js';
import { decodeBlock } from '../contract/block-codec.js';
import { FLOW_SOURCES, type FlowSource } from '../contract/wire.js';
import type { ConntrackBaseline } from './conntrack-source.js';
import type { ShipRecord } from './record-packer.js';

const MAGIC = 'UWCK1\n';
/** Version of the body; a checkpoint of another version is skipped. */
export const CHECKPOINT_VERSION = 1;

/** One service-minute the sealer holds unsealed. */
export interface PendingGroup {
  service: string;
  minute: number;
  endpoints: BlockEndpoint[];
  socket?: BlockSocketHealth;
}

/** What a checkpoint holds. */
export interface CheckpointState {
  agentId: string;
  /** Epoch ms of the write. */
  writtenAt: number;
  /** Written at a clean stop: everything pending was sealed and spooled, only the counters count. */
  clean: boolean;
  /** The agent's cumulative loss (the heartbeat's `dropped`) across its runs. */
  dropped: number;
  pending: PendingGroup[];
  /** Sealed block records that may not be in the spool yet (spooled right after this write). */
  outbox: ShipRecord[];
  /** Conntrack entries' counters that the pending and sealed deltas add up to, when conntrack is read. */
  conntrack?: ConntrackBaseline[];
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

/** The bounds for an agent holding at most `maxFlows` flows. */
export function checkpointLimits(maxFlows: number): CheckpointLimits {
  const maxEndpoints = CHECKPOINT_ENDPOINTS_PER_FLOW * maxFlows;
  return { maxEndpoints, maxBytes: maxEndpoints * MAX_ENDPOINT_BYTES + MAX_OUTBOX_BYTES };
}

type EndpointRow = [
  string, // ip
  number, // port
  string, // localIp
  number, // localPort
  number, // pktsIn
  number, // bytesIn
  number, // pktsOut
  number, // bytesOut
  number, // firstSecond
  number, // lastSecond
  FlowSource,
  number, // sampleRate
  string | null, // natFromIp
  number | null, // natFromPort
  number | null, // owner pid
  string | null, // owner process
  string | null, // clientId
];

function row(e: BlockEndpoint): EndpointRow {
  return [
    e.ip,
    e.port,
    e.localIp,
    e.localPort,
    e.pktsIn,
    e.bytesIn,
    e.pktsOut,
    e.bytesOut,
    e.firstSecond,
    e.lastSecond,
    e.source,
    e.sampleRate,
    e.natFromIp ?? null,
    e.natFromPort ?? null,
    e.owner?.pid ?? null,
    e.owner?.process ?? null,
    e.clientId ?? null,
  ];
}

/** Encodes a checkpoint; the caller has bounded what it holds. */
export function encodeCheckpoint(state: CheckpointState): Buffer {
  const body = Buffer.from(
    JSON.stringify({
      v: CHECKPOINT_VERSION,
      agentId: state.agentId,
      writtenAt: state.writtenAt,
      clean: state.clean,
      dropped: state.dropped,
      pending: state.pending.map((g) => ({
        service: g.service,
        minute: g.minute,
        ...(g.socket ? { socket: [g.socket.rxQueueBytes, g.socket.drops] } : {}),
        endpoints: g.endpoints.map(row),
      })),
      outbox: state.outbox.map((r) => ({
        k: r.partitionKey,
        s: r.seq,
        l: r.lines,
        d: r.data.toString('base64'),
      })),
      ...(state.conntrack ? { conntrack: state.conntrack } : {}),
    }),
  );
  const digest = createHash('sha256').update(body).digest('hex');
  return Buffer.concat([Buffer.from(`${MAGIC}${digest}\n`), body]);
}

const counter = z.number().int().min(0).max(MAX_BLOCK_COUNTER);
const text = z.string().min(1).max(256);
const HeadSchema = z.object({
  v: z.number(),
  agentId: z.string().min(1).max(128),
  writtenAt: z.number().int().min(946_684_800_000).max(4_102_444_800_000),
  clean: z.boolean(),
  dropped: counter,
  pending: z.array(
    z.object({
      service: text,
      minute: z.number().int().min(0).max(100_000_000),
      socket: z.tuple([counter, counter]).optional(),
      endpoints: z.array(z.unknown()),
    }),
  ),
  outbox: z
    .array(
      z.object({
        k: z.string().min(1).max(256),
        s: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
        l: z.number().int().min(0).max(1_000_000),
        d: z.string().max(2 * 1024 * 1024),
      }),
    )
    .max(MAX_OUTBOX_RECORDS),
  conntrack: z
    .array(z.tuple([z.string().min(1).max(200), counter, counter, counter, counter]))
    .optional(),
});

const isInt = (v: unknown, min: number, max: number): v is number =>
  Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const isText = (v: unknown): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= 256;
const SOURCES = new Set<unknown>(FLOW_SOURCES);

/** One stored row as an endpoint, or why it is not one. */
function endpointOf(r: unknown): BlockEndpoint | string {
  if (!Array.isArray(r) || r.length !== 17) return 'not an endpoint row of 17 positions';
  const [
    ip,
    port,
    localIp,
    localPort,
    pi,
    bi,
    po,
    bo,
    fs,
    ls,
    source,
    rate,
    nIp,
    nPort,
    pid,
    proc,
    tag,
  ] = r as unknown[];
  if (!isText(ip) || !isText(localIp)) return 'bad address';
  if (!isInt(port, 0, 65_535) || !isInt(localPort, 0, 65_535)) return 'bad port';
  for (const c of [pi, bi, po, bo]) if (!isInt(c, 0, MAX_BLOCK_COUNTER)) return 'bad counter';
  if (!isInt(fs, 0, 59) || !isInt(ls, 0, 59) || fs > ls) return 'bad seconds';
  if (!SOURCES.has(source)) return 'bad source';
  if (!isInt(rate, 1, 1_000_000)) return 'bad sample rate';
  if (nIp !== null && !isText(nIp)) return 'bad NAT address';
  if (nPort !== null && !isInt(nPort, 0, 65_535)) return 'bad NAT port';
  if (pid !== null && !isInt(pid, 1, 4_194_304)) return 'bad pid';
  if (proc !== null && !isText(proc)) return 'bad process';
  if (tag !== null && !isText(tag)) return 'bad client id';
  const e: BlockEndpoint = {
    ip,
    port,
    localIp,
    localPort,
    pktsIn: pi as number,
    bytesIn: bi as number,
    pktsOut: po as number,
    bytesOut: bo as number,
    firstSecond: fs,
    lastSecond: ls,
    source: source as FlowSource,
    sampleRate: rate,
  };
  if (nIp !== null) e.natFromIp = nIp;
  if (nPort !== null) e.natFromPort = nPort;
  if (pid !== null || proc !== null) {
    e.owner = {};
    if (pid !== null) e.owner.pid = pid;
    if (proc !== null) e.owner.process = proc;
  }
  if (tag !== null) e.clientId = tag;
  return e;
}

/** A decoded checkpoint, or why it cannot be used. */
export type DecodedCheckpoint =
  | { ok: true; state: CheckpointState }
  | { ok: false; reason: string };

/** Decodes and checks a checkpoint of agent `agentId`; never throws. */
export function decodeCheckpoint(
  buf: Buffer,
  agentId: string,
  limits: CheckpointLimits,
): DecodedCheckpoint {
  try {
    if (buf.length > limits.maxBytes)
      return { ok: false, reason: `${buf.length} bytes, more than ${limits.maxBytes}` };
    const head = MAGIC.length + 65;
    if (buf.length < head || buf.toString('latin1', 0, MAGIC.length) !== MAGIC)
      return { ok: false, reason: 'not a checkpoint (no UWCK1 magic)' };
    const digest = buf.toString('latin1', MAGIC.length, head - 1);
    const body = buf.subarray(head);
    if (buf[head - 1] !== 0x0a || createHash('sha256').update(body).digest('hex') !== digest)
      return { ok: false, reason: 'digest mismatch (damaged or cut short)' };
    const json: unknown = JSON.parse(body.toString('utf8'));
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
    let endpoints = 0;
    const pending: PendingGroup[] = [];
    for (const [i, g] of c.pending.entries()) {
      endpoints += g.endpoints.length;
      if (endpoints > limits.maxEndpoints)
        return { ok: false, reason: `more than ${limits.maxEndpoints} endpoints` };
      const out: BlockEndpoint[] = [];
      for (const [j, r] of g.endpoints.entries()) {
        const e = endpointOf(r);
        if (typeof e === 'string')
          return { ok: false, reason: `pending.${i}.endpoints.${j}: ${e}` };
        out.push(e);
      }
      const group: PendingGroup = { service: g.service, minute: g.minute, endpoints: out };
      if (g.socket) group.socket = { rxQueueBytes: g.socket[0], drops: g.socket[1] };
      pending.push(group);
    }
    const outbox: ShipRecord[] = [];
    for (const [i, r] of c.outbox.entries()) {
      const data = Buffer.from(r.d, 'base64');
      // Only this agent's sealed blocks: the record goes to the stream as it is.
      const block = decodeBlock(data);
      if (!block.ok) return { ok: false, reason: `outbox.${i}: ${block.reason}` };
      if (block.block.agentId !== agentId || block.block.seq !== r.s)
        return { ok: false, reason: `outbox.${i}: not this agent's block ${r.s}` };
      outbox.push({ partitionKey: r.k, seq: r.s, lines: r.l, data });
    }
    if (c.conntrack && c.conntrack.length > limits.maxEndpoints)
      return { ok: false, reason: `more than ${limits.maxEndpoints} conntrack entries` };
    const state: CheckpointState = {
      agentId: c.agentId,
      writtenAt: c.writtenAt,
      clean: c.clean,
      dropped: c.dropped,
      pending,
      outbox,
    };
    if (c.conntrack) state.conntrack = c.conntrack;
    return { ok: true, state };
  } catch (err) {
    return { ok: false, reason: `undecodable: ${(err as Error).message}` };
  }
}
