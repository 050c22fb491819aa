/**
 * In-memory stand-ins for the kernel-facing sources and for Kinesis, so a
 * unit test drives the agent's own logic with observations it chose. Each
 * implements the interface the agent takes (agent/agent.ts AgentDeps).
 */
import type { ConntrackPeers, ProcPeers, RecordShipper } from '../../../agent/agent.js';
import type { ConntrackStatus } from '../../../agent/conntrack-source.js';
import type { HookSource } from '../../../agent/hook-source.js';
import type { ListeningSocket, PeerObservation } from '../../../agent/observation.js';
import type { ShipRecord } from '../../../agent/record-packer.js';

/** A /proc source whose listeners and connected peers the test sets. */
export class FakeProc implements ProcPeers {
  listening: ListeningSocket[] = [];
  connected: PeerObservation[] = [];
  async poll(): Promise<PeerObservation[]> {
    return this.connected.map((o) => ({ ...o }));
  }
  listeners(): ListeningSocket[] {
    return this.listening;
  }
}

/** A conntrack source that returns one queued read per poll ([] once the queue is empty). */
export class FakeConntrack implements ConntrackPeers {
  private readonly reads: PeerObservation[][] = [];
  private current: ConntrackStatus = { available: false, reason: 'not polled yet' };
  /** Availability of the coming polls. */
  available = true;
  /** Queues what the next poll returns. */
  queue(...reads: PeerObservation[][]): void {
    this.reads.push(...reads);
  }
  async poll(): Promise<PeerObservation[]> {
    if (!this.available) {
      this.current = { available: false, reason: 'test: unavailable' };
      return [];
    }
    this.current = { available: true, via: 'proc', accounting: true };
    return (this.reads.shift() ?? []).map((o) => ({ ...o }));
  }
  status(): ConntrackStatus {
    return this.current;
  }
}

/** A hook receiver the test pushes daemon reports into. */
export class FakeHook implements HookSource {
  private pending: PeerObservation[] = [];
  private readonly listeners: Array<() => void> = [];
  droppedPackets = 0;
  shed = 0;
  closed = false;
  /** A daemon report: observations pending until drained, then the listeners are told. */
  report(observations: PeerObservation[]): void {
    this.pending.push(...observations.map((o) => ({ ...o })));
    for (const l of this.listeners) l();
  }
  /** Reports drained, and how many of them were acknowledged (the agent held them durably). */
  drained = 0;
  acknowledged = 0;
  takingStopped = false;
  drain(): PeerObservation[] {
    const out = this.pending;
    this.pending = [];
    this.drained += out.length > 0 ? 1 : 0;
    return out;
  }
  drainInto(visit: (o: PeerObservation) => void): void {
    // One refilled object, like the real receiver: the agent must not keep it.
    const scratch = {} as PeerObservation;
    for (const o of this.drain()) {
      for (const k of Object.keys(scratch))
        delete (scratch as unknown as Record<string, unknown>)[k];
      visit(Object.assign(scratch, o));
    }
  }
  acknowledge(): void {
    this.acknowledged = this.drained;
  }
  drainedLoss(): number {
    return this.droppedPackets + this.shed;
  }
  /** Line marks the test sets, as the receiver would report them. */
  marks: [string, number][] = [];
  lineMarks(): [string, number][] {
    return this.marks;
  }
  stopTaking(): void {
    this.takingStopped = true;
  }
  stats() {
    return {
      droppedPackets: this.droppedPackets,
      shed: this.shed,
      badMessages: 0,
      badRows: 0,
      pidMismatches: 0,
      unidentified: 0,
      refusedConnections: 0,
    };
  }
  onObservations(listener: () => void): void {
    this.listeners.push(listener);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Keeps what the agent enqueues, in order; its spool and drop counters are set by the test. */
export class RecordingShipper implements RecordShipper {
  readonly records: ShipRecord[] = [];
  droppedLines = 0;
  spooledRecords = 0;
  running = false;
  stopped = false;
  enqueue(records: readonly ShipRecord[]): void {
    this.records.push(...records);
  }
  start(): void {
    this.running = true;
  }
  async stop(): Promise<void> {
    this.running = false;
    this.stopped = true;
  }
  stats() {
    return { droppedLines: this.droppedLines, spooledRecords: this.spooledRecords };
  }
}
