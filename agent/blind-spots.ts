/**
 * Blind spots: which sources can see what on this host, and busy listening
 * sockets whose peers no live source observes.
 *
 * The signal: the kernel counts every datagram it delivers to a UDP socket
 * of the namespace (`Udp: InDatagrams` of /proc/net/snmp and snmp6). Over a
 * sliding window the agent compares that count with the datagrams its live
 * sources reported (hook and conntrack counts). A surplus means some socket
 * received traffic nobody accounted for. Which socket cannot be read from the
 * kernel's totals, so it is narrowed down per socket: candidates are
 * listeners that may be services (the agent leaves out clients' sockets on
 * ephemeral ports) no source reported in the window, not owned by a hooked daemon,
 * that conntrack cannot see (off, unavailable, a NOTRACK rule on the port, or
 * no rule using conntrack so the kernel tracks nothing), while eBPF is not
 * live (it sees every socket). A candidate whose own kernel counters move
 * (drops, a non-empty receive queue) is busy whatever the totals say; with
 * such evidence only those candidates are named, otherwise every candidate.
 */
import type {
  FlowSource,
  SourceState,
  SourceStateName,
  UnobservedService,
} from '../contract/wire.js';
import { MAX_REASON_CHARS, MAX_UNOBSERVED } from '../contract/wire.js';
import type { ConntrackStatus } from './conntrack-source.js';
import type { ConntrackRules } from './nft-ruleset.js';
import type { ListeningSocket, PeerObservation } from './observation.js';
import type { UdpSnmp } from './proc-net-snmp.js';

/** What the agent knows of each source's health. */
export interface CoverageFacts {
  hook: boolean;
  proc: boolean;
  /** Undefined when the source was not built (with why). */
  ebpf:
    | { live: boolean; state: string; reason?: string; lostEvents?: number; badEntries?: number }
    | { off: string };
  conntrack: ConntrackStatus | { off: string };
  /** The namespace's ruleset as conntrack sees it; null when unknown (with why). */
  rules: ConntrackRules | null;
  rulesReason?: string;
}

const isOff = (x: object): x is { off: string } => 'off' in x;

/** Ports a NOTRACK rule exempts, as text for a reason (the first few). */
function notrackText(notrack: Set<number> | 'all'): string {
  if (notrack === 'all') return 'all udp ports';
  const ports = [...notrack].sort((a, b) => a - b);
  const shown = ports.slice(0, 8).join(', ');
  return `udp port${ports.length > 1 ? 's' : ''} ${shown}${ports.length > 8 ? ` and ${ports.length - 8} more` : ''}`;
}

const NO_CT_RULES =
  'no firewall rule uses conntrack in this network namespace, so the kernel tracks no flow (add a rule matching ct state, see docs/sources.md#when-a-source-is-blind)';

const EBPF_FOREIGN =
  'bpftrace printed entries this agent cannot read (its program and the agent are of different versions), and their packets are not counted: reinstall udpwatch';
const EBPF_LOST =
  'bpftrace lost output events since the agent started, so some drains were incomplete: give the agent more CPU, or raise BPFTRACE_PERF_RB_PAGES (default 64) in its environment';

/**
 * What a live eBPF source has missed since it started, worst first; no count
 * in it, so the reason (and the one log line a change of it makes) stays
 * the same while the count grows. The counts are in the source's status.
 */
function ebpfCaveat(e: { lostEvents?: number; badEntries?: number }): string | undefined {
  if ((e.badEntries ?? 0) > 0) return EBPF_FOREIGN;
  if ((e.lostEvents ?? 0) > 0) return EBPF_LOST;
  return undefined;
}

/** Each source's state and, unless live without caveat, the reason and fix. */
export function sourceStates(f: CoverageFacts): SourceState[] {
  const out: SourceState[] = [];
  const add = (source: FlowSource, state: SourceStateName, reason?: string) =>
    out.push(
      reason ? { source, state, reason: reason.slice(0, MAX_REASON_CHARS) } : { source, state },
    );
  if (f.hook) add('hook', 'live');
  else add('hook', 'off', 'turned off in the config (sources.hook)');
  if (isOff(f.ebpf)) add('ebpf', 'off', f.ebpf.off);
  else if (f.ebpf.live) add('ebpf', 'live', ebpfCaveat(f.ebpf));
  else if (f.ebpf.state === 'starting')
    add('ebpf', 'blind', 'starting: bpftrace compiles its program for a few seconds');
  else add('ebpf', 'blind', f.ebpf.reason ?? f.ebpf.state);
  const ct = f.conntrack;
  if (isOff(ct)) add('conntrack', 'off', ct.off);
  else if (!ct.available) add('conntrack', 'blind', `unavailable: ${ct.reason ?? 'unknown'}`);
  else if (f.rules && !f.rules.usesConntrack) add('conntrack', 'blind', NO_CT_RULES);
  else if (f.rules && (f.rules.notrack === 'all' || f.rules.notrack.size > 0)) {
    add(
      'conntrack',
      f.rules.notrack === 'all' ? 'blind' : 'partial',
      `a NOTRACK rule exempts ${notrackText(f.rules.notrack)}: their clients are not seen`,
    );
  } else if (ct.accounting === false) {
    add('conntrack', 'live', 'no packet counters: set net.netfilter.nf_conntrack_acct=1');
  } else add('conntrack', 'live');
  if (f.proc) add('proc', 'live');
  else add('proc', 'off', 'turned off in the config (sources.proc)');
  return out;
}

/** Why conntrack cannot see flows to `port`, or null when it can (or may). */
export function conntrackBlindFor(f: CoverageFacts, port: number): string | null {
  const ct = f.conntrack;
  if (isOff(ct)) return `conntrack is off (${ct.off})`;
  if (!ct.available) return `conntrack is unavailable (${ct.reason ?? 'unknown'})`;
  if (!f.rules) return null;
  if (!f.rules.usesConntrack)
    return 'no firewall rule uses conntrack, so the kernel tracks nothing';
  if (f.rules.notrack === 'all' || f.rules.notrack.has(port))
    return `a NOTRACK rule exempts udp port ${port} from conntrack`;
  return null;
}

function ebpfWhy(f: CoverageFacts): string {
  if (isOff(f.ebpf)) return `eBPF is off (${f.ebpf.off})`;
  return `eBPF is not live (${f.ebpf.reason ?? f.ebpf.state})`;
}

/** One cycle's input to the watch. */
export interface BlindSpotSample {
  now: number;
  /** The namespace's UDP counters of this cycle's /proc scan. */
  snmp: UdpSnmp | undefined;
  /** This cycle's observations of live sources (their pktsIn are accounted). */
  observations: readonly PeerObservation[];
  /** More of them, kept apart (the agent's early-flushed sums), so the two need no copy into one. */
  moreObservations?: readonly PeerObservation[];
  /**
   * False when a live source reported peers without counts this cycle
   * (conntrack without accounting): the totals are not compared for a window.
   */
  countsComplete: boolean;
  listeners: readonly ListeningSocket[];
  facts: CoverageFacts;
  serviceOf: (l: ListeningSocket) => string;
}

/** Tuning of the watch (defaults suit a 1 s cycle). */
export interface BlindSpotOptions {
  log: (message: string) => void;
  /** Span the surplus is summed over. */
  windowMs?: number;
  /** Smallest surplus (datagrams in the window) that makes the host busy. */
  minDatagrams?: number;
  /** Smallest surplus as a share of all datagrams (covers reporting lag of busy hooked daemons). */
  minShare?: number;
  /** A flagged service stays flagged this long after the last evidence. */
  holdMs?: number;
  /**
   * A socket must stay a candidate this long before it is named: a daemon's
   * first hook report, or conntrack's first entry, lags its first packets.
   */
  settleMs?: number;
}

interface Flagged {
  entry: UnobservedService;
  lastAt: number;
}

/** Watches for busy sockets no live source observes; logs each episode once. */
export class BlindSpotWatch {
  private readonly windowMs: number;
  private readonly minDatagrams: number;
  private readonly minShare: number;
  private readonly holdMs: number;
  private readonly settleMs: number;
  /** When each candidate port became one (it stops being one once a source covers it). */
  private candidateSince = new Map<number, number>();
  private lastTotal: number | undefined;
  private incompleteAt = Number.NEGATIVE_INFINITY;
  private samples: { at: number; delivered: number; accounted: number }[] = [];
  private readonly observedPorts = new Map<number, number>();
  /** Pids of daemons the hook reported for, with when they first did. */
  private readonly observedPids = new Map<number, number>();
  private readonly evidenceAt = new Map<number, number>();
  private dropsByInode = new Map<number, number>();
  private readonly flagged = new Map<number, Flagged>();

  constructor(private readonly opts: BlindSpotOptions) {
    this.windowMs = opts.windowMs ?? 10_000;
    this.minDatagrams = opts.minDatagrams ?? 100;
    this.minShare = opts.minShare ?? 0.2;
    this.holdMs = opts.holdMs ?? 30_000;
    this.settleMs = opts.settleMs ?? 3_000;
  }

  /** Folds in one cycle and updates the flagged set. */
  sample(s: BlindSpotSample): void {
    const { now } = s;
    if (!s.countsComplete) this.incompleteAt = now;
    for (const list of [s.observations, s.moreObservations ?? []]) {
      let port = -1;
      for (const o of list) {
        // A report's rows share their port: set it once per run.
        if (o.localPort !== port) {
          port = o.localPort;
          this.observedPorts.set(port, now);
        }
        if (o.source === 'hook' && o.pid !== undefined && !this.observedPids.has(o.pid))
          this.observedPids.set(o.pid, now);
      }
    }
    this.noteEvidence(s.listeners, now);
    const total = udpDelivered(s.snmp);
    if (total !== undefined) {
      // A smaller total means another namespace or a reset: start over.
      const delivered =
        this.lastTotal === undefined || total < this.lastTotal ? 0 : total - this.lastTotal;
      if (this.lastTotal !== undefined)
        this.samples.push({
          at: now,
          delivered,
          accounted: accountedIn(s.observations) + accountedIn(s.moreObservations ?? []),
        });
      this.lastTotal = total;
    }
    const cutoff = now - this.windowMs;
    this.samples = this.samples.filter((x) => x.at > cutoff);
    for (const m of [this.observedPorts, this.evidenceAt])
      for (const [k, at] of m) if (at <= cutoff) m.delete(k);
    // The hook stays loaded for a daemon's life: a hooked pid stays covered, quiet or not,
    // until no listener of it is left.
    const livePids = new Set(s.listeners.map((l) => l.pid));
    for (const pid of this.observedPids.keys())
      if (!livePids.has(pid)) this.observedPids.delete(pid);
    if (!('off' in s.facts.ebpf) && s.facts.ebpf.live) {
      // eBPF counts every socket's packets: nothing is unobserved.
      this.expire(now, true);
      return;
    }
    this.flag(s, now);
    this.expire(now, false);
  }

  /** The services flagged now, busiest evidence first, bounded. */
  current(): UnobservedService[] {
    return [...this.flagged.values()]
      .sort((a, b) => b.lastAt - a.lastAt || a.entry.port - b.entry.port)
      .slice(0, MAX_UNOBSERVED)
      .map((f) => ({ ...f.entry }));
  }

  private noteEvidence(listeners: readonly ListeningSocket[], now: number): void {
    const next = new Map<number, number>();
    for (const l of listeners) {
      next.set(l.inode, l.drops);
      const before = this.dropsByInode.get(l.inode);
      if (l.rxQueueBytes > 0 || (before !== undefined && l.drops > before))
        this.evidenceAt.set(l.localPort, now);
    }
    this.dropsByInode = next;
  }

  private flag(s: BlindSpotSample, now: number): void {
    const delivered = this.samples.reduce((a, x) => a + x.delivered, 0);
    const accounted = this.samples.reduce((a, x) => a + x.accounted, 0);
    const surplus = delivered - accounted;
    const hostBusy =
      now - this.incompleteAt > this.windowMs &&
      this.samples.length >= 2 &&
      surplus >= this.minDatagrams &&
      surplus >= this.minShare * delivered;
    const candidates = new Map<number, { l: ListeningSocket; ct: string }>();
    for (const l of s.listeners) {
      if (this.observedPorts.has(l.localPort) || candidates.has(l.localPort)) continue;
      if (l.pid !== undefined && this.observedPids.has(l.pid)) continue;
      const ct = conntrackBlindFor(s.facts, l.localPort);
      if (ct === null) continue;
      candidates.set(l.localPort, { l, ct });
    }
    const since = new Map<number, number>();
    for (const port of candidates.keys()) since.set(port, this.candidateSince.get(port) ?? now);
    this.candidateSince = since;
    for (const [port, at] of since) if (now - at < this.settleMs) candidates.delete(port);
    const withEvidence = [...candidates.values()].filter((c) => this.evidenceAt.has(c.l.localPort));
    const named = withEvidence.length > 0 ? withEvidence : hostBusy ? [...candidates.values()] : [];
    const spanS = Math.max(1, Math.round((now - (this.samples[0]?.at ?? now)) / 1000));
    for (const { l, ct } of named) {
      const port = l.localPort;
      const evidence = this.evidenceAt.has(port)
        ? `its socket queues or drops datagrams (/proc/net/udp)`
        : `${surplus} datagrams in ${spanS} s reached UDP sockets no live source accounted for${named.length > 1 ? ` (one of ${named.length} candidate ports)` : ''}`;
      const fix = ct.startsWith('a NOTRACK')
        ? `enable eBPF (docs/ebpf.md) or drop the NOTRACK rule for udp port ${port}`
        : ct.startsWith('no firewall rule')
          ? 'enable eBPF (docs/ebpf.md) or add a rule matching ct state (docs/sources.md#when-a-source-is-blind)'
          : 'enable eBPF (docs/ebpf.md) or make conntrack available (docs/sources.md#when-a-source-is-blind)';
      const reason =
        `${evidence}; ${ct}; ${ebpfWhy(s.facts)}; no hooked daemon reports it; fix: ${fix}`.slice(
          0,
          MAX_REASON_CHARS,
        );
      const entry: UnobservedService = { service: s.serviceOf(l), port, reason };
      const before = this.flagged.get(port);
      if (!before) {
        this.opts.log(
          `peers unobserved: service ${entry.service} (udp port ${port}${l.process ? `, ${l.process}` : ''}) is busy but no live source sees its clients: ${reason}`,
        );
      }
      this.flagged.set(port, { entry, lastAt: now });
    }
  }

  private expire(now: number, all: boolean): void {
    for (const [port, f] of this.flagged) {
      if (!all && now - f.lastAt <= this.holdMs) continue;
      this.flagged.delete(port);
      this.opts.log(
        `peers of service ${f.entry.service} (udp port ${port}) ${all ? 'are observed again (eBPF is live)' : 'no longer unobserved (quiet, or a source sees them now)'}`,
      );
    }
  }
}

/** Datagrams delivered to UDP sockets of the namespace since boot, IPv4 plus IPv6. */
function udpDelivered(snmp: UdpSnmp | undefined): number | undefined {
  const v4 = snmp?.udp?.inDatagrams;
  if (v4 === undefined) return undefined;
  return v4 + (snmp?.udp6?.inDatagrams ?? 0);
}

/** Datagrams the sources counted in (sampled counts are already scaled up). */
function accountedIn(observations: readonly PeerObservation[]): number {
  let n = 0;
  for (const o of observations) n += o.pktsIn;
  return n;
}
