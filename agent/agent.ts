/**
 * The agent's run loop: every interval it collects what the sources observed,
 * folds it into the flow table, hands the table's deltas to the block sealer,
 * and ships the blocks it seals (and, every heartbeat interval, a v1
 * heartbeat line) through the shipper.
 *
 * Durability: every cycle (at most CHECKPOINT_MAX_GAP_MS apart) and before
 * any sealed record is spooled, the agent writes a checkpoint of what it holds
 * unsealed, with the records it is about to spool as its outbox and the hook
 * line marks (so lines a hook sends again are not counted twice); hooked
 * daemons' lines are acknowledged only after that write is on disk. An eBPF
 * drain cues a cycle at once, so its counts are checkpointed right after
 * their interval. After a crash,
 * restore() seals the checkpoint's pending deltas under new seqs and spools
 * its outbox again (the same bytes, stored once). Nothing is restored twice:
 * any record spooled after a checkpoint is in a later checkpoint's outbox,
 * and a clean stop leaves a checkpoint with nothing pending.
 *
 * `createAgent` is the one place an agent is assembled: the CLI passes the
 * real sources, shipper and clock, tests pass in-memory ones.
 */
import type { SealedPart } from '../contract/block-codec.js';
import type { UnsequencedLine } from '../contract/codec.js';
import { type FlowSource, type SourceState, WIRE_VERSION } from '../contract/wire.js';
import type { AgentConfig } from './agent-config.js';
import { BlindSpotWatch, type CoverageFacts, sourceStates } from './blind-spots.js';
import { BlockSealer, blockRecord, sendOffsetMs } from './block-sealer.js';
import type { CheckpointState } from './checkpoint-codec.js';
import type { CheckpointFile } from './checkpoint-file.js';
import type { ConntrackSource } from './conntrack-source.js';
import type { EbpfSource } from './ebpf-source.js';
import { FlowTable } from './flow-table.js';
import type { HookSource } from './hook-source.js';
import type { KinesisShipper } from './kinesis-shipper.js';
import type { ConntrackRules } from './nft-ruleset.js';
import type { ListeningSocket, PeerObservation } from './observation.js';
import { outboundRule, type PortRange } from './outbound-flows.js';
import type { ProcSource } from './proc-source.js';
import { packRecords, type ShipRecord } from './record-packer.js';
import { createServiceNamer, type ServiceNamer } from './service-names.js';
import { SocketHealthTracker } from './socket-health.js';

/** What the agent needs of the shipper (KinesisShipper is the real one). */
export type RecordShipper = Pick<KinesisShipper, 'enqueue' | 'start' | 'stop'> & {
  stats(): { droppedLines: number; spooledRecords: number };
};

/** What the agent needs of /proc: peers of connected sockets, and the listeners. */
export type ProcPeers = Pick<ProcSource, 'poll' | 'listeners'> &
  Partial<Pick<ProcSource, 'lastScan'>>;

/** What the agent needs of conntrack (its baselines go into the checkpoint when it has them). */
export type ConntrackPeers = Pick<ConntrackSource, 'poll' | 'status'> &
  Partial<Pick<ConntrackSource, 'baselines' | 'restoreBaselines'>>;

/** What the agent needs of the eBPF source (started by whoever built it); its drains cue cycles. */
export type EbpfPeers = Pick<EbpfSource, 'pollInto' | 'status' | 'stop'> &
  Partial<Pick<EbpfSource, 'onDrain'>>;

/** Everything an agent is built from besides its configuration. */
export interface AgentDeps {
  agentId: string;
  /** Sources; a missing one is off. */
  proc?: ProcPeers;
  conntrack?: ConntrackPeers;
  ebpf?: EbpfPeers;
  hook?: HookSource;
  shipper: RecordShipper;
  /** Reads the namespace's ruleset (readConntrackRules); without it conntrack's rules are unknown. */
  conntrackRules?: () => Promise<{ rules: ConntrackRules } | { rules: null; reason: string }>;
  /** The persistent record sequence (SeqAllocator). */
  seq: { take(): number };
  /** Epoch ms now. */
  clock: () => number;
  /** Names a process by pid for flows /proc has not placed yet (process-identity.ts createPidNamer). */
  nameOfPid?: (pid: number) => string | undefined;
  /**
   * The namespace's ephemeral port range (readEphemeralPorts): flows from a
   * port in it to a server's port are outbound, no service's (outbound-flows.ts).
   * Without it every socket is taken as a service.
   */
  ephemeralPorts?: PortRange;
  /** Where the unsealed state is checkpointed; without it a crash loses what was unsealed. */
  checkpoint?: Pick<CheckpointFile, 'write' | 'remove' | 'stats' | 'limits' | 'path'>;
  log: (message: string) => void;
}

/** What restore() took over from a checkpoint. */
export interface Restored {
  endpoints: number;
  records: number;
  dropped: number;
}

/** Counters of one agent, as a heartbeat reports them. */
export interface AgentCounters {
  flows: number;
  dropped: number;
  spooled: number;
  /** Hook reports the flow table could place on no listed socket (a blind spot, not a loss). */
  hookUnmatched: number;
}

/**
 * An unmatched-hook episode ends after this long without a new unmatched
 * report: more than two of the flow table's one-minute waits, so a daemon
 * that keeps reporting unmatched (counted once a minute) stays one episode.
 */
const HOOK_UNMATCHED_QUIET_MS = 150_000;

/** Distinct (source, port, pid) sums of early-flushed reports kept for the next cycle. */
const MAX_EARLY_SUMS = 100_000;

/** Hook reports arriving this close together are folded into one early flush. */
const EARLY_FLUSH_DELAY_MS = 20;

/** Appends `items` to `out` (a spread of 100,000 arguments would copy them onto the stack). */
function append<T>(out: T[], items: readonly T[]): void {
  for (const item of items) out.push(item);
}

/** Builds an agent from its configuration and parts; nothing runs until start() or tick(). */
export function createAgent(config: AgentConfig, deps: AgentDeps): Agent {
  const agent = new Agent(config, deps);
  deps.hook?.onObservations(() => agent.nudge());
  return agent;
}

/**
 * Reports of a minute's last seconds reach the table up to a hook window
 * (1 s) plus a cycle later; the main part waits that long, and a second more.
 */
const HOOK_WINDOW_MS = 1000;

/** How often the ruleset is read again: rules change rarely, and `nft` costs a process. */
const RULES_REFRESH_MS = 30_000;

/**
 * Longest time between checkpoints. A checkpoint is written every cycle
 * unless the last write held the event loop (encoding: the hashing and file
 * I/O run off it) for more than 1/CHECKPOINT_COST_SHARE of the time since
 * the previous one, then less often, but at least this often. A safety valve
 * only: 100,000 pending endpoints hold the loop for tens of ms, so at the
 * 1 s interval it never skips a cycle below millions.
 */
export const CHECKPOINT_MAX_GAP_MS = 5_000;
const CHECKPOINT_COST_SHARE = 2;

/** One agent: sources -> flow table -> block sealer -> shipper. */
export class Agent {
  readonly flowTable: FlowTable;
  readonly sealer: BlockSealer;
  private readonly serviceFor: ServiceNamer;
  private readonly socketHealth = new SocketHealthTracker();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** A loop cycle is in flight; `cycleAgain`: a drain came meanwhile, run the next one at once. */
  private ticking = false;
  private cycleAgain = false;
  private cycle: Promise<void> = Promise.resolve();
  private earlyFlush: Promise<void> | null = null;
  private lastHeartbeat = Number.NEGATIVE_INFINITY;
  private lastHookDrops = 0;
  private conntrackBaselined = false;
  private lastEbpfRefused = 0;
  /** Packets refused since the eBPF map filled (an episode), or null while it has room. */
  private ebpfRefusing: { since: number; packets: number } | null = null;
  private lastHookUnmatched = 0;
  /** Hook reports placed on no socket since an episode began (with the latest), or null. */
  private hookUnmatching: { since: number; latest: number; reports: number } | null = null;
  /** eBPF was live when stop() began: its last counts still own their flows. */
  private ebpfStopped = false;
  private readonly errorsSeen = new Set<string>();
  private readonly blindSpots: BlindSpotWatch;
  /**
   * Hook reports folded in since the last blind-spot sample (by early
   * flushes and cycles): one per source, port and pid with their pktsIn
   * summed (all the watch reads), so no row is held for it.
   */
  private earlyObservations = new Map<string, PeerObservation>();
  /** Each source's state as last logged, so a change is logged once. */
  private loggedStates = new Map<FlowSource, string>();
  private rules: { rules: ConntrackRules | null; reason?: string; at: number } | null = null;
  /** Losses of earlier runs (from the checkpoint), so `dropped` continues across restarts. */
  private droppedBase = 0;
  private lastCheckpoint = Number.NEGATIVE_INFINITY;
  private checkpointFailing = false;
  /** Pending endpoints left out of checkpoints for their bound (a crash would lose them). */
  private checkpointOmitted = 0;

  /** Ports in the ephemeral range where a kept flow showed a server, pruned to the listeners. */
  private readonly servedEphemeral = new Set<number>();
  private readonly servicePorts: ReadonlySet<number>;

  /** Use createAgent, which also subscribes the agent to the hook's reports. */
  constructor(
    private readonly config: AgentConfig,
    private readonly deps: AgentDeps,
  ) {
    this.blindSpots = new BlindSpotWatch({ log: deps.log });
    this.serviceFor = createServiceNamer(config.services, config.defaultTimeoutSeconds);
    this.servicePorts = new Set(
      config.services.flatMap((r) => (r.port === undefined ? [] : [r.port])),
    );
    this.flowTable = new FlowTable({
      serviceFor: this.serviceFor,
      maxFlows: config.maxFlows,
      sampleSeed: deps.agentId,
      nameOfPid: deps.nameOfPid,
      ...(deps.ephemeralPorts
        ? { isOutbound: outboundRule(deps.ephemeralPorts, this.servicePorts) }
        : {}),
    });
    this.sealer = new BlockSealer({
      agentId: deps.agentId,
      host: config.host,
      nextSeq: () => deps.seq.take(),
      sealIntervalMs: config.sealIntervalSeconds * 1000,
      graceMs: config.intervalSeconds * 1000 + HOOK_WINDOW_MS + 1000,
      sendOffsetMs: sendOffsetMs(deps.agentId),
      earlyBurst: config.earlyParts.burst,
      earlyRefillMs: config.earlyParts.refillSeconds * 1000,
      now: deps.clock(),
    });
  }

  /** Sources that see something: live, or blind to some ports only. */
  sources(): FlowSource[] {
    return this.sourceStates()
      .filter((s) => s.state === 'live' || s.state === 'partial')
      .map((s) => s.source);
  }

  /** Every source's state, with why it is not live. */
  sourceStates(): SourceState[] {
    return sourceStates(this.coverage());
  }

  /** Unobserved busy services found so far (what the next heartbeat names). */
  unobserved() {
    return this.blindSpots.current();
  }

  private coverage(): CoverageFacts {
    const { ebpf, conntrack, hook, proc } = this.deps;
    const on = this.config.sources;
    return {
      hook: hook !== undefined,
      proc: proc !== undefined,
      ebpf: ebpf
        ? ebpf.status()
        : {
            off: on.ebpf
              ? 'needs the proc source (sources.proc)'
              : 'turned off in the config (sources.ebpf)',
          },
      conntrack: conntrack?.status() ?? { off: 'turned off in the config (sources.conntrack)' },
      rules: this.rules?.rules ?? null,
      ...(this.rules?.reason ? { rulesReason: this.rules.reason } : {}),
    };
  }

  /** Logs each source whose state or reason changed (a blind source once per episode). */
  private logStateChanges(): void {
    for (const s of this.sourceStates()) {
      const tag = `${s.state} ${s.reason ?? ''}`;
      const before = this.loggedStates.get(s.source);
      if (before === tag) continue;
      this.loggedStates.set(s.source, tag);
      // 'off' is what the config asked for, and 'starting' eBPF says so itself.
      if (s.state === 'off' || (before === undefined && s.state === 'live' && !s.reason)) continue;
      this.deps.log(
        `source ${s.source}: ${s.state}${s.reason ? ` (${s.reason})` : ''}${s.state === 'blind' ? ': its clients go unseen unless another source is live' : ''}`,
      );
    }
  }

  /** Reads the ruleset when due; a failure is logged once and leaves the rules unknown. */
  private async refreshRules(now: number): Promise<void> {
    const read = this.deps.conntrackRules;
    if (!read || !this.deps.conntrack) return;
    if (this.rules && now - this.rules.at < RULES_REFRESH_MS) return;
    const got = await read();
    if (got.rules) this.rules = { rules: got.rules, at: now };
    else {
      this.rules = { rules: null, reason: got.reason, at: now };
      this.logOnce(
        `cannot read the firewall ruleset (${got.reason}): NOTRACK rules and rule-less namespaces go unnoticed; install nftables or grant CAP_NET_ADMIN`,
      );
    }
  }

  /** Shedding and spool counters for heartbeats. */
  counters(): AgentCounters {
    const shipper = this.deps.shipper.stats();
    return {
      flows: this.flowTable.size,
      dropped: this.durableDropped(),
      spooled: shipper.spooledRecords,
      hookUnmatched: this.flowTable.stats().hookUnmatched,
    };
  }

  /**
   * The loss total: earlier runs', the spool's and memory bound's, packets
   * the eBPF source could not count (its map was full), and what hooked
   * daemons could not report as of the latest drain: a later report's loss
   * is not acknowledged yet, so after a crash the hook sends it again and it
   * counts then. Heartbeats and checkpoints both report this, and a
   * heartbeat's cycle also writes a checkpoint, so a restart continues from
   * the last heartbeat's total, never below it and never counting twice.
   */
  private durableDropped(): number {
    const shipper = this.deps.shipper.stats();
    return (
      this.droppedBase +
      shipper.droppedLines +
      (this.deps.hook?.drainedLoss() ?? 0) +
      (this.deps.ebpf?.status().refusedPackets ?? 0)
    );
  }

  /** Whether a checkpoint is due at `now` without anything sealed. */
  private checkpointDue(now: number): boolean {
    const cp = this.deps.checkpoint;
    if (!cp) return false;
    // The cost is the time a write holds the event loop: its file I/O runs beside the sources.
    const gap = Math.min(CHECKPOINT_MAX_GAP_MS, cp.stats().lastBlockedMs * CHECKPOINT_COST_SHARE);
    return now - this.lastCheckpoint >= gap;
  }

  /**
   * Writes the checkpoint: what is pending now and `outbox`, the sealed
   * records about to be spooled; then acknowledges the hook lines drained
   * so far. A failed write removes the old checkpoint (it may hold deltas
   * sealed since, which a restore would count twice) and acknowledges anyway,
   * logged: a crash then loses what is unsealed, as without a checkpoint.
   */
  private async writeCheckpoint(now: number, outbox: ShipRecord[], clean = false): Promise<void> {
    const cp = this.deps.checkpoint;
    if (cp) {
      const { groups, omitted } = clean
        ? { groups: [], omitted: 0 }
        : this.sealer.exportPending(cp.limits.maxEndpoints);
      if (omitted > 0 && this.checkpointOmitted === 0) {
        this.deps.log(
          `checkpoint: ${omitted} pending endpoints over its bound (${cp.limits.maxEndpoints}) left out; a crash would lose their counts`,
        );
      }
      this.checkpointOmitted += omitted;
      // What conntrack's deltas so far add up to, taken at this write like the pending deltas.
      const ct = this.deps.conntrack;
      const baselines =
        this.conntrackBaselined && ct?.status().available
          ? ct.baselines?.(cp.limits.maxEndpoints)
          : undefined;
      try {
        // Encoded before the first await (the pending endpoints are the sealer's own).
        await cp.write({
          agentId: this.deps.agentId,
          writtenAt: now,
          clean,
          dropped: this.durableDropped(),
          pending: groups,
          outbox,
          ...(baselines ? { conntrack: baselines } : {}),
          // Taken with the export: the lines drained so far are all in it (or sealed before).
          ...(this.deps.hook ? { hookLines: this.deps.hook.lineMarks() } : {}),
        });
        this.lastCheckpoint = now;
        if (this.checkpointFailing) this.deps.log(`checkpoint ${cp.path} written again`);
        this.checkpointFailing = false;
      } catch (err) {
        const removed = cp.remove();
        if (!this.checkpointFailing) {
          this.deps.log(
            `${(err as Error).message}; ${removed ? 'removed the previous one' : 'could not remove the previous one either'}: until a write succeeds a crash loses what is not sealed, and hook reports are acknowledged without it`,
          );
        }
        this.checkpointFailing = true;
      }
    }
    this.deps.hook?.acknowledge();
  }

  /**
   * Takes over the previous run's checkpoint: its loss total always; after a
   * crash (`crashed`, and the checkpoint not written at a clean stop) also its
   * pending deltas, sealed now under new seqs (they were never sealed: see
   * the file comment), and its outbox, spooled again. Call before the first tick.
   */
  async restore(state: CheckpointState, crashed: boolean): Promise<Restored> {
    this.droppedBase = state.dropped;
    // Conntrack's next read counts from the checkpoint's counters: what the
    // entries moved after it (the downtime included) is counted, nothing before.
    const ct = this.deps.conntrack;
    if (state.conntrack && ct?.restoreBaselines) {
      ct.restoreBaselines(state.conntrack);
      this.conntrackBaselined = true;
    }
    if (!crashed || state.clean) return { endpoints: 0, records: 0, dropped: state.dropped };
    this.sealer.restorePending(state.pending);
    const sealed = this.sealer.sealAll().map(blockRecord);
    const records = [...state.outbox, ...sealed];
    // The new seqs are in the next checkpoint's outbox before they reach the spool.
    await this.writeCheckpoint(this.deps.clock(), records);
    this.deps.shipper.enqueue(records);
    return {
      endpoints: state.pending.reduce((n, g) => n + g.endpoints.length, 0),
      records: records.length,
      dropped: state.dropped,
    };
  }

  /** Checkpoint counters: writes, bytes and time of the last one, endpoints left out. */
  checkpointStats() {
    return { ...this.deps.checkpoint?.stats(), omitted: this.checkpointOmitted };
  }

  private logOnce(message: string): void {
    if (this.errorsSeen.has(message)) return;
    if (this.errorsSeen.size > 100) this.errorsSeen.clear();
    this.errorsSeen.add(message);
    this.deps.log(message);
  }

  /**
   * One log line when the eBPF map starts refusing packets and one when a
   * cycle passes without any, with the episode's total; the count itself is
   * in every heartbeat (`dropped`).
   */
  private noteEbpfRefused(refused: number): void {
    const fresh = refused - this.lastEbpfRefused;
    this.lastEbpfRefused = refused;
    if (fresh > 0) {
      if (!this.ebpfRefusing) {
        this.ebpfRefusing = { since: this.deps.clock(), packets: 0 };
        this.deps.log(
          'eBPF source: its flow map is full, packets of new flows are not counted (raise ebpf.maxFlows in the config, or set ebpf.sampleRate)',
        );
      }
      this.ebpfRefusing.packets += fresh;
    } else if (this.ebpfRefusing) {
      const { since, packets } = this.ebpfRefusing;
      this.ebpfRefusing = null;
      this.deps.log(
        `eBPF source: its flow map has room again; ${packets} packets were not counted over ${Math.round((this.deps.clock() - since) / 1000)} s`,
      );
    }
  }

  /**
   * One log line when hook reports start matching no listed socket, with
   * what to do, and one with the episode's total once none came for a while;
   * the count itself is in every heartbeat (`hookUnmatched`).
   */
  private noteHookUnmatched(now: number): void {
    const total = this.flowTable.stats().hookUnmatched;
    const fresh = total - this.lastHookUnmatched;
    this.lastHookUnmatched = total;
    if (fresh > 0) {
      if (!this.hookUnmatching) {
        this.hookUnmatching = { since: now, latest: now, reports: 0 };
        this.deps.log(
          "hook: a hooked daemon reports for a socket this agent's /proc scan does not list (it runs in another network namespace than the agent, or it reported after closing the socket): its clients are counted, but its socket's health (drops, receive queue) is not seen; run an agent in the daemon's network namespace, or the daemon in the agent's",
        );
      }
      this.hookUnmatching.reports += fresh;
      this.hookUnmatching.latest = now;
    } else if (this.hookUnmatching && now - this.hookUnmatching.latest > HOOK_UNMATCHED_QUIET_MS) {
      const { since, latest, reports } = this.hookUnmatching;
      this.hookUnmatching = null;
      this.deps.log(
        `hook: reports match listed sockets again; ${reports} unmatched over ${Math.round((latest - since) / 1000)} s`,
      );
    }
  }

  private async readConntrack(conntrack: ConntrackPeers): Promise<PeerObservation[]> {
    const seen = await conntrack.poll();
    if (!conntrack.status().available) {
      // The source forgot its entries; its next good read starts from scratch.
      this.conntrackBaselined = false;
      return seen;
    }
    // The first read returns each entry's counters since it was created,
    // which an earlier run of the agent may already have shipped: take it as
    // the baseline (peers known, no counts) so a restart never counts twice.
    // A checkpoint's baselines (restore()) take the place of this read: then
    // what entries moved since that checkpoint counts. eBPF needs none: a run
    // starts its own bpftrace, whose maps start empty.
    if (!this.conntrackBaselined) {
      this.conntrackBaselined = true;
      for (const o of seen) Object.assign(o, { pktsIn: 0, bytesIn: 0, pktsOut: 0, bytesOut: 0 });
    }
    return seen;
  }

  private async collect(): Promise<PeerObservation[]> {
    const { proc, conntrack, ebpf, hook } = this.deps;
    const out: PeerObservation[] = [];
    if (proc) {
      try {
        append(out, await proc.poll());
        this.flowTable.setListeners(proc.listeners());
      } catch (err) {
        this.logOnce(`/proc scan failed: ${(err as Error).message}`);
      }
    }
    // eBPF's tuples go straight into the table (ingestEbpf), after /proc's scan of this cycle.
    if (ebpf) this.noteEbpfRefused(ebpf.status().refusedPackets);
    if (conntrack) {
      try {
        append(out, await this.readConntrack(conntrack));
      } catch (err) {
        this.logOnce(`conntrack read failed: ${(err as Error).message}`);
      }
    }
    // The hook's rows go straight into the table (ingestHook), not into this list.
    if (hook) {
      const drops = hook.stats().droppedPackets;
      if (drops > this.lastHookDrops) {
        this.deps.log(
          `hooked daemons could not report ${drops - this.lastHookDrops} packets (a hook's flow table was full: raise UDPWATCH_HOOK_MAX_FLOWS; or an older hook lost windows while no agent listened)`,
        );
        this.lastHookDrops = drops;
      }
    }
    return out;
  }

  /**
   * One cycle: collect, fold, seal what is due (everything with `all`), add a
   * heartbeat when due, enqueue; returns the number of records queued.
   */
  async tick(now: number = this.deps.clock(), options: { all?: boolean } = {}): Promise<number> {
    const observations = await this.collect();
    if (this.deps.proc) await this.refreshRules(now);
    // Packet sources first, as ingest() takes them: the hook, then eBPF (the
    // hook's reports this cycle mark the sockets it owns); their sums feed the blind-spot watch.
    this.ingestHook();
    this.ingestEbpf();
    if (this.deps.proc) {
      const early = [...this.earlyObservations.values()];
      this.earlyObservations.clear();
      const ct = this.deps.conntrack?.status();
      this.blindSpots.sample({
        now,
        snmp: this.deps.proc.lastScan?.()?.snmp,
        observations,
        moreObservations: early,
        // Conntrack without accounting only matters once it reports peers (uncounted).
        countsComplete: !(
          ct?.available &&
          ct.accounting === false &&
          observations.some((o) => o.source === 'conntrack')
        ),
        // Not a client's socket on an ephemeral port (a resolver's upstream one): no service.
        listeners: this.serviceListeners(this.deps.proc.listeners()),
        facts: this.coverage(),
        serviceOf: (l) => this.serviceFor(l.localPort, l.process).service,
      });
    }
    this.logStateChanges();
    this.flowTable.setEbpfLive(this.ebpfStopped || (this.deps.ebpf?.status().live ?? false));
    this.flowTable.ingest(observations);
    const blocks = this.drainTable(now);
    this.noteHookUnmatched(now);
    if (this.deps.proc) {
      const health = this.socketHealth.sample(
        this.serviceListeners(this.deps.proc.listeners()),
        (l) => this.flowTable.serviceOf(l),
      );
      this.sealer.addSocketHealth(health, now);
    }
    blocks.push(...(options.all ? this.sealer.sealAll() : this.sealer.sealDue(now)));
    const records = blocks.map(blockRecord);
    const heartbeatDue = now - this.lastHeartbeat >= this.config.heartbeatSeconds * 1000;
    // Before the spool: a crash after this write restores exactly what is pending and re-spools these.
    // (Without a checkpoint this only acknowledges the hook's lines, every cycle.)
    if (records.length > 0 || heartbeatDue || !this.deps.checkpoint || this.checkpointDue(now)) {
      await this.writeCheckpoint(now, records);
    }
    if (heartbeatDue) {
      this.lastHeartbeat = now;
      records.push(...this.heartbeat(now));
    }
    this.deps.shipper.enqueue(records);
    return records.length;
  }

  /**
   * Hands the table's deltas to the sealer one by one (no object per flow),
   * noting the ephemeral ports they show servers on; returns the early blocks.
   */
  private drainTable(now: number): SealedPart[] {
    const range = this.deps.ephemeralPorts;
    return this.sealer.addDeltasFrom((visit) => {
      this.flowTable.drainInto(now, (d) => {
        if (range && d.localPort >= range.low && d.localPort <= range.high)
          this.servedEphemeral.add(d.localPort);
        visit(d);
      });
    }, now);
  }

  /**
   * The unconnected sockets that may be services, for socket health: one on
   * an ephemeral port is taken as a client's (a resolver's upstream socket,
   * say) until a configured rule names its port or a kept flow shows clients
   * of it.
   */
  private serviceListeners(listeners: ListeningSocket[]): ListeningSocket[] {
    const range = this.deps.ephemeralPorts;
    if (!range) return listeners;
    // A port no listener holds any more is forgotten.
    const live = new Set(listeners.map((l) => l.localPort));
    for (const p of this.servedEphemeral) if (!live.has(p)) this.servedEphemeral.delete(p);
    return listeners.filter(
      (l) =>
        l.localPort < range.low ||
        l.localPort > range.high ||
        this.servicePorts.has(l.localPort) ||
        this.servedEphemeral.has(l.localPort),
    );
  }

  /** A v1 heartbeat line as its own record. */
  private heartbeat(now: number): ShipRecord[] {
    const line: UnsequencedLine = {
      v: WIRE_VERSION,
      type: 'heartbeat',
      agentId: this.deps.agentId,
      host: this.config.host,
      at: now,
      ...this.counters(),
      sources: this.sources(),
      sourceStates: this.sourceStates(),
    };
    const unobserved = this.blindSpots.current();
    if (unobserved.length > 0) line.unobserved = unobserved;
    return packRecords([line], { agentId: this.deps.agentId, nextSeq: () => this.deps.seq.take() });
  }

  /**
   * Streams what the hook reported since the last drain into the flow table
   * (one refilled object, none per row), and with /proc sums each report's
   * pktsIn per source, port and pid into earlyObservations: all the next
   * blind-spot sample reads of them.
   */
  private ingestHook(): void {
    const { hook } = this.deps;
    if (hook) this.flowTable.ingestHookFrom(this.summedEarly((visit) => hook.drainInto(visit)));
  }

  /**
   * Streams the tuples eBPF drained since the last cycle into the flow table
   * (one refilled object, none per tuple or flow), attributed to the sockets
   * of this cycle's /proc scan, and sums them into earlyObservations as the
   * hook's rows are.
   */
  private ingestEbpf(): void {
    const { ebpf } = this.deps;
    if (ebpf) this.flowTable.ingestFrom(this.summedEarly((visit) => ebpf.pollInto(visit)));
  }

  /**
   * `each` (a source handing over its observations one at a time), also
   * adding each one's pktsIn to earlyObservations per source, port and pid
   * (with /proc; without it nothing reads them). Bounded: past the bound
   * only the latest batch is kept.
   */
  private summedEarly(
    each: (visit: (o: PeerObservation) => void) => void,
  ): (visit: (o: PeerObservation) => void) => void {
    if (!this.deps.proc) return each;
    if (this.earlyObservations.size > MAX_EARLY_SUMS) this.earlyObservations.clear();
    let sum: PeerObservation | undefined;
    return (visit) =>
      each((o) => {
        // Rows of one report (tuples of one socket) share source, port and pid: only a change needs the key.
        if (sum?.localPort !== o.localPort || sum.pid !== o.pid || sum.source !== o.source) {
          const key = `${o.source}|${o.localPort}|${o.pid ?? ''}`;
          sum = this.earlyObservations.get(key);
          if (!sum) {
            sum = { ...o, pktsIn: 0 };
            this.earlyObservations.set(key, sum);
          }
        }
        sum.pktsIn += o.pktsIn;
        visit(o);
      });
  }

  /**
   * Folds what the hook reported since the last cycle into the table and
   * ships early blocks for clients never reported before (as the sealer's
   * token bucket allows); known clients' deltas wait in the sealer for their
   * minute's main part. Returns the number of blocks shipped.
   */
  async flushNewFlows(): Promise<number> {
    if (!this.deps.hook) return 0;
    const now = this.deps.clock();
    this.ingestHook();
    const blocks = this.drainTable(now);
    const records = blocks.map(blockRecord);
    // Deltas left pending wait for the next cycle's checkpoint (their lines stay unacknowledged).
    if (records.length > 0) await this.writeCheckpoint(now, records);
    this.deps.shipper.enqueue(records);
    return blocks.length;
  }

  /**
   * Hooked daemons just reported: look for new clients soon instead of at
   * the next interval, so a new client is visible quickly. Busy known flows
   * still wait for their minute. Reports within a few ms share one flush.
   */
  nudge(): void {
    if (!this.running || this.earlyFlush) return;
    this.earlyFlush = new Promise<void>((resolve) => {
      setTimeout(resolve, EARLY_FLUSH_DELAY_MS).unref();
    }).then(() => {
      this.earlyFlush = null;
      if (!this.running) return;
      // After the cycle in flight, so lines keep their order.
      const flush = this.cycle
        .then(() => this.flushNewFlows())
        .then(() => undefined)
        .catch((err) => this.logOnce(`early flush failed: ${(err as Error).message}`));
      this.cycle = flush;
      return flush;
    });
  }

  /** Resolves once no early flush is pending and the cycle in flight is done. */
  async idle(): Promise<void> {
    while (this.earlyFlush) await this.earlyFlush;
    await this.cycle;
  }

  /**
   * Runs a cycle every interval until stop(), and one as soon as an eBPF
   * drain is complete: bpftrace drains on the interval's boundaries, so then
   * each drain's counts are in the checkpoint within a cycle's time of
   * arriving (the timer, an interval after the last cycle, only takes over
   * while no drains come).
   */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.deps.shipper.start();
    this.deps.ebpf?.onDrain?.(() => this.cycleNow());
    this.runCycle();
  }

  /** A cycle now, or right after the one in flight. */
  private cycleNow(): void {
    if (!this.running) return;
    if (this.ticking) this.cycleAgain = true;
    else this.runCycle();
  }

  private runCycle(): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.ticking = true;
    // After an early flush in flight, so the two never interleave.
    this.cycle = this.cycle
      .then(() => this.tick())
      .then(() => undefined)
      .catch((err) => this.logOnce(`cycle failed: ${(err as Error).stack ?? err}`))
      .finally(() => {
        this.ticking = false;
        if (!this.running) return;
        if (this.cycleAgain) {
          this.cycleAgain = false;
          this.runCycle();
        } else {
          this.timer = setTimeout(() => this.runCycle(), this.config.intervalSeconds * 1000);
        }
      });
  }

  /** Stops the loop, ships the last deltas into the queue, and spools what is unsent. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.idle();
    if (this.deps.ebpf) {
      // bpftrace prints what it still holds as it exits: stop it before the last cycle.
      this.ebpfStopped = this.deps.ebpf.status().live;
      await this.deps.ebpf.stop();
    }
    // Before the last cycle: what hooked daemons report after this goes to the next agent.
    this.deps.hook?.stopTaking();
    let sealed = false;
    try {
      // Everything counted so far leaves now, whatever minute it belongs to.
      await this.tick(this.deps.clock(), { all: true });
      sealed = true;
    } catch (err) {
      this.deps.log(`final cycle failed: ${(err as Error).message}`);
    }
    await this.deps.shipper.stop();
    // Nothing pending is left: the next start takes only the loss total from it.
    if (sealed) await this.writeCheckpoint(this.deps.clock(), [], true);
    // After the final part's acknowledgements were written: end() flushes them.
    await this.deps.hook?.close();
  }
}
