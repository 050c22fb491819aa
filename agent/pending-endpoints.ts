/**
 * One service-minute's endpoints the block sealer holds unsealed, in typed
 * columns: a row per endpoint, found by the flow table's key. An endpoint
 * object (16 fields) costs 152 bytes and a slot in a list, and a busy host
 * keeps two minutes of them (the one filling and the one awaiting its seal);
 * a row costs about 50 bytes, with nothing in it to trace but its client
 * address and rare tags (a service-minute's few local addresses and owners
 * are numbered in small tables of the list). Objects are made only to seal (endpoints()), and a
 * checkpoint reads the rows through one reused view (forEach). A row taken
 * out (an early part) is left as a hole until clear(), which keeps the
 * columns' room for the next minute.
 */

import type { BlockEndpoint, BlockOwner } from '../contract/block.js';
import { FLOW_SOURCES, type FlowSource, flowSourceIndex } from '../contract/wire.js';
import { FlowKeyMap } from './flow-key-map.js';
import type { FlowKey } from './flow-keys.js';

/** What a checkpoint reads of a service-minute: how many endpoints, and each in turn. */
export interface EndpointList {
  readonly length: number;
  /** Calls `visit` with each endpoint; the object may be reused between calls (copy what you keep). */
  forEach(visit: (e: BlockEndpoint) => void): void;
}

/** A row's source when it was taken out. */
const HOLE = 255;
/** Counters per row: pktsIn, bytesIn, pktsOut, bytesOut. */
const PKTS_IN = 0;
const BYTES_IN = 1;
const PKTS_OUT = 2;
const BYTES_OUT = 3;

/** A new endpoint's fields that are not counters. */
export interface EndpointStart {
  remoteIp: string;
  remotePort: number;
  localIp: string;
  localPort: number;
  source: FlowSource;
  sampleRate: number;
}

/** The counters a delta (or a restored endpoint) adds to a row. */
export type EndpointCounts = Pick<BlockEndpoint, 'pktsIn' | 'bytesIn' | 'pktsOut' | 'bytesOut'>;

/** Distinct values by number, in the order first seen (a list's local addresses, its owners). */
class ValueTable<T> {
  private readonly values: T[] = [];
  private readonly numbers = new Map<T, number>();
  /** Rows come in runs of one local address and owner: the last answer, without a lookup. */
  private last: T | undefined;
  private lastNumber = -1;

  /** The number of `value`, given it when new. */
  numberOf(value: T): number {
    if (value === this.last && this.lastNumber >= 0) return this.lastNumber;
    let n = this.numbers.get(value);
    if (n === undefined) {
      n = this.values.length;
      this.values.push(value);
      this.numbers.set(value, n);
    }
    this.last = value;
    this.lastNumber = n;
    return n;
  }

  value(n: number): T {
    return this.values[n]!;
  }
}

/**
 * An endpoint with every field it always has, zero, in one order: the
 * objects made from rows share one shape, and fillRequired sets them all.
 */
function requiredBlank(): BlockEndpoint {
  return {
    ip: '',
    port: 0,
    localIp: '',
    localPort: 0,
    pktsIn: 0,
    bytesIn: 0,
    pktsOut: 0,
    bytesOut: 0,
    firstSecond: 0,
    lastSecond: 0,
    source: 'proc',
    sampleRate: 1,
  };
}

/** Endpoints in columns, by flow key, in the order they were added. */
export class PendingEndpoints implements EndpointList {
  private index = new FlowKeyMap();
  /** Rows in [0, rows) are in use or holes. */
  private rows = 0;
  private holes = 0;
  private capacity = 0;
  private ip: string[] = [];
  /** Local addresses and owners by number (owner 0: none), each list's own few. */
  private localIps = new ValueTable<string>();
  private localIp = new Uint32Array(0);
  private ownerTable = new ValueTable<BlockOwner>();
  private ownerOf = new Uint32Array(0);
  private ports = new Uint16Array(0);
  private counts = new Float64Array(0);
  private seconds = new Uint8Array(0);
  private sources = new Uint8Array(0);
  private sampleRates = new Uint32Array(0);
  /** Rarely set: made on first use. */
  private natIp: (string | undefined)[] | null = null;
  private natPort: Int32Array | null = null;
  private clientIds: (string | undefined)[] | null = null;
  /** The view forEach fills, one object for every row. */
  private readonly view: BlockEndpoint = {
    ...requiredBlank(),
    natFromIp: undefined,
    natFromPort: undefined,
    owner: undefined,
    clientId: undefined,
  };

  /** Endpoints held. */
  get length(): number {
    return this.rows - this.holes;
  }

  /** Rows the columns have room for. */
  get room(): number {
    return this.capacity;
  }

  /** The row of `key`, or -1. */
  rowOf(key: FlowKey): number {
    return this.index.get(key);
  }

  /** A new row for `key` (which has none), counters zero. */
  add(key: FlowKey, start: EndpointStart, firstSecond: number, lastSecond: number): number {
    if (this.rows === this.capacity) this.grow();
    const r = this.rows++;
    this.index.set(key, r);
    this.ip[r] = start.remoteIp;
    this.localIp[r] = this.localIps.numberOf(start.localIp);
    this.ports[2 * r] = start.remotePort;
    this.ports[2 * r + 1] = start.localPort;
    this.counts.fill(0, 4 * r, 4 * r + 4);
    this.seconds[2 * r] = firstSecond;
    this.seconds[2 * r + 1] = lastSecond;
    this.sources[r] = flowSourceIndex(start.source);
    this.sampleRates[r] = start.sampleRate;
    this.ownerOf[r] = 0;
    if (this.natIp) this.natIp[r] = undefined;
    if (this.natPort) this.natPort[r] = -1;
    if (this.clientIds) this.clientIds[r] = undefined;
    return r;
  }

  /** Adds counters to row `r` through `add` (which caps a sum), and widens its seconds. */
  addCounts(
    r: number,
    c: EndpointCounts,
    firstSecond: number,
    lastSecond: number,
    add: (a: number, b: number) => number,
  ): void {
    const counts = this.counts;
    const at = 4 * r;
    counts[at + PKTS_IN] = add(counts[at + PKTS_IN]!, c.pktsIn);
    counts[at + BYTES_IN] = add(counts[at + BYTES_IN]!, c.bytesIn);
    counts[at + PKTS_OUT] = add(counts[at + PKTS_OUT]!, c.pktsOut);
    counts[at + BYTES_OUT] = add(counts[at + BYTES_OUT]!, c.bytesOut);
    if (firstSecond < this.seconds[2 * r]!) this.seconds[2 * r] = firstSecond;
    if (lastSecond > this.seconds[2 * r + 1]!) this.seconds[2 * r + 1] = lastSecond;
  }

  /** The source of row `r`. */
  source(r: number): FlowSource {
    return FLOW_SOURCES[this.sources[r]!]!;
  }

  setSource(r: number, source: FlowSource): void {
    this.sources[r] = flowSourceIndex(source);
  }

  /** Raises row `r`'s sample rate to `rate` if lower (counters already scaled). */
  raiseSampleRate(r: number, rate: number): void {
    if (rate > this.sampleRates[r]!) this.sampleRates[r] = rate;
  }

  /** Sets row `r`'s pre-NAT address (its port undefined when unknown). */
  setNat(r: number, ip: string | undefined, port: number | undefined): void {
    if (ip === undefined && this.natIp === null) return;
    if (this.natIp === null)
      this.natIp = new Array<string | undefined>(this.capacity).fill(undefined);
    if (this.natPort === null) this.natPort = new Int32Array(this.capacity).fill(-1);
    this.natIp[r] = ip;
    this.natPort[r] = port ?? -1;
  }

  owner(r: number): BlockOwner | undefined {
    const n = this.ownerOf[r]!;
    return n === 0 ? undefined : this.ownerTable.value(n - 1);
  }

  /** Sets row `r`'s owner (an object shared by rows of one owner, never changed). */
  setOwner(r: number, owner: BlockOwner | undefined): void {
    this.ownerOf[r] = owner === undefined ? 0 : this.ownerTable.numberOf(owner) + 1;
  }

  setClientId(r: number, clientId: string | undefined): void {
    if (clientId === undefined && this.clientIds === null) return;
    if (this.clientIds === null)
      this.clientIds = new Array<string | undefined>(this.capacity).fill(undefined);
    this.clientIds[r] = clientId;
  }

  /** Writes row `r`'s fields every endpoint has into `e`. */
  private fillRequired(r: number, e: BlockEndpoint): void {
    const { counts, seconds, ports } = this;
    e.ip = this.ip[r]!;
    e.port = ports[2 * r]!;
    e.localIp = this.localIps.value(this.localIp[r]!);
    e.localPort = ports[2 * r + 1]!;
    e.pktsIn = counts[4 * r + PKTS_IN]!;
    e.bytesIn = counts[4 * r + BYTES_IN]!;
    e.pktsOut = counts[4 * r + PKTS_OUT]!;
    e.bytesOut = counts[4 * r + BYTES_OUT]!;
    e.firstSecond = seconds[2 * r]!;
    e.lastSecond = seconds[2 * r + 1]!;
    e.source = this.source(r);
    e.sampleRate = this.sampleRates[r]!;
  }

  /** The endpoint of row `r` as a new object (only the fields it has, as a block holds them). */
  endpoint(r: number): BlockEndpoint {
    const e = requiredBlank();
    this.fillRequired(r, e);
    const natIp = this.natIp?.[r];
    if (natIp !== undefined) e.natFromIp = natIp;
    const natPort = this.natPort?.[r] ?? -1;
    if (natPort >= 0) e.natFromPort = natPort;
    const owner = this.owner(r);
    if (owner !== undefined) e.owner = owner;
    const clientId = this.clientIds?.[r];
    if (clientId !== undefined) e.clientId = clientId;
    return e;
  }

  /** Every endpoint held as new objects, oldest first. */
  endpoints(): BlockEndpoint[] {
    const out: BlockEndpoint[] = [];
    for (let r = 0; r < this.rows; r++) if (this.sources[r] !== HOLE) out.push(this.endpoint(r));
    return out;
  }

  /** Takes the endpoints of `keys` out, as new objects (keys with none are skipped). */
  take(keys: Iterable<FlowKey>): BlockEndpoint[] {
    const out: BlockEndpoint[] = [];
    for (const key of keys) {
      const r = this.index.get(key);
      if (r < 0) continue;
      out.push(this.endpoint(r));
      this.index.delete(key);
      this.sources[r] = HOLE;
      this.holes++;
    }
    return out;
  }

  /**
   * Calls `visit` with the first `limit` endpoints, oldest first, each in
   * the same object (see EndpointList).
   */
  forEach(visit: (e: BlockEndpoint) => void, limit = Number.POSITIVE_INFINITY): void {
    const view = this.view;
    let seen = 0;
    for (let r = 0; r < this.rows && seen < limit; r++) {
      if (this.sources[r] === HOLE) continue;
      seen++;
      this.fillRequired(r, view);
      view.natFromIp = this.natIp?.[r];
      const natPort = this.natPort?.[r] ?? -1;
      view.natFromPort = natPort >= 0 ? natPort : undefined;
      view.owner = this.owner(r);
      view.clientId = this.clientIds?.[r];
      visit(view);
    }
  }

  /** The first `limit` endpoints as an EndpointList (a view of these rows, valid until they change). */
  first(limit: number): EndpointList {
    const length = Math.min(limit, this.length);
    return { length, forEach: (visit) => this.forEach(visit, length) };
  }

  /** Removes every endpoint; the columns' room stays for a list refilled to about as many, unless over twice that. */
  clear(): void {
    const used = this.rows;
    // What the next minute will likely need: the endpoints held, not the rows taken out early
    // (a start, when every client is new, leaves as many holes as endpoints).
    const live = used - this.holes;
    this.rows = 0;
    this.holes = 0;
    this.localIps = new ValueTable();
    this.ownerTable = new ValueTable();
    if (this.capacity > 2 * live + 1024) {
      // Far more room than the next minute likely needs: new columns (no row copied) and index
      // (a FlowKeyMap keeps its room).
      const rows = Math.max(live + (live >>> 2), 16);
      this.resize(rows);
      this.index = FlowKeyMap.forEntries(rows);
      return;
    }
    this.index.clear();
    // Strings go; the arrays' room stays.
    this.ip.fill('', 0, used);
    this.natIp?.fill(undefined, 0, used);
    this.clientIds?.fill(undefined, 0, used);
  }

  private grow(): void {
    this.resize(Math.max(16, this.capacity * 2));
  }

  /** Columns of `capacity` rows, the rows in use copied over. */
  private resize(capacity: number): void {
    const rows = this.rows;
    const grown = <T extends Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array>(
      old: T,
      make: (n: number) => T,
      width: number,
    ): T => {
      const next = make(capacity * width);
      next.set(old.subarray(0, rows * width));
      return next;
    };
    this.ports = grown(this.ports, (n) => new Uint16Array(n), 2);
    this.counts = grown(this.counts, (n) => new Float64Array(n), 4);
    this.seconds = grown(this.seconds, (n) => new Uint8Array(n), 2);
    this.sources = grown(this.sources, (n) => new Uint8Array(n), 1);
    this.sampleRates = grown(this.sampleRates, (n) => new Uint32Array(n), 1);
    this.localIp = grown(this.localIp, (n) => new Uint32Array(n), 1);
    this.ownerOf = grown(this.ownerOf, (n) => new Uint32Array(n), 1);
    if (this.natPort) this.natPort = grown(this.natPort, (n) => new Int32Array(n).fill(-1), 1);
    // Plain arrays of exactly `capacity` (pushed, one would grow half again past it), every element set.
    const resized = <T>(old: T[], empty: T): T[] => {
      const next = new Array<T>(capacity).fill(empty);
      for (let i = 0; i < rows; i++) next[i] = old[i]!;
      return next;
    };
    this.ip = resized(this.ip, '');
    if (this.natIp) this.natIp = resized<string | undefined>(this.natIp, undefined);
    if (this.clientIds) this.clientIds = resized<string | undefined>(this.clientIds, undefined);
    this.capacity = capacity;
  }
}
