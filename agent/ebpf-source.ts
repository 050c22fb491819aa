/**
 * The eBPF source: clients of any daemon, whatever conntrack does (NOTRACK,
 * no conntrack rules, a socket connect()ed per client), counted per packet in
 * the kernel by bpftrace on the net:netif_receive_skb (in, and loopback once)
 * and net:net_dev_queue (out) tracepoints of this agent's network namespace.
 *
 * bpftrace runs agent/ebpf/udp-flows.bt with `-f json` and drains its counters
 * every interval (double-buffered, see the program); poll() hands what was
 * drained since the previous poll to the flow table, attributed to the local
 * sockets /proc listed. When something it needs is missing the source says
 * once what and how to fix it, and stays off; the agent runs on the others.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BpftraceOutputParser, KernelClock } from './bpftrace-output.js';
import { DrainedTuples } from './drained-tuples.js';
import {
  type AttributionOptions,
  type ClassifyStats,
  tuplesToObservations,
  visitTupleObservations,
} from './ebpf-flows.js';
import { ebpfProblem, KERNEL_BTF, readEbpfFacts } from './ebpf-requirements.js';
import type { ListeningSocket, PeerObservation } from './observation.js';
import { type ConnectedSocket, interfaceAddresses, SocketIndex } from './socket-index.js';

/**
 * The longest drain interval: one tuple would need 3.3 million datagrams a
 * second for 5 s to fill its 24-bit packet count, beyond what one flow gets
 * through one CPU's receive path.
 */
export const MAX_DRAIN_SECONDS = 5;
const MAX_DRAIN_MS = MAX_DRAIN_SECONDS * 1000;

/**
 * How often bpftrace's drain tick looks, as a share of the drain interval: a
 * drain is printed at most interval / DRAIN_TICKS after the interval ends, so
 * a crash loses little more than the interval being counted (see the agent).
 */
const DRAIN_TICKS = 20;

/** How long a stopping bpftrace may take to print its last counts before it is killed. */
const STOP_GRACE_MS = 3_000;

/** Where the source stands. */
export interface EbpfStatus {
  /** Attached and counting: its counters own every flow not hooked. */
  live: boolean;
  state: 'off' | 'starting' | 'live' | 'unavailable' | 'stopped';
  /** Why it is unavailable or stopped, with the fix. */
  reason?: string;
  /** ms from start() to attached. */
  startupMs?: number;
  /** Packets the kernel could not count because a buffer held maxFlows flows (cumulative). */
  refusedPackets: number;
  /** Packets to or from ports no socket owns: not clients (cumulative). */
  unownedPackets: number;
  /** bpftrace output events the kernel dropped (a drain may be incomplete), cumulative. */
  lostEvents: number;
  /** Printed entries that were no tuple of the agent's program (a version mismatch), cumulative. */
  badEntries: number;
  sampleRate: number;
}

/** The local sockets flows are attributed to (the /proc source's latest scan). */
export interface LocalSockets {
  listeners: ListeningSocket[];
  connected: ConnectedSocket[];
}

/** Options for createEbpfSource. */
export interface EbpfSourceOptions {
  sockets: () => LocalSockets;
  /** Namespace to watch, by inode; default this process's (readlink /proc/self/ns/net). */
  netnsInode?: number;
  /** That namespace's addresses, for wildcard sockets; default os.networkInterfaces(). */
  localAddresses?: () => Iterable<string>;
  /** How often bpftrace drains its counters (default 1000 ms, at most 5,000). */
  drainIntervalMs?: number;
  /** Flows one drain buffer holds; more are refused and counted (default 65,536). */
  maxFlows?: number;
  /** Count 1 in N packets, counters scaled by N (default 1: every packet). */
  sampleRate?: number;
  bpftrace?: string;
  program?: string;
  /** Mount tracefs when it is missing (default true). */
  mountTracefs?: boolean;
  /** How long bpftrace may take to compile and attach (default 60 s). */
  startTimeoutMs?: number;
  now?: () => number;
  log?: (message: string) => void;
}

/** An eBPF source. */
export interface EbpfSource {
  /** Checks the requirements, starts bpftrace and resolves once attached or failed. */
  start(): Promise<EbpfStatus>;
  /** What was drained since the previous poll, as one observation per flow of a local socket. */
  poll(): PeerObservation[];
  /**
   * What was drained since the previous poll, handed to `visit` tuple by
   * tuple as one refilled observation (none kept): the agent's way, which
   * leaves the adding up per flow to its flow table.
   */
  pollInto(visit: (o: PeerObservation) => void): void;
  /** Calls `listener` once each drain is complete (its tuples wait for the next poll). */
  onDrain(listener: () => void): void;
  status(): EbpfStatus;
  /** Stops bpftrace; what it counted until then is returned by the next poll(). */
  stop(): Promise<void>;
}

/** The program file: next to this module in the sources, under agent/ebpf in the package. */
export function defaultProgramPath(): string {
  const candidates = [
    fileURLToPath(new URL('./ebpf/udp-flows.bt', import.meta.url)),
    fileURLToPath(new URL('../agent/ebpf/udp-flows.bt', import.meta.url)),
  ];
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

/** This process's network namespace inode. */
export function ownNetnsInode(): number {
  const link = readlinkSync('/proc/self/ns/net');
  const m = /\[(\d+)\]/.exec(link);
  if (!m) throw new Error(`unexpected /proc/self/ns/net link ${JSON.stringify(link)}`);
  return Number(m[1]);
}

/** bpftrace's stderr lines that are known noise (the memlock limit cannot always be raised). */
function isNoise(line: string): boolean {
  return line.includes('RLIMIT_MEMLOCK') || line.includes('signed operands') || line.trim() === '';
}

/** Creates the source; nothing runs until start(). */
export function createEbpfSource(opts: EbpfSourceOptions): EbpfSource {
  const now = opts.now ?? Date.now;
  const log = opts.log ?? (() => {});
  // At most MAX_DRAIN_MS: a tuple's packed sum holds 2^24 packets a drain (see the program).
  const drainMs = Math.min(MAX_DRAIN_MS, Math.max(100, Math.round(opts.drainIntervalMs ?? 1000)));
  const maxFlows = Math.max(1, Math.floor(opts.maxFlows ?? 65_536));
  const sampleRate = Math.max(1, Math.floor(opts.sampleRate ?? 1));
  const command = opts.bpftrace ?? 'bpftrace';
  // Complete drains wait here for the next poll.
  const drained = new DrainedTuples();
  const parser = new BpftraceOutputParser(drained);
  const clock = new KernelClock();
  const stats: ClassifyStats = { unownedPackets: 0, badKeys: 0 };
  let status: EbpfStatus = {
    live: false,
    state: 'off',
    refusedPackets: 0,
    unownedPackets: 0,
    lostEvents: 0,
    badEntries: 0,
    sampleRate,
  };
  const drainListeners: Array<() => void> = [];
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let stopping = false;

  const set = (next: Partial<EbpfStatus>) => {
    status = { ...status, ...next };
  };

  const unavailable = (reason: string) => {
    set({ live: false, state: 'unavailable', reason });
    log(`eBPF source off: ${reason}; running on the other sources`);
  };

  const start = async (): Promise<EbpfStatus> => {
    if (status.state !== 'off') return status;
    const startedAt = now();
    set({ state: 'starting' });
    const facts = await readEbpfFacts({
      bpftrace: command,
      mountTracefs: opts.mountTracefs ?? true,
    });
    const problem = ebpfProblem(facts);
    if (problem) {
      unavailable(problem);
      return status;
    }
    let netns: number;
    try {
      netns = opts.netnsInode ?? ownNetnsInode();
    } catch (err) {
      unavailable(`cannot tell this network namespace: ${(err as Error).message}`);
      return status;
    }
    const program = opts.program ?? defaultProgramPath();
    if (!existsSync(program)) {
      unavailable(
        `the eBPF program ${program} is missing from the installation: reinstall udpwatch`,
      );
      return status;
    }
    // Map capacity above the program's own bound, so the bound (counted) is
    // hit before the kernel's (silent); racing first packets may overshoot a little.
    const capacity = maxFlows + Math.ceil(maxFlows / 8) + 64;
    // Stopped while the requirements were being read: never start bpftrace.
    if (stopping) {
      set({ live: false, state: 'stopped' });
      return status;
    }
    const proc = spawn(
      command,
      [
        '-f',
        'json',
        program,
        String(netns),
        String(sampleRate),
        String(maxFlows),
        String(drainMs),
        String(Math.max(1, Math.round(drainMs / DRAIN_TICKS))),
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          BPFTRACE_MAP_KEYS_MAX: String(capacity),
          // The BTF file by path: bpftrace then needs no CAP_SYS_ADMIN to find it.
          BPFTRACE_BTF: process.env.BPFTRACE_BTF ?? KERNEL_BTF,
        },
      },
    );
    child = proc;
    const errors: string[] = [];
    let resolveReady: (ok: boolean) => void = () => {};
    const ready = new Promise<boolean>((resolve) => {
      resolveReady = resolve;
    });
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const ev = parser.line(line);
      if (!ev) return;
      if (ev.kind === 'ready') {
        clock.observe(ev.monoNs, now());
        set({ live: true, state: 'live', startupMs: now() - startedAt, reason: undefined });
        resolveReady(true);
      } else if (ev.kind === 'drain') {
        if (ev.monoNs !== null) clock.observe(ev.monoNs, now());
        // Counted, not logged: the agent's source state says it once, with the fix.
        set({ refusedPackets: ev.refused, badEntries: parser.badEntries });
        for (const l of drainListeners) {
          try {
            l();
          } catch (err) {
            log(`eBPF source: a drain listener failed: ${(err as Error).message}`);
          }
        }
      } else if (ev.kind === 'lost') {
        set({ lostEvents: status.lostEvents + ev.events });
      }
    });
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      if (isNoise(line)) return;
      if (errors.length < 5) errors.push(line.trim());
    });
    exited = new Promise<void>((resolve) => {
      proc.once('error', (err) => {
        errors.push(err.message);
      });
      proc.once('close', (code, signal) => {
        // What bpftrace printed at exit joins the drained tuples.
        parser.finish();
        child = null;
        resolveReady(false);
        if (stopping) {
          set({ live: false, state: 'stopped' });
        } else {
          const why = errors.find((e) => e.startsWith('ERROR')) ?? errors[0];
          unavailable(
            `bpftrace ${status.state === 'live' ? 'exited' : 'failed to start'} (${signal ?? `exit ${code}`})${why ? `: ${why}` : ''}`,
          );
        }
        resolve();
      });
    });
    const timeoutMs = opts.startTimeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      if (status.state === 'starting') {
        errors.unshift(`ERROR: not attached within ${timeoutMs} ms`);
        proc.kill('SIGKILL');
      }
    }, timeoutMs);
    await ready;
    clearTimeout(timer);
    if (status.live)
      log(`eBPF source: attached in ${status.startupMs} ms (network namespace ${netns})`);
    return status;
  };

  /** Hands what was drained since the previous take to `attribute`, with this scan's sockets, then forgets it. */
  const take = (attribute: (index: SocketIndex, options: AttributionOptions) => void): void => {
    if (drained.size === 0) return;
    const sockets = opts.sockets();
    const local = new Set(opts.localAddresses ? opts.localAddresses() : interfaceAddresses());
    const index = new SocketIndex(sockets.listeners, local, sockets.connected);
    const t = now();
    try {
      attribute(index, {
        sampleRate,
        toEpochMs: (ns) => Math.min(clock.toEpochMs(ns, t), t),
        stats,
      });
    } finally {
      // Taken once whatever happens: a failed take never counts its tuples twice.
      drained.clear();
      set({ unownedPackets: stats.unownedPackets });
    }
  };

  const poll = (): PeerObservation[] => {
    let out: PeerObservation[] = [];
    take((index, options) => {
      out = tuplesToObservations(drained, index, options);
    });
    return out;
  };

  const pollInto = (visit: (o: PeerObservation) => void): void => {
    take((index, options) => visitTupleObservations(drained, index, options, visit));
  };

  const stop = async (): Promise<void> => {
    stopping = true;
    const running = child;
    if (running) {
      if (status.state === 'starting') {
        // Still compiling or attaching: it has counted nothing, and it does
        // not act on SIGINT until attached, so a stop must not wait for it.
        running.kill('SIGKILL');
      } else {
        // SIGINT: bpftrace prints the maps it still holds before exiting.
        running.kill('SIGINT');
        const grace = setTimeout(() => running.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(grace);
      }
    }
    await exited;
    if (status.state !== 'unavailable') set({ live: false, state: 'stopped' });
  };

  return {
    start,
    poll,
    pollInto,
    onDrain: (listener) => {
      drainListeners.push(listener);
    },
    status: () => status,
    stop,
  };
}
