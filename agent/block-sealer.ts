/**
 * The block sealer: turns the flow table's per-cycle deltas into sealed
 * activity blocks (contract/block.ts), the v2 records the agent ships.
 *
 * Deltas accumulate per (service, minute of their last packet) per client
 * endpoint. A minute's main part is sealed once the minute has ended, plus a
 * grace for the last seconds' reports to reach the table, plus this agent's
 * send offset (spreading a fleet's blocks over the next minute). A client the
 * table never reported before goes out at once in an early part, while the
 * token bucket allows (burst 2, one token per 30 s by default); the rest wait
 * for the main part. Every sealed block takes one seq, shared by its parts.
 * Each part is a self-contained delta, so totals over early, main and late
 * parts are exactly what the sources observed.
 *
 * With a seal interval under a minute (tests, local mode) everything pending
 * is sealed that often, with no offset.
 */
import {
  type BlockEndpoint,
  type BlockOwner,
  type BlockSocketHealth,
  MAX_BLOCK_COUNTER,
  MINUTE_MS,
  minuteOf,
  SEND_SPREAD_SECONDS,
} from '../contract/block.js';
import {
  AGENT_BLOCK_QUALITY,
  blockProblem,
  DEFAULT_LIMITS,
  type SealedPart,
  sealEncodedParts,
} from '../contract/block-codec.js';
import { fnv1a, PARTITION_BUCKETS, partitionKey } from '../contract/partitioning.js';
import type { PendingGroup } from './checkpoint-codec.js';
import type { FlowKey } from './flow-keys.js';
import { type FlowDelta, SOURCE_RANK } from './flow-table.js';
import { type EndpointCounts, PendingEndpoints } from './pending-endpoints.js';
import type { ShipRecord } from './record-packer.js';
import { TokenBucket } from './token-bucket.js';

/**
 * Oldest last packet a delta may claim, relative to now; older (or future)
 * times are moved to now and counted, so a bad clock or a bad hook report
 * cannot open blocks for far-off minutes.
 */
export const MAX_DELTA_AGE_MS = 10 * MINUTE_MS;

export interface BlockSealerOptions {
  agentId: string;
  host: string;
  /** The persistent sequence: one number per sealed block. */
  nextSeq: () => number;
  /** MINUTE_MS: one main part per service-minute; less: seal everything pending this often. */
  sealIntervalMs: number;
  /** Waited after a minute ends before its main part is sealed, so its last reports are in. */
  graceMs: number;
  /** This agent's send offset (see sendOffsetMs); ignored under a one-minute seal interval. */
  sendOffsetMs: number;
  /** Early parts: at most `burst` at once, one more every `refillMs`; burst 0 turns them off. */
  earlyBurst: number;
  earlyRefillMs: number;
  /** Epoch ms the sealer starts at (the bucket starts full). */
  now: number;
  /** Told about endpoints left out because they break the block format's bounds. */
  log?: (message: string) => void;
}

/** What the sealer has done, for logs and tests. */
export interface BlockSealerStats {
  earlyBlocks: number;
  mainBlocks: number;
  /** Deltas whose last packet was in the future or too old, moved to now. */
  retimed: number;
  /** Counter sums capped at MAX_BLOCK_COUNTER in one block. */
  capped: number;
  /** Endpoints left out of a block because a field broke the format's bounds. */
  rejected: number;
  /** Endpoints waiting to be sealed. */
  pendingEndpoints: number;
}

/** The seconds-into-the-minute offset at which an agent sends its main parts. */
export function sendOffsetMs(agentId: string): number {
  return (fnv1a(agentId) % SEND_SPREAD_SECONDS) * 1000;
}

/** A sealed part as a Kinesis record: its encoded bytes, keyed to spread over shards. */
export function blockRecord({ block, data }: SealedPart): ShipRecord {
  return {
    partitionKey: partitionKey(block.agentId, block.seq % PARTITION_BUCKETS),
    seq: block.seq,
    data,
    lines: block.endpoints.length,
  };
}

/** Distinct owners pooled (a host runs far fewer daemon processes). */
const MAX_OWNERS = 4096;

/** Endpoints and socket health of one service-minute, not sealed yet. */
interface Pending {
  service: string;
  minute: number;
  /** By the table's flow key (or endpointKey), in arrival order. */
  endpoints: PendingEndpoints;
  /** Keys of endpoints whose first delta ever is in `endpoints`. */
  fresh: Set<FlowKey>;
  socket?: BlockSocketHealth;
}

const endpointKey = (e: { ip: string; port: number; localIp: string; localPort: number }) =>
  `${e.ip}|${e.port}|${e.localIp}|${e.localPort}`;

/** Second within `minute` of time `ms`, clamped to 0..59. */
function secondIn(minute: number, ms: number): number {
  return Math.min(59, Math.max(0, Math.floor((ms - minute * MINUTE_MS) / 1000)));
}

/** Accumulates deltas and seals them into blocks; see the file comment for when. */
export class BlockSealer {
  private readonly pending = new Map<string, Pending>();
  private readonly owners = new Map<string, BlockOwner>();
  /** The group group() returned last, while it is pending (forgetGroup clears it). */
  private lastGroup: Pending | null = null;
  private readonly bucket: TokenBucket;
  private nextSealAt: number;
  /** Per service, the emptied columns of its latest sealed minute, for its next minute. */
  private spareLists = new Map<string, PendingEndpoints>();
  private readonly counters = { earlyBlocks: 0, mainBlocks: 0, retimed: 0, capped: 0, rejected: 0 };

  constructor(private readonly options: BlockSealerOptions) {
    this.bucket = new TokenBucket(options.earlyBurst, options.earlyRefillMs, options.now);
    this.nextSealAt = this.sealMomentAfter(options.now);
  }

  private get minuteMode(): boolean {
    return this.options.sealIntervalMs >= MINUTE_MS;
  }

  /** How long after a minute's end its main part is sealed. */
  private get delayMs(): number {
    return this.options.graceMs + this.options.sendOffsetMs;
  }

  /** The first seal moment after `t`. */
  private sealMomentAfter(t: number): number {
    if (!this.minuteMode) {
      const every = this.options.sealIntervalMs;
      return (Math.floor(t / every) + 1) * every;
    }
    return (minuteOf(t - this.delayMs) + 1) * MINUTE_MS + this.delayMs;
  }

  stats(): BlockSealerStats {
    let pendingEndpoints = 0;
    for (const g of this.pending.values()) pendingEndpoints += g.endpoints.length;
    return { ...this.counters, pendingEndpoints };
  }

  private group(service: string, minute: number): Pending {
    // A cycle's deltas come service by service, mostly of one minute: skip the key for a repeat.
    const last = this.lastGroup;
    if (last !== null && last.minute === minute && last.service === service) return last;
    const key = `${minute}|${service}`;
    let g = this.pending.get(key);
    if (!g) {
      const spare = this.spareLists.get(service);
      if (spare) this.spareLists.delete(service);
      g = { service, minute, endpoints: spare ?? new PendingEndpoints(), fresh: new Set() };
      this.pending.set(key, g);
    }
    this.lastGroup = g;
    return g;
  }

  /**
   * The one owner object of (pid, process) pending endpoints share; never
   * mutated (a change takes another), holding only the fields it has.
   * Bounded: starts over past MAX_OWNERS.
   */
  private owner(pid: number | undefined, process: string | undefined): BlockOwner {
    const key = `${pid ?? ''}|${process ?? ''}`;
    let o = this.owners.get(key);
    if (o === undefined) {
      if (this.owners.size >= MAX_OWNERS) this.owners.clear();
      o = {};
      if (pid !== undefined) o.pid = pid;
      if (process !== undefined) o.process = process;
      this.owners.set(key, o);
    }
    return o;
  }

  /** A sum capped at MAX_BLOCK_COUNTER, counted when it is (a property: the rows' addCounts takes it). */
  private readonly add = (a: number, b: number): number => {
    const sum = a + b;
    if (sum <= MAX_BLOCK_COUNTER) return sum;
    this.counters.capped++;
    return MAX_BLOCK_COUNTER;
  };

  /** Adds counters and widens the seconds of row `r` of `g` (a delta's fold, a checkpoint's restore). */
  private addCounts(
    g: Pending,
    r: number,
    c: EndpointCounts,
    firstSecond: number,
    lastSecond: number,
  ): void {
    g.endpoints.addCounts(r, c, firstSecond, lastSecond, this.add);
  }

  /** Adds socket health to a service-minute: the deepest queue, the drops summed. */
  private addHealth(g: Pending, h: BlockSocketHealth): void {
    const s = g.socket ?? { rxQueueBytes: 0, drops: 0 };
    s.rxQueueBytes = Math.max(s.rxQueueBytes, h.rxQueueBytes);
    s.drops = this.add(s.drops, h.drops);
    g.socket = s;
  }

  private fold(g: Pending, d: FlowDelta, lastSeen: number): FlowKey {
    const minuteStart = g.minute * MINUTE_MS;
    const lastSecond = secondIn(g.minute, lastSeen);
    const firstSecond = Math.min(
      lastSecond,
      secondIn(g.minute, Math.max(d.firstSeen, minuteStart)),
    );
    // The table's compact key names the same endpoint within a service, without a string per delta.
    const key =
      d.flowKey ??
      endpointKey({
        ip: d.remoteIp,
        port: d.remotePort,
        localIp: d.localIp,
        localPort: d.localPort,
      });
    const list = g.endpoints;
    let r = list.rowOf(key);
    if (r < 0) r = list.add(key, d, firstSecond, lastSecond);
    this.addCounts(g, r, d, firstSecond, lastSecond);
    if (SOURCE_RANK[d.source] > SOURCE_RANK[list.source(r)]) list.setSource(r, d.source);
    list.raiseSampleRate(r, d.sampleRate);
    if (d.natFromIp !== undefined) list.setNat(r, d.natFromIp, d.natFromPort);
    const had = list.owner(r);
    // Owners change rarely and are shared by a daemon's endpoints: one pooled object each.
    if (
      (d.pid !== undefined && d.pid !== had?.pid) ||
      (d.process !== undefined && d.process !== had?.process)
    ) {
      list.setOwner(r, this.owner(d.pid ?? had?.pid, d.process ?? had?.process));
    }
    if (d.clientId !== undefined) list.setClientId(r, d.clientId);
    return key;
  }

  /**
   * Folds one cycle's deltas in; returns early blocks for clients never
   * reported before, as far as the token bucket allows (one token per block).
   */
  addDeltas(deltas: readonly FlowDelta[], now: number): SealedPart[] {
    return this.addDeltasFrom((visit) => {
      for (const d of deltas) visit(d);
    }, now);
  }

  /**
   * addDeltas() for deltas handed over one at a time (FlowTable.drainInto):
   * `each` calls its argument with every delta; none is kept past the call.
   */
  addDeltasFrom(each: (visit: (d: FlowDelta) => void) => void, now: number): SealedPart[] {
    const touched: Pending[] = [];
    each((d) => {
      let lastSeen = d.lastSeen;
      if (!(lastSeen <= now && lastSeen >= now - MAX_DELTA_AGE_MS)) {
        lastSeen = now;
        this.counters.retimed++;
      }
      const g = this.group(d.service, minuteOf(lastSeen));
      const key = this.fold(g, d, lastSeen);
      if (d.fresh) {
        if (g.fresh.size === 0) touched.push(g);
        g.fresh.add(key);
      }
    });
    const out: SealedPart[] = [];
    for (const g of touched) {
      if (!this.bucket.take(now)) break;
      const endpoints = g.endpoints.take(g.fresh);
      g.fresh.clear();
      this.counters.earlyBlocks++;
      out.push(...this.seal(g, endpoints, undefined));
      this.dropIfEmpty(g);
    }
    // Fresh clients that found no token wait for the main part like any other.
    for (const g of touched) g.fresh.clear();
    return out;
  }

  /** Adds the service sockets' health of the span ending `now` to that minute's main part. */
  addSocketHealth(health: ReadonlyMap<string, BlockSocketHealth>, now: number): void {
    for (const [service, h] of health) {
      this.addHealth(this.group(service, minuteOf(now)), h);
    }
  }

  /**
   * Main parts due at `now`: at each seal moment, every service-minute that
   * ended (plus grace and offset) before it; under a one-minute interval,
   * everything pending. Nothing between seal moments.
   */
  sealDue(now: number): SealedPart[] {
    if (now < this.nextSealAt) return [];
    this.nextSealAt = this.sealMomentAfter(now);
    const due = [...this.pending.values()].filter(
      (g) => !this.minuteMode || (g.minute + 1) * MINUTE_MS + this.delayMs <= now,
    );
    return this.sealGroups(due);
  }

  /** Seals everything pending (the agent is stopping). */
  sealAll(): SealedPart[] {
    return this.sealGroups([...this.pending.values()]);
  }

  private sealGroups(groups: Pending[]): SealedPart[] {
    // A stable order, so the same deltas always get the same seqs.
    groups.sort(
      (a, b) => a.minute - b.minute || (a.service < b.service ? -1 : a.service > b.service ? 1 : 0),
    );
    const out: SealedPart[] = [];
    const lists = new Map<string, PendingEndpoints>();
    for (const g of groups) {
      this.forgetGroup(g);
      // Health alone is only news when the kernel dropped datagrams.
      const socket =
        g.socket && (g.endpoints.length > 0 || g.socket.drops > 0) ? g.socket : undefined;
      if (g.endpoints.length > 0 || socket) {
        this.counters.mainBlocks++;
        out.push(...this.seal(g, g.endpoints.endpoints(), socket));
      }
      g.endpoints.clear();
      lists.set(g.service, g.endpoints);
    }
    // Spares of this round only: memory a quieter minute no longer needs goes.
    if (groups.length > 0) this.spareLists = lists;
    return out;
  }

  /** Seals `endpoints`, new objects made from the rows (PendingEndpoints.endpoint): the parts keep them, uncopied. */
  private seal(
    g: Pending,
    endpoints: BlockEndpoint[],
    socket: BlockSocketHealth | undefined,
  ): SealedPart[] {
    const head = {
      agentId: this.options.agentId,
      host: this.options.host,
      service: g.service,
      minute: g.minute,
      seq: this.options.nextSeq(),
      ...(socket ? { socket: { ...socket } } : {}),
    };
    try {
      return sealEncodedParts(head, endpoints, DEFAULT_LIMITS, AGENT_BLOCK_QUALITY, true);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
    }
    // Some endpoint breaks the format (say a hooked daemon's overlong client id):
    // leave out just those, counted, so the rest of the block still goes out.
    const good = endpoints.filter((e) => {
      const problem = blockProblem({ ...head, part: 0, parts: 1, endpoints: [e] });
      if (problem === null) return true;
      this.counters.rejected++;
      this.options.log?.(
        `block of agent ${head.agentId} service ${head.service} minute ${head.minute}: endpoint ${e.ip}:${e.port} left out: ${problem}`,
      );
      return false;
    });
    return sealEncodedParts(head, good, DEFAULT_LIMITS, AGENT_BLOCK_QUALITY, true);
  }

  /**
   * What is pending, oldest minute first, for a checkpoint: at most
   * `maxEndpoints` endpoints (the rest is left out and counted in `omitted`).
   * The lists are views of the sealer's own rows: encode them before the
   * next delta.
   */
  exportPending(maxEndpoints: number): { groups: PendingGroup[]; omitted: number } {
    const groups: PendingGroup[] = [];
    let room = maxEndpoints;
    let omitted = 0;
    const sorted = [...this.pending.values()].sort((a, b) => a.minute - b.minute);
    for (const g of sorted) {
      const endpoints = g.endpoints.first(room);
      omitted += g.endpoints.length - endpoints.length;
      room -= endpoints.length;
      const out: PendingGroup = { service: g.service, minute: g.minute, endpoints };
      if (g.socket) out.socket = g.socket;
      if (endpoints.length > 0 || g.socket) groups.push(out);
    }
    return { groups, omitted };
  }

  /**
   * Takes back what a checkpoint held pending (after a crash), to be sealed
   * with the next seal (sealAll at start): never sealed before, so sealing it
   * under a new seq counts it once.
   */
  restorePending(groups: readonly PendingGroup[]): void {
    for (const r of groups) {
      const g = this.group(r.service, r.minute);
      const list = g.endpoints;
      r.endpoints.forEach((e) => {
        const key = endpointKey(e);
        let row = list.rowOf(key);
        if (row < 0) {
          row = list.add(
            key,
            { ...e, remoteIp: e.ip, remotePort: e.port },
            e.firstSecond,
            e.lastSecond,
          );
          list.setNat(row, e.natFromIp, e.natFromPort);
          const o = e.owner;
          if (o && (o.pid !== undefined || o.process !== undefined))
            list.setOwner(row, this.owner(o.pid, o.process));
          list.setClientId(row, e.clientId);
        }
        this.addCounts(g, row, e, e.firstSecond, e.lastSecond);
      });
      if (r.socket) this.addHealth(g, r.socket);
    }
  }

  private forgetGroup(g: Pending): void {
    this.pending.delete(`${g.minute}|${g.service}`);
    if (this.lastGroup === g) this.lastGroup = null;
  }

  private dropIfEmpty(g: Pending): void {
    if (g.endpoints.length === 0 && !g.socket) this.forgetGroup(g);
  }
}
