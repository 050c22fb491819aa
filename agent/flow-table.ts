/**
 * The agent's flow table: merges what the sources observe into one entry per
 * (service, local endpoint, remote endpoint), accumulates counter deltas, and
 * hands every cycle's deltas to the block sealer.
 *
 * Merging, one rule: per flow exactly one source owns the counters, the most
 * precise one that can count it.
 *  - A hooked socket's flows: the hook. eBPF and conntrack counters for them
 *    are ignored (conntrack's NAT info is kept). A socket is hooked while it
 *    lives: the live socket (/proc inode) a hooked process holds on the
 *    reported port. When it closes, its port's next socket (say the daemon
 *    restarted without the hook) is counted by the others at once.
 *  - Every other flow, while eBPF is live: eBPF. Conntrack then only adds NAT
 *    info, except for entries translated on this host to reach the socket
 *    (DNAT, REDIRECT): eBPF sees those packets at the device before the
 *    translation, under an address no socket owns, so conntrack counts them.
 *  - Every other flow, without eBPF: conntrack.
 *  - /proc never counts: it fills in the owning process and makes a
 *    connected socket's peer a flow.
 * A flow's `source` names its counting source.
 *
 * Bounded: past `maxFlows` the least recently seen flow is evicted (its
 * pending deltas still go out, so totals stay exact) and counted.
 */

import { detached } from '../contract/detached-string.js';
import { fnv1a } from '../contract/partitioning.js';
import { FLOW_SOURCES, type FlowSource, flowSourceIndex } from '../contract/wire.js';
import { FlowKeyMap } from './flow-key-map.js';
import { type FlowKey, FlowKeys, peerKey, StringPool } from './flow-keys.js';
import { FlowSlots } from './flow-slots.js';
import type { ListeningSocket, PeerObservation } from './observation.js';
import type { OutboundRule } from './outbound-flows.js';
import type { OwnerName, ServiceNamer } from './service-names.js';

export interface FlowTableOptions {
  serviceFor: ServiceNamer;
  maxFlows: number;
  /** Seeds the 1-in-N flow sampling, so a run is reproducible. */
  sampleSeed?: string;
  /**
   * Names a process by pid (process-identity.ts) for flows whose socket /proc
   * has not listed yet, so a hooked daemon's first flows get the service
   * name its later ones get. Without it those flows are `<process>:<port>`.
   */
  nameOfPid?: (pid: number) => string | undefined;
  /** Flows that are a local socket's own outbound traffic (outbound-flows.ts): left out, counted. */
  isOutbound?: OutboundRule;
}

/** Counters the agent reports in heartbeats and logs. */
export interface FlowTableStats {
  flows: number;
  /** Flows evicted to stay under maxFlows. */
  evicted: number;
  /** Flows that idled out. */
  expired: number;
  /** Observations left out by sampling (their flows are represented by sampled ones). */
  sampledOut: number;
  /** Observations whose counters another source owns (eBPF or conntrack of hooked sockets, conntrack while eBPF is live). */
  shadowed: number;
  /**
   * Hook reports (per process and port) that matched no socket /proc listed
   * for a minute since the first of them (one that reported after its socket
   * closed, a daemon in another network namespace than the agent, or a pid
   * from another pid namespace): their sockets were not taken as hooked. A
   * process that keeps reporting unmatched counts once a minute.
   */
  hookUnmatched: number;
  /** Observations of local sockets' own outbound traffic (clients of someone else), left out. */
  outbound: number;
}

/** A flow as `list()` shows it, with counters since it entered the table. */
export interface FlowView {
  service: string;
  source: FlowSource;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  firstSeen: number;
  lastSeen: number;
  sampleRate: number;
  pid?: number;
  process?: string;
  natFromIp?: string;
  natFromPort?: number;
  clientId?: string;
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
}

/**
 * What one flow did since the previous drain: the counters are deltas, and
 * `firstSeen` is the earliest packet of those deltas (as far as the sources
 * tell), never before the previous delta's last packet.
 */
export interface FlowDelta extends FlowView {
  /** The flow's first delta since it entered the table: a client not reported before. */
  fresh: boolean;
  /** The table's compact key of the flow (unique per service and endpoints), for keying it downstream. */
  flowKey?: FlowKey;
}

/**
 * What every flow of one local side shares, one object for all of them
 * (a flow holds a pointer, not five fields): never changed once made.
 */
interface LocalSide {
  service: string;
  localIp: string;
  localPort: number;
  timeoutMs: number;
  /** Factor the table itself scales counters by: 1 in `scale` flows kept (the service's sampleRate). */
  scale: number;
}

/**
 * What few flows have: conntrack's pre-NAT address, the hooked application's
 * client tag, and a sample rate above the table's own scale (a source that
 * sampled packets).
 */
interface FlowExtra {
  natFromIp: string | undefined;
  natFromPort: number | undefined;
  clientId: string | undefined;
  sampleRate: number | undefined;
}

/** The process a flow's socket belongs to, one object for every flow of it. */
interface FlowOwner {
  pid: number | undefined;
  process: string | undefined;
}

/**
 * A flow in the table: its text and small fields; its times and counters
 * live in the table's FlowSlots row `slot` (the S_ and I_ columns below).
 */
interface Flow {
  key: FlowKey;
  slot: number;
  local: LocalSide;
  remoteIp: string;
  /**
   * The remote port, the counting source's rank and three marks in one small
   * integer (the F_ bits below): five fields of 8 bytes each cost 32 bytes a
   * flow more, 3 MiB at 100,000 flows.
   */
  bits: number;
  /** The first pid and the first process name observations gave it, each kept once known. */
  owner: FlowOwner | undefined;
  /** Made when the flow first gets NAT info or a client tag. */
  extra: FlowExtra | undefined;
}

/** A flow's bits: the remote port, */
const F_PORT = 0xffff;
/** the SOURCE_RANK of the source that owns its counters (3 bits), */
const F_RANK_SHIFT = 16;
const F_RANK = 7 << F_RANK_SHIFT;
/** observed since the previous drain, */
const F_TOUCHED = 1 << 19;
/** drained at least once (the client has been reported), */
const F_DRAINED = 1 << 20;
/** and mapped to by the packet-flow index from its local port and peer (see packetFlows). */
const F_INDEXED = 1 << 21;

/** Local sides remembered for sharing; past this the memory starts over (flows keep theirs). */
const MAX_LOCAL_SIDES = 65_536;
/** Owners remembered for sharing, likewise. */
const MAX_OWNERS = 65_536;

/** Columns of a flow's slot: first and last packet ever, */
const S_FIRST_SEEN = 0;
const S_LAST_SEEN = 1;
/** earliest packet of the undrained deltas, last packet of the previous delta (0 until the first drain), */
const S_DELTA_FIRST_SEEN = 2;
const S_DRAINED_LAST_SEEN = 3;
/** the undrained deltas, */
const S_PKTS_IN = 4;
const S_BYTES_IN = 5;
const S_PKTS_OUT = 6;
const S_BYTES_OUT = 7;
/** and the counters since the flow entered the table (scaled like the deltas). */
const S_TOTAL_PKTS_IN = 8;
const S_TOTAL_BYTES_IN = 9;
const S_TOTAL_PKTS_OUT = 10;
const S_TOTAL_BYTES_OUT = 11;
const SLOT_FIELDS = 12;
/**
 * A slot's integer columns: the slots of the flows observed just before and
 * after this one (-1: none), a list from least to most recently observed, so
 * a flow seen again moves to the end without re-inserting its key into the
 * map (which would churn a map of 100,000 entries every cycle).
 */
const I_PREV = 0;
const I_NEXT = 1;
const SLOT_INT_FIELDS = 2;
const NONE = -1;

/**
 * Without /proc (no socket known for an endpoint) the hook's mark is by port
 * and lasts this long after its latest report; with /proc it lasts as long as
 * the socket.
 */
const HOOK_PORT_MARK_MS = 60_000;
/** A hook report whose socket /proc has not listed yet waits this long for the scan that shows it. */
const HOOK_PENDING_MS = 60_000;

/**
 * Which source wins when several saw a flow: the one that counts packets
 * best, FLOW_SOURCES' order as a rank (hook 4 down to proc 1; 0 is none).
 */
export const SOURCE_RANK = Object.fromEntries(
  FLOW_SOURCES.map((s) => [s, FLOW_SOURCES.length - flowSourceIndex(s)]),
) as Record<FlowSource, number>;
/** The source of each rank, from SOURCE_RANK (no flow has rank 0). */
const SOURCE_OF_RANK: FlowSource[] = [];
for (const s of FLOW_SOURCES) SOURCE_OF_RANK[SOURCE_RANK[s]] = s;
const WILDCARDS = new Set(['0.0.0.0', '::']);

/** The source that owns `flow`'s counters. */
function sourceOf(flow: Flow): FlowSource {
  return SOURCE_OF_RANK[(flow.bits & F_RANK) >> F_RANK_SHIFT]!;
}

/** The flow's extra fields, made on first use. */
function extraOf(flow: Flow): FlowExtra {
  flow.extra ??= {
    natFromIp: undefined,
    natFromPort: undefined,
    clientId: undefined,
    sampleRate: undefined,
  };
  return flow.extra;
}

/** The factor `flow`'s counters were scaled by: its own sampling's, else the table's. */
function sampleRateOf(flow: Flow): number {
  return flow.extra?.sampleRate ?? flow.local.scale;
}

/** The table, with its merge, flush and expiry logic. */
export class FlowTable {
  /** Each flow's slot by its key. */
  private readonly flows = new FlowKeyMap();
  private readonly slots = new FlowSlots(SLOT_FIELDS, 1024, SLOT_INT_FIELDS);
  /** The flow in each slot, for walking the recency list. */
  private readonly bySlot: (Flow | undefined)[] = [];
  /** Least and most recently observed flow's slot (NONE when empty). */
  private oldest = NONE;
  private newest = NONE;
  /**
   * No flow idles out before this: at most the earliest lastSeen + timeout of
   * any flow (a flow's lastSeen only grows), so expiry skips the walk until then.
   */
  private nextExpiry = Number.NEGATIVE_INFINITY;
  /** The delta drainInto() hands out, filled anew for each flow. */
  private readonly scratch: FlowDelta = {
    service: '',
    source: 'hook',
    localIp: '',
    localPort: 0,
    remoteIp: '',
    remotePort: 0,
    firstSeen: 0,
    lastSeen: 0,
    sampleRate: 1,
    pktsIn: 0,
    bytesIn: 0,
    pktsOut: 0,
    bytesOut: 0,
    fresh: false,
    flowKey: 0,
    pid: undefined,
    process: undefined,
    natFromIp: undefined,
    natFromPort: undefined,
    clientId: undefined,
  };
  private readonly keys = new FlowKeys();
  /** One instance per distinct service, address and process name across flows. */
  private readonly strings = new StringPool();
  /** The shared LocalSide of each (service, address, port, timeout, scale). */
  private readonly localSides = new Map<string, LocalSide>();
  /** The shared FlowOwner of each (pid, process). */
  private readonly owners = new Map<string, FlowOwner>();
  /** Inodes of live sockets a hooked process holds: their flows are the hook's. */
  private readonly hookedSockets = new Set<number>();
  /** Hook reports not matched to a listed socket yet: `port|pid` -> {ip, first report}. */
  private readonly hookPending = new Map<
    string,
    { ip: string; port: number; pid: number | undefined; at: number }
  >();
  /** Fallback for endpoints no listed socket owns: `ip|port` and `*|port` -> latest report. */
  private readonly hookedPorts = new Map<string, number>();
  /** Slots of flows the hook or eBPF counts, by local port then peer, for attaching conntrack's NAT info. */
  private readonly packetFlows = new Map<number, FlowKeyMap>();
  /** eBPF is attached: it owns the counters of every flow not hooked. */
  private ebpfLive = false;
  /** Deltas of evicted flows not drained yet. */
  private evicted: FlowDelta[] = [];
  private listeners: ListeningSocket[] = [];
  /** Listening ports per owner name: a name with several gets `:<port>` in its service names. */
  private readonly portsByName = new Map<string, Set<number>>();
  /** ownerName()'s answers since the last setListeners (what `shared` depends on). */
  private readonly ownerNames = new Map<string, OwnerName>();
  private readonly counters = {
    evicted: 0,
    expired: 0,
    sampledOut: 0,
    shadowed: 0,
    hookUnmatched: 0,
    outbound: 0,
  };

  constructor(private readonly options: FlowTableOptions) {}

  /**
   * Tells the table which process owns which listening socket (from /proc).
   * Closed sockets stop being hooked; hook reports waiting for their socket
   * to be listed find it now.
   */
  setListeners(listeners: ListeningSocket[]): void {
    this.listeners = listeners;
    this.portsByName.clear();
    this.ownerNames.clear();
    const live = new Set<number>();
    for (const l of listeners) {
      live.add(l.inode);
      if (l.name === undefined) continue;
      const ports = this.portsByName.get(l.name);
      if (ports) ports.add(l.localPort);
      else this.portsByName.set(l.name, new Set([l.localPort]));
    }
    for (const inode of this.hookedSockets) if (!live.has(inode)) this.hookedSockets.delete(inode);
    for (const [k, p] of this.hookPending) {
      if (this.markHookedSockets(p.ip, p.port, p.pid)) this.hookPending.delete(k);
    }
  }

  /**
   * The recognizable name of a listener's owner for naming its service, when
   * the observation is of that owner (a hook report from another process, say
   * one that reports after its socket closed, keeps its own process name).
   */
  private ownerName(
    l: ListeningSocket | undefined,
    pid: number | undefined,
  ): OwnerName | undefined {
    let name = l?.name;
    // A report from a process that does not hold the listed socket is not named after it.
    if (
      pid !== undefined &&
      l?.pid !== undefined &&
      !(l.pids ? l.pids.includes(pid) : l.pid === pid)
    )
      name = undefined;
    if (name === undefined && pid !== undefined) name = this.options.nameOfPid?.(pid);
    if (name === undefined) return undefined;
    // One object per name until the next scan: asked once per observation.
    let owner = this.ownerNames.get(name);
    if (owner === undefined) {
      owner = { name, shared: (this.portsByName.get(name)?.size ?? 0) > 1 };
      // Bounded also without /proc scans (names of pids only).
      if (this.ownerNames.size >= 4096) this.ownerNames.clear();
      this.ownerNames.set(name, owner);
    }
    return owner;
  }

  /** The service name of a listener's flows: what socket health is reported under. */
  serviceOf(l: ListeningSocket): string {
    return this.options.serviceFor(l.localPort, l.process, this.ownerName(l, undefined)).service;
  }

  /** Tells the table whether the eBPF source is counting (decides who owns counters, see the top). */
  setEbpfLive(live: boolean): void {
    this.ebpfLive = live;
  }

  /** Counters for heartbeats. */
  stats(): FlowTableStats {
    return { flows: this.flows.size, ...this.counters };
  }

  /** Number of flows held. */
  get size(): number {
    return this.flows.size;
  }

  /** Folds a batch of observations into the table. */
  ingest(observations: readonly PeerObservation[]): void {
    // Packet sources first (hook, then eBPF), so conntrack's NAT info finds their flows.
    this.ingestHookFrom((visit) => {
      for (const o of observations) if (o.source === 'hook') visit(o);
    });
    for (const o of observations) if (o.source === 'ebpf') this.ingestOne(o);
    for (const o of observations) if (o.source !== 'hook' && o.source !== 'ebpf') this.ingestOne(o);
  }

  /**
   * Folds in eBPF observations handed over one at a time: `each` calls its
   * argument with every one, which may be one object refilled each time
   * (none is kept). Call after the cycle's hook rows and before conntrack's
   * observations, in ingest()'s order.
   */
  ingestFrom(each: (visit: (o: PeerObservation) => void) => void): void {
    each((o) => this.ingestOne(o));
  }

  /**
   * Folds in hook observations handed over one at a time (the hook source's
   * drainInto): `each` calls its argument with every one, which may be one
   * object refilled each time (none is kept). Call before the other
   * sources' ingest of the cycle, as ingest() does.
   */
  ingestHookFrom(each: (visit: (o: PeerObservation) => void) => void): void {
    // A report's rows share the daemon's socket: it is marked once per run of them.
    let runIp: string | undefined;
    let runPort = -1;
    let runPid: number | undefined;
    let runFirst = 0;
    let runLatest = 0;
    each((o) => {
      if (
        runIp !== undefined &&
        o.localPort === runPort &&
        o.localIp === runIp &&
        o.pid === runPid
      ) {
        if (o.lastSeen > runLatest) runLatest = o.lastSeen;
      } else {
        if (runIp !== undefined) this.markHooked(runIp, runPort, runPid, runFirst, runLatest);
        runIp = o.localIp;
        runPort = o.localPort;
        runPid = o.pid;
        runFirst = o.lastSeen;
        runLatest = o.lastSeen;
      }
      this.ingestOne(o);
    });
    if (runIp !== undefined) this.markHooked(runIp, runPort, runPid, runFirst, runLatest);
  }

  /**
   * Marks the socket ip:port of a run of hook reports of process `pid` as
   * hooked: the port marks keep the run's latest lastSeen, a pending match
   * the first's.
   */
  private markHooked(
    ip: string,
    port: number,
    pid: number | undefined,
    first: number,
    latest: number,
  ): void {
    const at = latest;
    const exact = `${ip}|${port}`;
    if ((this.hookedPorts.get(exact) ?? 0) < at) this.hookedPorts.set(exact, at);
    if (WILDCARDS.has(ip)) {
      const any = `*|${port}`;
      if ((this.hookedPorts.get(any) ?? 0) < at) this.hookedPorts.set(any, at);
    }
    // Without the reporter's pid (the kernel could not name it, e.g. a daemon in
    // another network namespace), every listed socket on the port is taken as hooked.
    if (this.markHookedSockets(ip, port, pid)) return;
    const key = `${port}|${pid ?? '?'}`;
    // The wait runs from the first unmatched report: one that keeps coming does not postpone it.
    if (this.hookPending.has(key)) return;
    // Bounded like the flows: a flood of distinct pids cannot grow it past that.
    if (this.hookPending.size >= this.options.maxFlows) return;
    this.hookPending.set(key, { ip, port, pid, at: first });
  }
  /**
   * Marks the listed sockets on ip:port that process `pid` holds (any holder
   * when `pid` is unknown, or when /proc could not tell the holders) as
   * hooked; false when there is none. A process that reports after its socket
   * closed (a restart) marks nothing.
   */
  private markHookedSockets(ip: string, port: number, pid: number | undefined): boolean {
    let found = false;
    for (const l of this.listeners) {
      if (l.localPort !== port) continue;
      if (l.localIp !== ip && !WILDCARDS.has(l.localIp) && !WILDCARDS.has(ip)) continue;
      const holders = l.pids ?? (l.pid === undefined ? [] : [l.pid]);
      if (pid !== undefined && holders.length > 0 && !holders.includes(pid)) continue;
      this.hookedSockets.add(l.inode);
      found = true;
    }
    return found;
  }

  private isHooked(ip: string, port: number): boolean {
    const socket = this.ownerOf(ip, port);
    if (socket) return this.hookedSockets.has(socket.inode);
    return this.hookedPorts.has(`${ip}|${port}`) || this.hookedPorts.has(`*|${port}`);
  }

  /** The owner of a local endpoint per /proc: exact address first, then a wildcard bind. */
  private ownerOf(ip: string, port: number): ListeningSocket | undefined {
    let wildcard: ListeningSocket | undefined;
    for (const l of this.listeners) {
      if (l.localPort !== port) continue;
      if (l.localIp === ip) return l;
      if (WILDCARDS.has(l.localIp)) wildcard ??= l;
    }
    return wildcard;
  }

  /** Whether another source owns this observation's counters (the rule at the top). */
  private countedElsewhere(o: PeerObservation): boolean {
    if (o.source === 'ebpf') return this.isHooked(o.localIp, o.localPort);
    if (o.source !== 'conntrack') return false;
    return this.isHooked(o.localIp, o.localPort) || (this.ebpfLive && o.localNat !== true);
  }

  private ingestOne(o: PeerObservation): void {
    // A socket that is a client of someone else is no service, and its server no client.
    if (this.options.isOutbound?.(o.localPort, o.remotePort)) {
      this.counters.outbound++;
      return;
    }
    if (this.countedElsewhere(o)) {
      this.counters.shadowed++;
      if (o.natFromIp !== undefined) this.copyNatToPacketFlow(o);
      return;
    }
    const owner = this.ownerOf(o.localIp, o.localPort);
    const pid = o.pid ?? owner?.pid;
    const processName = o.process ?? owner?.process;
    const info = this.options.serviceFor(o.localPort, processName, this.ownerName(owner, o.pid));
    const key = this.keys.key(info.service, o.localIp, o.localPort, o.remoteIp, o.remotePort);
    const found = this.flows.get(key);
    let flow = found < 0 ? undefined : this.bySlot[found];
    if (flow === undefined) {
      if (
        info.sampleRate > 1 &&
        !this.sampledIn(
          `${info.service}|${o.localIp}|${o.localPort}|${o.remoteIp}|${o.remotePort}`,
          info.sampleRate,
        )
      ) {
        this.counters.sampledOut++;
        return;
      }
      if (this.flows.size >= this.options.maxFlows) this.evictOldest();
      const slot = this.slots.alloc();
      this.slots.setInt(slot, I_PREV, NONE);
      this.slots.setInt(slot, I_NEXT, NONE);
      this.slots.set(slot, S_FIRST_SEEN, o.firstSeen ?? o.lastSeen);
      this.slots.set(slot, S_LAST_SEEN, o.lastSeen);
      this.slots.set(slot, S_DELTA_FIRST_SEEN, Number.POSITIVE_INFINITY);
      // Every field set here, optional ones too, so flows share one shape and no property store.
      flow = {
        key,
        slot,
        local: this.localSide(info.service, o.localIp, o.localPort, info),
        // Held as long as the flow: not a view into the report it came in.
        remoteIp: detached(o.remoteIp),
        bits: o.remotePort | (SOURCE_RANK[o.source] << F_RANK_SHIFT),
        owner: undefined,
        extra: undefined,
      };
      this.flows.set(key, slot);
      this.bySlot[slot] = flow;
      this.append(slot);
      const expiry = flow.local.timeoutMs + o.lastSeen;
      if (expiry < this.nextExpiry) this.nextExpiry = expiry;
    } else if (flow.slot !== this.newest) {
      // The recency list stays least-recently-seen first.
      this.unlink(flow.slot);
      this.append(flow.slot);
    }
    if ((o.source === 'hook' || o.source === 'ebpf') && (flow.bits & F_INDEXED) === 0) {
      let byPeer = this.packetFlows.get(o.localPort);
      if (!byPeer) {
        byPeer = new FlowKeyMap();
        this.packetFlows.set(o.localPort, byPeer);
      }
      const peer = peerKey(o.remoteIp, o.remotePort);
      // Another service's flow with this port and peer: the latest observed one gets the NAT info.
      const other = byPeer.get(peer);
      const previous = other < 0 ? undefined : this.bySlot[other];
      if (previous !== undefined) previous.bits &= ~F_INDEXED;
      byPeer.set(peer, flow.slot);
      flow.bits |= F_INDEXED;
    }
    const rank = SOURCE_RANK[o.source] << F_RANK_SHIFT;
    if (rank > (flow.bits & F_RANK)) flow.bits = (flow.bits & ~F_RANK) | rank;
    // A source that sampled packets scaled its counters already; the rate says so.
    const scale = flow.local.scale;
    const rate = scale * (o.sampleRate ?? 1);
    if (rate > sampleRateOf(flow)) extraOf(flow).sampleRate = rate;
    const slots = this.slots;
    const slot = flow.slot;
    slots.add(slot, S_PKTS_IN, o.pktsIn * scale);
    slots.add(slot, S_BYTES_IN, o.bytesIn * scale);
    slots.add(slot, S_PKTS_OUT, o.pktsOut * scale);
    slots.add(slot, S_BYTES_OUT, o.bytesOut * scale);
    slots.add(slot, S_TOTAL_PKTS_IN, o.pktsIn * scale);
    slots.add(slot, S_TOTAL_BYTES_IN, o.bytesIn * scale);
    slots.add(slot, S_TOTAL_PKTS_OUT, o.pktsOut * scale);
    slots.add(slot, S_TOTAL_BYTES_OUT, o.bytesOut * scale);
    if (o.firstSeen !== undefined && o.firstSeen < slots.get(slot, S_FIRST_SEEN))
      slots.set(slot, S_FIRST_SEEN, o.firstSeen);
    if (o.lastSeen > slots.get(slot, S_LAST_SEEN)) slots.set(slot, S_LAST_SEEN, o.lastSeen);
    // Packets up to the previous delta's last one were in that delta.
    const first = Math.max(
      Math.min(o.firstSeen ?? o.lastSeen, o.lastSeen),
      slots.get(slot, S_DRAINED_LAST_SEEN),
    );
    if (first < slots.get(slot, S_DELTA_FIRST_SEEN)) slots.set(slot, S_DELTA_FIRST_SEEN, first);
    flow.bits |= F_TOUCHED;
    const had = flow.owner;
    if (
      (pid !== undefined && had?.pid === undefined) ||
      (processName !== undefined && had?.process === undefined)
    ) {
      flow.owner = this.sharedOwner(had?.pid ?? pid, had?.process ?? processName);
    }
    if (o.natFromIp !== undefined) {
      const extra = extraOf(flow);
      if (o.natFromIp !== extra.natFromIp) extra.natFromIp = detached(o.natFromIp);
      extra.natFromPort = o.natFromPort;
    }
    if (o.clientId !== undefined && o.clientId !== flow.extra?.clientId)
      extraOf(flow).clientId = detached(o.clientId);
  }

  /** The one FlowOwner of (pid, process). */
  private sharedOwner(pid: number | undefined, process: string | undefined): FlowOwner {
    const id = `${pid ?? ''}|${process ?? ''}`;
    let owner = this.owners.get(id);
    if (owner === undefined) {
      if (this.owners.size >= MAX_OWNERS) this.owners.clear();
      owner = { pid, process: process === undefined ? undefined : this.strings.get(process) };
      this.owners.set(id, owner);
    }
    return owner;
  }

  /** The shared local side of (service, address, port) with the service's timeout and scale. */
  private localSide(
    service: string,
    localIp: string,
    localPort: number,
    info: { timeoutSeconds: number; sampleRate: number },
  ): LocalSide {
    const timeoutMs = info.timeoutSeconds * 1000;
    const scale = info.sampleRate;
    // Once per new flow, not per observation.
    const id = `${service}|${localIp}|${localPort}|${timeoutMs}|${scale}`;
    let side = this.localSides.get(id);
    if (side === undefined) {
      if (this.localSides.size >= MAX_LOCAL_SIDES) this.localSides.clear();
      const pool = this.strings;
      side = {
        service: pool.get(service),
        localIp: pool.get(localIp),
        localPort,
        timeoutMs,
        scale,
      };
      this.localSides.set(detached(id), side);
    }
    return side;
  }

  private copyNatToPacketFlow(o: PeerObservation): void {
    const slot = this.packetFlows.get(o.localPort)?.get(peerKey(o.remoteIp, o.remotePort)) ?? -1;
    const flow = slot < 0 ? undefined : this.bySlot[slot];
    if (flow) {
      const extra = extraOf(flow);
      if (o.natFromIp !== extra.natFromIp)
        extra.natFromIp = o.natFromIp === undefined ? undefined : detached(o.natFromIp);
      extra.natFromPort = o.natFromPort;
    }
  }

  /** Puts `slot` at the most recent end of the recency list. */
  private append(slot: number): void {
    const slots = this.slots;
    slots.setInt(slot, I_PREV, this.newest);
    slots.setInt(slot, I_NEXT, NONE);
    if (this.newest === NONE) this.oldest = slot;
    else slots.setInt(this.newest, I_NEXT, slot);
    this.newest = slot;
  }

  /** Takes `slot` out of the recency list. */
  private unlink(slot: number): void {
    const slots = this.slots;
    const prev = slots.getInt(slot, I_PREV);
    const next = slots.getInt(slot, I_NEXT);
    if (prev === NONE) this.oldest = next;
    else slots.setInt(prev, I_NEXT, next);
    if (next === NONE) this.newest = prev;
    else slots.setInt(next, I_PREV, prev);
  }

  private forget(flow: Flow): void {
    this.flows.delete(flow.key);
    this.unlink(flow.slot);
    this.bySlot[flow.slot] = undefined;
    this.slots.free(flow.slot);
    if ((flow.bits & F_INDEXED) === 0) return;
    const byPeer = this.packetFlows.get(flow.local.localPort);
    if (!byPeer) return;
    const peer = peerKey(flow.remoteIp, flow.bits & F_PORT);
    if (byPeer.get(peer) === flow.slot) byPeer.delete(peer);
    if (byPeer.size === 0) this.packetFlows.delete(flow.local.localPort);
  }

  /** Deterministic 1-in-N choice per flow key, so a flow is always in or always out. */
  private sampledIn(key: string, rate: number): boolean {
    const h = fnv1a(`${this.options.sampleSeed ?? ''}|${key}`);
    // Mix the bits: FNV-1a's low bits are weak for similar keys.
    const mixed = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
    return ((mixed ^ (mixed >>> 16)) >>> 0) % rate === 0;
  }

  private evictOldest(): void {
    const flow = this.oldest === NONE ? undefined : this.bySlot[this.oldest];
    if (flow === undefined) return;
    // Before forget(): that frees the flow's slot.
    if ((flow.bits & F_TOUCHED) !== 0) this.evicted.push(this.deltaOf(flow));
    this.forget(flow);
    this.counters.evicted++;
  }

  /** A new delta of `flow` (an evicted flow's, kept until the next drain). */
  private deltaOf(flow: Flow): FlowDelta {
    return { ...this.fill(this.scratch, flow) };
  }

  /** Sets `delta` to `flow`'s undrained deltas; returns it. */
  private fill(delta: FlowDelta, flow: Flow): FlowDelta {
    const { slots } = this;
    const slot = flow.slot;
    const lastSeen = slots.get(slot, S_LAST_SEEN);
    const { local, extra } = flow;
    delta.service = local.service;
    delta.source = sourceOf(flow);
    delta.localIp = local.localIp;
    delta.localPort = local.localPort;
    delta.remoteIp = flow.remoteIp;
    delta.remotePort = flow.bits & F_PORT;
    delta.firstSeen = Math.min(slots.get(slot, S_DELTA_FIRST_SEEN), lastSeen);
    delta.lastSeen = lastSeen;
    delta.sampleRate = sampleRateOf(flow);
    delta.pktsIn = slots.get(slot, S_PKTS_IN);
    delta.bytesIn = slots.get(slot, S_BYTES_IN);
    delta.pktsOut = slots.get(slot, S_PKTS_OUT);
    delta.bytesOut = slots.get(slot, S_BYTES_OUT);
    delta.fresh = (flow.bits & F_DRAINED) === 0;
    delta.flowKey = flow.key;
    delta.pid = flow.owner?.pid;
    delta.process = flow.owner?.process;
    delta.natFromIp = extra?.natFromIp;
    delta.natFromPort = extra?.natFromIp === undefined ? undefined : extra.natFromPort;
    delta.clientId = extra?.clientId;
    return delta;
  }

  /**
   * The deltas of every flow observed since the previous drain (a flow seen
   * with no new counts, like a connected socket /proc lists, has zero
   * deltas: it was still seen), including flows evicted meanwhile; then
   * forgets flows idle past their service's timeout.
   */
  drain(now: number): FlowDelta[] {
    const out: FlowDelta[] = [];
    this.drainInto(now, (d) => out.push({ ...d }));
    return out;
  }

  /**
   * drain() without an object per flow: hands each delta to `visit`, least
   * recently observed flow first, as one object refilled for the next flow
   * (copy what outlives the call; the strings are the table's own).
   */
  drainInto(now: number, visit: (delta: FlowDelta) => void): void {
    const evicted = this.evicted;
    this.evicted = [];
    for (const d of evicted) visit(d);
    const { slots, bySlot, scratch } = this;
    for (let slot = this.oldest; slot !== NONE; slot = slots.getInt(slot, I_NEXT)) {
      const flow = bySlot[slot]!;
      if ((flow.bits & F_TOUCHED) === 0) continue;
      visit(this.fill(scratch, flow));
      slots.set(slot, S_PKTS_IN, 0);
      slots.set(slot, S_BYTES_IN, 0);
      slots.set(slot, S_PKTS_OUT, 0);
      slots.set(slot, S_BYTES_OUT, 0);
      slots.set(slot, S_DELTA_FIRST_SEEN, Number.POSITIVE_INFINITY);
      slots.set(slot, S_DRAINED_LAST_SEEN, slots.get(slot, S_LAST_SEEN));
      flow.bits = (flow.bits & ~F_TOUCHED) | F_DRAINED;
    }
    this.expire(now);
  }

  private expire(now: number): void {
    // Only once a flow may be due: busy tables are not walked every cycle.
    if (now > this.nextExpiry) {
      let next = Number.POSITIVE_INFINITY;
      const { slots, bySlot } = this;
      for (let slot = this.oldest; slot !== NONE; ) {
        const flow = bySlot[slot]!;
        // Before forget(), which unlinks the slot.
        const following = slots.getInt(slot, I_NEXT);
        const expiry = slots.get(slot, S_LAST_SEEN) + flow.local.timeoutMs;
        if (now > expiry) {
          this.forget(flow);
          this.counters.expired++;
        } else if (expiry < next) next = expiry;
        slot = following;
      }
      this.nextExpiry = next;
    }
    for (const [k, at] of this.hookedPorts) {
      if (now - at > HOOK_PORT_MARK_MS) this.hookedPorts.delete(k);
    }
    for (const [k, p] of this.hookPending) {
      if (now - p.at > HOOK_PENDING_MS) {
        this.hookPending.delete(k);
        this.counters.hookUnmatched++;
      }
    }
  }

  /** A copy of the current flows (for snapshot and tests). */
  list(): FlowView[] {
    const flows: Flow[] = [];
    for (let slot = this.oldest; slot !== NONE; slot = this.slots.getInt(slot, I_NEXT))
      flows.push(this.bySlot[slot]!);
    return flows.map((f) => ({
      service: f.local.service,
      source: sourceOf(f),
      localIp: f.local.localIp,
      localPort: f.local.localPort,
      remoteIp: f.remoteIp,
      remotePort: f.bits & F_PORT,
      firstSeen: this.slots.get(f.slot, S_FIRST_SEEN),
      lastSeen: this.slots.get(f.slot, S_LAST_SEEN),
      sampleRate: sampleRateOf(f),
      pid: f.owner?.pid,
      process: f.owner?.process,
      natFromIp: f.extra?.natFromIp,
      natFromPort: f.extra?.natFromPort,
      clientId: f.extra?.clientId,
      pktsIn: this.slots.get(f.slot, S_TOTAL_PKTS_IN),
      bytesIn: this.slots.get(f.slot, S_TOTAL_BYTES_IN),
      pktsOut: this.slots.get(f.slot, S_TOTAL_PKTS_OUT),
      bytesOut: this.slots.get(f.slot, S_TOTAL_BYTES_OUT),
    }));
  }
}
