/**
 * A fast reader of hook lines, beside the schema of hook-protocol.ts: it
 * scans a line's bytes as the hook writes them (JSON.stringify of a message,
 * every row valid) straight into columns, with no JSON value per row and no
 * text of the line. A busy host sends 100,000 rows a second, and JSON.parse's
 * arrays, numbers and strings per row, live until they are copied, are what
 * grows the agent's young generation.
 *
 * It accepts only a subset of what HookMessageSchema accepts: no whitespace,
 * escapes, fractions or exponents, no unknown or repeated keys, 10 or 11 row
 * positions, canonical addresses, every row valid. For anything else it
 * returns null, and the caller decides with JSON.parse and parseHookMessage,
 * which also say what is wrong. So whatever it accepts, the schema accepts
 * with the same values (test/unit/contract/hook-line-scan.test.ts checks it
 * against the schema on mutated lines).
 */

import { detached } from './detached-string.js';
import {
  HOOK_PROTOCOL_VERSION,
  type HookMessage,
  isCanonicalIp,
  isPlainText,
  MAX_CLIENT_ID,
  MAX_DROP_COUNTER,
  MAX_EPOCH_MS,
  MAX_HOOK_ROWS,
  MAX_PID,
  MAX_PROCESS_NAME,
  MIN_EPOCH_MS,
  ROW_INTEGER_BOUNDS,
} from './hook-protocol.js';

/** A message's fields besides its rows. */
export type HookEnvelope = Omit<HookMessage, 'flows'>;

/** The row position of each of HookColumns' numbers per row, in their order. */
const COLUMN_POSITIONS = [1, 3, 4, 5, 6, 7, 8, 9] as const;

/** Numbers per row in HookColumns.numbers, in this order. */
export const HOOK_ROW_NUMBERS = COLUMN_POSITIONS.length;

/**
 * A message's rows as columns: per row HOOK_ROW_NUMBERS numbers (localPort,
 * remotePort, pktsIn, bytesIn, pktsOut, bytesOut, firstSeen, lastSeen, as
 * sent), the two addresses, and the client ids (null when no row has one).
 */
export interface HookColumns {
  rows: number;
  numbers: Float64Array;
  localIps: string[];
  remoteIps: string[];
  clientIds: (string | undefined)[] | null;
}

/** Where HookColumns' numbers come from: at least `length` of them (a pool may hand out more). */
export type Float64Allocator = (length: number) => Float64Array;

const newFloat64: Float64Allocator = (length) => new Float64Array(length);

/** A message's rows as HookColumns. */
export function hookColumns(
  flows: HookMessage['flows'],
  allocate: Float64Allocator = newFloat64,
): HookColumns {
  const n = flows.length;
  const numbers = allocate(n * HOOK_ROW_NUMBERS);
  const localIps = new Array<string>(n);
  const remoteIps = new Array<string>(n);
  let clientIds: (string | undefined)[] | null = null;
  for (let i = 0; i < n; i++) {
    const row = flows[i]!;
    const at = i * HOOK_ROW_NUMBERS;
    localIps[i] = row[0];
    remoteIps[i] = row[2];
    for (let k = 0; k < HOOK_ROW_NUMBERS; k++)
      numbers[at + k] = row[COLUMN_POSITIONS[k]!] as number;
    const tag = row[10];
    if (typeof tag === 'string') {
      clientIds ??= new Array<string | undefined>(n).fill(undefined);
      clientIds[i] = tag;
    }
  }
  return { rows: n, numbers, localIps, remoteIps, clientIds };
}

/**
 * Distinct address texts remembered as canonical before the memory starts
 * afresh: above the agent's default flow table (100,000 flows), so a table
 * full of distinct peers does not empty the memory over and over, copying
 * every address again each time.
 */
const MAX_KNOWN_IPS = 262_144;

/**
 * Address texts already found canonical, each kept as one string: a row's
 * address is checked once, not per row, and the columns share that string
 * instead of holding a fresh copy per row until the drain.
 */
class CanonicalIps {
  private readonly known = new Map<string, string>();
  /** IPv4 addresses by first octet, then the other three as one small integer (no heap number). */
  private readonly v4 = Array.from({ length: 256 }, () => new Map<number, string>());
  private v4Count = 0;

  /** The remembered text of IPv4 address a.b.c.d, from `line` (where it is spelled) when new. */
  ipv4(a: number, rest: number, line: Buffer, start: number, end: number): string {
    const byFirst = this.v4[a]!;
    const hit = byFirst.get(rest);
    if (hit !== undefined) return hit;
    if (this.v4Count >= MAX_KNOWN_IPS) {
      for (const m of this.v4) m.clear();
      this.v4Count = 0;
    }
    // Digits and dots: a fresh string of its own, in no larger one.
    const own = line.toString('latin1', start, end);
    byFirst.set(rest, own);
    this.v4Count++;
    return own;
  }

  /** The remembered string equal to `text` when it is a canonical address, else null. */
  canonical(text: string): string | null {
    const hit = this.known.get(text);
    if (hit !== undefined) return hit;
    if (!isCanonicalIp(text)) return null;
    if (this.known.size >= MAX_KNOWN_IPS) this.known.clear();
    // Not the line's slice: the memory and every flow given this string would keep the line alive.
    const own = detached(text);
    this.known.set(own, own);
    return own;
  }
}

/** A scanned line: its envelope and its rows. */
export interface ScannedHookLine {
  envelope: HookEnvelope;
  columns: HookColumns;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
/** What Scan reads past the end of its line: no byte value, and below every one it looks for. */
const END = -1;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
/** Digits of the longest number read here: below 2 ** 53, so exact. */
const MAX_DIGITS = 15;

/** Thrown inside the scan when the line leaves the subset; never escapes HookLineScanner.scan. */
const LEAVE = Symbol('leave');

/**
 * Least and greatest value of each number per row, in HookColumns order, as
 * two flat arrays: destructuring a [min, max] pair runs the array iterator,
 * about 100 bytes of garbage a number and 800 a row.
 */
const COLUMN_MIN = Float64Array.from(COLUMN_POSITIONS, (p) => ROW_INTEGER_BOUNDS[p]![0]);
const COLUMN_MAX = Float64Array.from(COLUMN_POSITIONS, (p) => ROW_INTEGER_BOUNDS[p]![1]);

/**
 * Reads hook lines into columns; one per receiver, as it remembers the
 * canonical addresses it met and keeps its address scratch across lines.
 */
export class HookLineScanner {
  readonly ips = new CanonicalIps();
  /**
   * Rows' addresses, likewise: copied out at the row count (one exact array a
   * column, not one grown row by row). They hold only remembered addresses.
   */
  readonly localScratch: string[] = [];
  readonly remoteScratch: string[] = [];

  /** @param allocate where each line's columns get their numbers (default: a new array) */
  constructor(readonly allocate: Float64Allocator = newFloat64) {}

  /**
   * One line (its UTF-8 bytes, without the newline) as envelope and columns,
   * or null when it is not in the subset this reader takes (see above). Never throws.
   */
  scan(line: Buffer | string): ScannedHookLine | null {
    try {
      return new Scan(typeof line === 'string' ? Buffer.from(line) : line, this).message();
    } catch {
      // LEAVE, or anything else: the schema's path decides and says why.
      return null;
    }
  }
}

/**
 * One pass over one line's bytes: text is made only for what a message keeps
 * (field names, the process name, client tags, addresses met for the first time).
 */
class Scan {
  private i = 0;
  private readonly ips: CanonicalIps;

  constructor(
    private readonly b: Buffer,
    private readonly owner: HookLineScanner,
  ) {
    this.ips = owner.ips;
  }

  message(): ScannedHookLine {
    const fields = new Map<string, number | string>();
    let columns: HookColumns | null = null;
    this.expect(OPEN_BRACE);
    for (;;) {
      const key = this.string();
      if (fields.has(key) || (key === 'flows' && columns !== null)) throw LEAVE;
      this.expect(COLON);
      if (key === 'flows') columns = this.rows();
      else if (key === 'process') fields.set(key, this.string());
      else if (NUMBER_FIELDS.has(key)) fields.set(key, this.number());
      else throw LEAVE;
      if (this.peek() === COMMA) {
        this.i++;
        continue;
      }
      this.expect(CLOSE_BRACE);
      break;
    }
    if (this.i !== this.b.length || columns === null) throw LEAVE;
    const envelope = checkedEnvelope(fields);
    // No row may be later than the window's end (the schema's rule).
    for (let r = 0; r < columns.rows; r++) {
      const at = r * HOOK_ROW_NUMBERS;
      if (columns.numbers[at + 6]! > envelope.at || columns.numbers[at + 7]! > envelope.at) {
        throw LEAVE;
      }
    }
    return { envelope, columns };
  }

  private rows(): HookColumns {
    const { localScratch, remoteScratch } = this.owner;
    let clientIds: (string | undefined)[] | null = null;
    let n = 0;
    this.expect(OPEN_BRACKET);
    if (this.peek() === CLOSE_BRACKET) {
      this.i++;
      return { rows: 0, numbers: new Float64Array(0), localIps: [], remoteIps: [], clientIds };
    }
    // Every row opens with a bracket, so the brackets left in the line bound
    // the rows: the numbers go straight into an array of that size (a pooled
    // one in the agent), with no scratch to grow and copy out of.
    const room = Math.min(MAX_HOOK_ROWS, this.countLeft(OPEN_BRACKET));
    const numbers = this.owner.allocate(room * HOOK_ROW_NUMBERS);
    for (;;) {
      // Past MAX_HOOK_ROWS rows (room is at most that), or a row that did not open.
      if (n >= room) throw LEAVE;
      const at = n * HOOK_ROW_NUMBERS;
      this.expect(OPEN_BRACKET);
      localScratch[n] = this.address();
      this.expect(COMMA);
      numbers[at] = this.bounded(0);
      this.expect(COMMA);
      remoteScratch[n] = this.address();
      for (let k = 1; k < HOOK_ROW_NUMBERS; k++) {
        this.expect(COMMA);
        numbers[at + k] = this.bounded(k);
      }
      if (this.peek() === COMMA) {
        this.i++;
        const tag = this.clientId();
        if (tag !== undefined) {
          clientIds ??= [];
          clientIds[n] = tag;
        }
      }
      this.expect(CLOSE_BRACKET);
      n++;
      if (this.peek() === COMMA) {
        this.i++;
        continue;
      }
      this.expect(CLOSE_BRACKET);
      break;
    }
    if (clientIds !== null) {
      // Holes read as undefined already; give the array its full length.
      clientIds.length = n;
    }
    return {
      rows: n,
      numbers,
      localIps: localScratch.slice(0, n),
      remoteIps: remoteScratch.slice(0, n),
      clientIds,
    };
  }

  /** A row's client id: a string the schema takes, or null (untagged). */
  private clientId(): string | undefined {
    const i = this.i;
    // "null", byte by byte: no text for an untagged row.
    if (
      this.at(i) === 0x6e &&
      this.at(i + 1) === 0x75 &&
      this.at(i + 2) === 0x6c &&
      this.at(i + 3) === 0x6c
    ) {
      this.i += 4;
      return undefined;
    }
    const tag = this.string();
    if (!isPlainText(tag, MAX_CLIENT_ID)) throw LEAVE;
    return tag;
  }

  private address(): string {
    const v4 = this.ipv4();
    if (v4 !== null) return v4;
    const ip = this.ips.canonical(this.string());
    if (ip === null) throw LEAVE;
    return ip;
  }

  /**
   * A quoted IPv4 address in canonical form (four decimal octets, no leading
   * zeros) read as numbers, so a remembered one costs no string; null, with
   * nothing consumed, for anything else (the text path decides).
   */
  private ipv4(): string | null {
    if (this.at(this.i) !== QUOTE) return null;
    const start = this.i + 1;
    let j = start;
    let a = 0;
    let rest = 0;
    for (let octet = 0; octet < 4; octet++) {
      if (octet > 0) {
        if (this.at(j) !== DOT) return null;
        j++;
      }
      const first = j;
      let v = 0;
      for (;;) {
        const d = this.at(j) - DIGIT_0;
        if (!(d >= 0 && d <= 9)) break;
        v = v * 10 + d;
        j++;
      }
      const digits = j - first;
      if (digits === 0 || v > 255 || (digits > 1 && this.at(first) === DIGIT_0)) {
        return null;
      }
      if (octet === 0) a = v;
      else rest = rest * 256 + v;
    }
    if (this.at(j) !== QUOTE) return null;
    this.i = j + 1;
    return this.ips.ipv4(a, rest, this.b, start, j);
  }

  /** The row number at position `k` of HookColumns, within its bounds. */
  private bounded(k: number): number {
    const v = this.number();
    if (v < COLUMN_MIN[k]! || v > COLUMN_MAX[k]!) throw LEAVE;
    return v;
  }

  /** A non-negative integer literal of at most MAX_DIGITS digits. */
  private number(): number {
    const start = this.i;
    let v = 0;
    let c = this.at(this.i);
    while (c >= DIGIT_0 && c <= DIGIT_9) {
      v = v * 10 + (c - DIGIT_0);
      c = this.at(++this.i);
    }
    const digits = this.i - start;
    // No digits, a leading zero (not JSON), or too long to be exact here.
    if (digits === 0 || digits > MAX_DIGITS || (digits > 1 && this.at(start) === DIGIT_0)) {
      throw LEAVE;
    }
    // A fraction or exponent follows: leave it to JSON.parse.
    if (c === 0x2e || c === 0x65 || c === 0x45) throw LEAVE;
    return v;
  }

  /** A string without escapes or control characters, decoded (ASCII, the usual case, as such). */
  private string(): string {
    this.expect(QUOTE);
    const start = this.i;
    let high = false;
    for (;;) {
      const c = this.at(this.i);
      if (c === QUOTE) break;
      // The end of the line (END), an escape, or a control character JSON forbids.
      if (c < 0x20 || c === BACKSLASH) throw LEAVE;
      if (c >= 0x80) high = true;
      this.i++;
    }
    const text = this.b.toString(high ? 'utf8' : 'latin1', start, this.i);
    this.i++;
    return text;
  }

  /** How many bytes `c` the line has from the current position on. */
  private countLeft(c: number): number {
    const b = this.b;
    let count = 0;
    for (let j = b.indexOf(c, this.i); j >= 0; j = b.indexOf(c, j + 1)) count++;
    return count;
  }

  /** The byte at `i`, or END past the line. */
  private at(i: number): number {
    return this.b[i] ?? END;
  }

  private peek(): number {
    return this.at(this.i);
  }

  private expect(c: number): void {
    if (this.at(this.i) !== c) throw LEAVE;
    this.i++;
  }
}

/** Message fields that hold numbers (flows and process aside). */
const NUMBER_FIELDS = new Set([
  'v',
  'pid',
  'at',
  'overflowPackets',
  'droppedFlows',
  'droppedPackets',
  'line',
]);

/** The envelope when every field the schema requires is there and within bounds. */
function checkedEnvelope(fields: Map<string, number | string>): HookEnvelope {
  const v = fields.get('v');
  const pid = fields.get('pid');
  const process = fields.get('process');
  const at = fields.get('at');
  const overflowPackets = fields.get('overflowPackets');
  const droppedFlows = fields.get('droppedFlows');
  const droppedPackets = fields.get('droppedPackets');
  const line = fields.get('line');
  if (
    v !== HOOK_PROTOCOL_VERSION ||
    typeof pid !== 'number' ||
    pid < 1 ||
    pid > MAX_PID ||
    !isPlainText(process, MAX_PROCESS_NAME) ||
    typeof at !== 'number' ||
    at < MIN_EPOCH_MS ||
    at > MAX_EPOCH_MS ||
    !isDropCounter(overflowPackets) ||
    !isDropCounter(droppedFlows) ||
    !isDropCounter(droppedPackets) ||
    (line !== undefined && (typeof line !== 'number' || line < 1))
  ) {
    throw LEAVE;
  }
  const envelope: HookEnvelope = {
    v: HOOK_PROTOCOL_VERSION,
    pid,
    process,
    at,
    overflowPackets,
    droppedFlows,
    droppedPackets,
  };
  if (line !== undefined) envelope.line = line;
  return envelope;
}

function isDropCounter(v: number | string | undefined): v is number {
  return typeof v === 'number' && v <= MAX_DROP_COUNTER;
}
