/**
 * The dgram hook protocol, major version 1: the one definition of what a
 * hooked daemon (agent/hook/register.mjs) writes to the agent's hook socket
 * and what the receiver (agent/hook-receiver.ts) accepts. docs/hook-protocol.md
 * describes it for people; this file is the authority.
 *
 * The channel is a Unix stream socket carrying NDJSON: one message per line,
 * each the deltas of one window of one daemon. The hook is plain JavaScript
 * preloaded into daemons, so it cannot import this file; it follows it by
 * hand, and test/e2e/agent/hook-protocol.test.ts checks every message it
 * really sends against HookMessageSchema.
 *
 * Version rule: `v` is the major version. Compatible additions (a new
 * optional message field, a new optional trailing row position) keep `v`;
 * receivers ignore fields and positions they do not know. Anything else
 * (a field removed, renamed, retyped or given a new meaning, positions
 * reordered) bumps `v`, and a receiver refuses every major version it does
 * not know.
 */
import { z } from 'zod';
import { normalizeIp } from './ip-address.js';

/** The major protocol version this schema describes. */
export const HOOK_PROTOCOL_VERSION = 1;

/** Longest message line, bytes; a receiver closes a connection that sends a longer one. */
export const MAX_HOOK_MESSAGE_BYTES = 8 * 1024 * 1024;

/**
 * Most flow rows in one message; a hook splits a larger window into several
 * messages. A worst-case row (two long IPv6 texts, eight large counters, a
 * 256-character client id) is under 600 bytes, so this many stay well within
 * MAX_HOOK_MESSAGE_BYTES.
 */
export const MAX_HOOK_ROWS = 10_000;

/**
 * Largest datagram count and byte count one row may carry. A hook that kept
 * counting while no agent listened sends a larger count over several reports;
 * a receiver skips a row above these. 2^32 - 1 datagrams is over an hour at a
 * million a second; 2^48 bytes is that many datagrams of 64 KiB.
 */
export const MAX_ROW_PACKETS = 4_294_967_295;
export const MAX_ROW_BYTES = 2 ** 48;
/** Largest value of a message's drop counters (overflowPackets, droppedFlows, droppedPackets). */
export const MAX_DROP_COUNTER = 2 ** 48;

/**
 * What the agent writes back, one JSON line each: `{"ack": n}`, the number of
 * lines of this connection it has taken in (bad ones included). The first,
 * `{"ack": 0}`, comes once the agent has learned from the kernel which process
 * is connected and means "ready". A hook sends the lines not acknowledged
 * when a connection ends again, unchanged (same `line` number, same rows), on
 * its next connection once the agent is ready; an agent whose checkpoint
 * already holds a line of that process (by its `line` number) acknowledges
 * it without counting it again.
 */
export const HookAckSchema = z.object({
  ack: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
/** An acknowledgement line as the agent writes it. */
export type HookAck = z.output<typeof HookAckSchema>;
/** Longest acknowledgement line a hook accepts, bytes. */
export const MAX_HOOK_ACK_BYTES = 64;

/** Longest process name and client id, UTF-16 code units. */
export const MAX_PROCESS_NAME = 256;
export const MAX_CLIENT_ID = 256;

/** Most positions a row may have: the known ones plus room for compatible additions. */
export const MAX_ROW_POSITIONS = 16;

/** Highest pid Linux can hand out (PID_MAX_LIMIT). */
export const MAX_PID = 4_194_304;

/** Times are epoch milliseconds between 2000 and 2100: anything else is a unit mistake or a broken clock. */
export const MIN_EPOCH_MS = 946_684_800_000;
export const MAX_EPOCH_MS = 4_102_444_800_000;

/** The positions of a flow row, in order. `clientId` is optional. */
export const FLOW_ROW_FIELDS = [
  'localIp',
  'localPort',
  'remoteIp',
  'remotePort',
  'pktsIn',
  'bytesIn',
  'pktsOut',
  'bytesOut',
  'firstSeen',
  'lastSeen',
  'clientId',
] as const;
export type FlowRowField = (typeof FLOW_ROW_FIELDS)[number];

/**
 * [min, max] of each integer position of a flow row, by position (null for
 * the addresses at 0 and 2): the bounds of FlowRowSchema, for the checks
 * that take a row without it.
 */
export const ROW_INTEGER_BOUNDS: readonly (readonly [number, number] | null)[] = [
  null,
  [0, 65_535],
  null,
  [0, 65_535],
  [0, MAX_ROW_PACKETS],
  [0, MAX_ROW_BYTES],
  [0, MAX_ROW_PACKETS],
  [0, MAX_ROW_BYTES],
  [MIN_EPOCH_MS, MAX_EPOCH_MS],
  [MIN_EPOCH_MS, MAX_EPOCH_MS],
];

/** Control characters (C0, DEL, C1): never in a name that ends up in logs and tables. */
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

const text = (max: number) =>
  z
    .string('must be a string')
    .min(1, 'is empty')
    .max(max, `is longer than ${max} characters`)
    .refine((s) => !CONTROL_RE.test(s), 'has control characters');

const integer = (min: number, max: number) =>
  z
    .number('must be a number')
    .min(min, 'out of range')
    .max(max, 'out of range')
    .int('must be an integer');

const Packets = integer(0, MAX_ROW_PACKETS);
const Bytes = integer(0, MAX_ROW_BYTES);
const DropCounter = integer(0, MAX_DROP_COUNTER);
const Port = integer(0, 65_535);
const EpochMs = integer(MIN_EPOCH_MS, MAX_EPOCH_MS);

/** An IP address literal (no zone index), normalized to its canonical text. */
const Ip = z
  .string('must be a string')
  .max(45, 'is too long for an IP address')
  .transform((s, ctx) => {
    const ip = normalizeIp(s);
    if (ip === null) {
      ctx.addIssue({ code: 'custom', message: 'is not an IPv4 or IPv6 address' });
      return z.NEVER;
    }
    return ip;
  });

/**
 * One flow's deltas in one window, as a positional array (names in
 * FLOW_ROW_FIELDS): the daemon's address and port, the client's, datagrams
 * and bytes received and sent, and the epoch ms of the window's first and
 * last datagram of the flow. Positions after `clientId` are ignored.
 */
export const FlowRowSchema = z
  .tuple(
    [
      Ip.describe('localIp: the daemon socket’s bound address'),
      Port.describe('localPort: the daemon socket’s bound port'),
      Ip.describe('remoteIp: the client’s address as the daemon sees it'),
      Port.describe('remotePort: the client’s port'),
      Packets.describe('pktsIn: datagrams received from the client in the window'),
      Bytes.describe('bytesIn: their payload bytes'),
      Packets.describe('pktsOut: datagrams sent to the client in the window'),
      Bytes.describe('bytesOut: their payload bytes'),
      EpochMs.describe('firstSeen: epoch ms of the flow’s first datagram in the window'),
      EpochMs.describe('lastSeen: epoch ms of the flow’s last datagram in the window'),
      text(MAX_CLIENT_ID)
        .nullable()
        .optional()
        .describe('clientId: the application’s id of the client; null or absent when untagged'),
    ],
    z.unknown(),
  )
  .refine((row) => row.length <= MAX_ROW_POSITIONS, {
    message: `has more than ${MAX_ROW_POSITIONS} positions`,
  });

/** A flow row as decoded (addresses canonical). */
export type FlowRow = z.output<typeof FlowRowSchema>;

/** The fields of a message besides its rows. */
const envelope = {
  v: z.literal(HOOK_PROTOCOL_VERSION).describe('major protocol version'),
  pid: integer(1, MAX_PID).describe(
    'the daemon’s process id as it says; the agent uses the kernel’s (the socket’s peer) instead',
  ),
  process: text(MAX_PROCESS_NAME).describe(
    'the daemon’s process name (/proc/self/comm) as it says; the agent reads the kernel’s',
  ),
  at: EpochMs.describe('epoch ms at which the window ended: no row’s times are later'),
  overflowPackets: DropCounter.describe(
    'datagrams since the previous delivered report that no row counts because the hook’s flow table was full (a delta)',
  ),
  droppedFlows: DropCounter.describe(
    'flow windows whose deltas never reached an agent, since the hook started (cumulative; 0 from hooks that keep counts while the agent is away)',
  ),
  droppedPackets: DropCounter.describe(
    'datagrams in those windows, plus overflow of undelivered windows, since the hook started (cumulative)',
  ),
  line: integer(1, Number.MAX_SAFE_INTEGER)
    .optional()
    .describe(
      'this line’s number in the hook’s process run, from 1 up; a line sent again after a reconnect keeps its number and content (absent from older hooks: their lines are never recognised as sent again)',
    ),
};

const Envelope = z.object({
  ...envelope,
  flows: z
    .array(z.unknown(), 'must be an array')
    .max(MAX_HOOK_ROWS, `has more than ${MAX_HOOK_ROWS} rows`),
});

/** One window of one daemon: the whole message, every row valid. */
export const HookMessageSchema = z
  .object({
    ...envelope,
    flows: z.array(FlowRowSchema).max(MAX_HOOK_ROWS),
  })
  .superRefine((m, ctx) => {
    m.flows.forEach((row, i) => {
      const late = rowAfterWindow(row, m.at);
      if (late !== null) ctx.addIssue({ code: 'custom', path: ['flows', i], message: late });
    });
  });

/** A message as decoded. */
export type HookMessage = z.output<typeof HookMessageSchema>;

/** A row left out of a message, with where and why. */
export interface SkippedRow {
  row: number;
  /** Located reason, e.g. `row 17: remotePort 70000 out of range`. */
  reason: string;
}

/** What parseHookMessage makes of one decoded JSON line. */
export type HookParse =
  | {
      ok: true;
      /** The message with only its valid rows. */
      message: HookMessage;
      /** Rows left out, in order. */
      skipped: SkippedRow[];
    }
  | {
      ok: false;
      /** `version` when the message is of a major version this schema does not know. */
      kind: 'version' | 'malformed';
      /** Located reason, e.g. `pid -1 out of range` or `unknown major version 2`. */
      reason: string;
    };

/**
 * Validates one hook message (JSON already decoded). A malformed row is left
 * out and reported; anything wrong outside the rows refuses the whole message.
 * Never throws.
 */
export function parseHookMessage(json: unknown): HookParse {
  try {
    return parseOrRefuse(json);
  } catch (err) {
    // Only a getter or proxy in a hand-built object could get here, never JSON.parse output.
    return { ok: false, kind: 'malformed', reason: `unreadable message: ${String(err)}` };
  }
}

function parseOrRefuse(json: unknown): HookParse {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    return { ok: false, kind: 'malformed', reason: 'message is not a JSON object' };
  }
  const v = (json as { v?: unknown }).v;
  if (v !== HOOK_PROTOCOL_VERSION) {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) {
      return { ok: false, kind: 'version', reason: `unknown major version ${v}` };
    }
    return { ok: false, kind: 'malformed', reason: `v ${preview(v)} is not a protocol version` };
  }
  const env = Envelope.safeParse(json);
  if (!env.success) {
    return { ok: false, kind: 'malformed', reason: locate(env.error.issues, json) };
  }
  const flows: FlowRow[] = [];
  const skipped: SkippedRow[] = [];
  env.data.flows.forEach((raw, i) => {
    // The common row (canonical addresses, no extra positions) passes as it is;
    // anything else gets the schema, which also says what is wrong.
    if (isPlainValidRow(raw)) {
      const late = rowAfterWindow(raw, env.data.at);
      if (late === null) flows.push(raw);
      else skipped.push({ row: i, reason: `row ${i}: ${late}` });
      return;
    }
    const r = FlowRowSchema.safeParse(raw);
    const reason = r.success ? rowAfterWindow(r.data, env.data.at) : locateRow(r.error.issues, raw);
    if (reason === null && r.success) flows.push(r.data);
    else skipped.push({ row: i, reason: `row ${i}: ${reason}` });
  });
  return { ok: true, message: { ...env.data, flows }, skipped };
}

const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** Whether `v` is an address FlowRowSchema takes and returns unchanged (already canonical). */
export const isCanonicalIp = (v: unknown): v is string =>
  typeof v === 'string' && v.length <= 45 && normalizeIp(v) === v;

/** Whether `v` is a name the schema takes as it is: 1 to `max` characters, no control characters. */
export const isPlainText = (v: unknown, max: number): v is string =>
  typeof v === 'string' && v.length >= 1 && v.length <= max && !CONTROL_RE.test(v);

/**
 * Whether a row is one FlowRowSchema accepts and would return unchanged: 10
 * or 11 positions, addresses already canonical. Checks exactly what the
 * schema checks, without its per-row copies (100,000 rows a second on a busy
 * host).
 */
function isPlainValidRow(raw: unknown): raw is FlowRow {
  if (!Array.isArray(raw) || raw.length < 10 || raw.length > 11) return false;
  for (let p = 0; p < 10; p++) {
    const bounds = ROW_INTEGER_BOUNDS[p];
    if (bounds ? !isInt(raw[p], bounds[0], bounds[1]) : !isCanonicalIp(raw[p])) return false;
  }
  const clientId: unknown = raw[10];
  return clientId === undefined || clientId === null || isPlainText(clientId, MAX_CLIENT_ID);
}

/** Why a row's times lie after its window's end, or null. */
function rowAfterWindow(row: FlowRow, at: number): string | null {
  if (row[8] > at) return `firstSeen ${row[8]} is after the window's end ${at}`;
  if (row[9] > at) return `lastSeen ${row[9]} is after the window's end ${at}`;
  return null;
}

function locateRow(issues: readonly z.core.$ZodIssue[], row: unknown): string {
  if (!Array.isArray(row)) return `is not an array (${preview(row)})`;
  const issue = issues[0];
  const pos = issue?.path[0];
  if (issue === undefined || typeof pos !== 'number') return issue?.message ?? 'invalid';
  if (pos >= row.length) {
    return `has ${row.length} positions, needs at least ${FLOW_ROW_FIELDS.length - 1}`;
  }
  return `${FLOW_ROW_FIELDS[pos] ?? `position ${pos}`} ${preview(row[pos])} ${issue.message}`;
}

function locate(issues: readonly z.core.$ZodIssue[], input: unknown): string {
  const issue = issues[0];
  if (issue === undefined) return 'invalid';
  const field = issue.path.map(String).join('.');
  let value: unknown = input;
  for (const key of issue.path) value = (value as Record<PropertyKey, unknown>)?.[key];
  if (value === undefined) return `${field} missing`;
  if (Array.isArray(value)) return `${field} (${value.length} items) ${issue.message}`;
  return `${field} ${preview(value)} ${issue.message}`;
}

/** A short, log-safe rendering of an untrusted value. */
function preview(value: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  // JSON.stringify escapes C0 controls but not C1 ones.
  s = s.replace(/[\u007f-\u009f]/g, '?');
  return s.length > 48 ? `${s.slice(0, 45)}...` : s;
}
