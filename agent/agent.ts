/**
 * The agent's run loop: every interval it collects what the sources observed,
 * folds it into the flow table, turns the flow table's deltas (and, every
 * heartbeat interval, a heartbeat) into records, and hands them to the shipper.
 */
import type { UnsequencedLine } from '../contract/codec.js';
import { type FlowSource, WIRE_VERSION } from '../contract/wire.js';
import type { AgentConfig } from './agent-config.js';
import type { SeqAllocator } from './agent-state.js';
import type { ConntrackSource } from './conntrack-source.js';
import { FlowTable } from './flow-table.js';
import type { HookReceiver } from './hook-receiver.js';
import type { KinesisShipper } from './kinesis-shipper.js';
import type { PeerObservation } from './observation.js';
import type { ProcSource } from './proc-source.js';
import { packRecords } from './record-packer.js';
import { createServiceNamer } from './service-names.js';

export interface AgentParts {
  config: AgentConfig;
  agentId: string;
  seq: SeqAllocator;
  shipper: KinesisShipper;
  hook?: HookReceiver;
  proc?: ProcSource;
  conntrack?: ConntrackSource;
  log: (message: string) => void;
}

/** Counters of one agent, as a heartbeat reports them. */
export interface AgentCounters {
  flows: number;
  dropped: number;
  spooled: number;
}

/** One agent: sources -> flow table -> packer -> shipper. */
export class Agent {
  readonly flowTable: FlowTable;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private cycle: Promise<void> = Promise.resolve();
  private lastHeartbeat = 0;
  private lastHookDrops = 0;
  private conntrackBaselined = false;
  private readonly errorsSeen = new Set<string>();

  constructor(private readonly parts: AgentParts) {
    const { config } = parts;
    this.flowTable = new FlowTable({
      agentId: parts.agentId,
      host: config.host,
      serviceFor: createServiceNamer(config.services, config.defaultTimeoutSeconds),
      maxFlows: config.maxFlows,
      refreshIntervalMs: config.refreshIntervalSeconds * 1000,
      reportIntervalMs: config.reportIntervalSeconds * 1000,
      sampleSeed: parts.agentId,
    });
  }

  /** Sources that are on. */
  sources(): FlowSource[] {
    const out: FlowSource[] = [];
    if (this.parts.hook) out.push('hook');
    if (this.parts.conntrack?.status().available) out.push('conntrack');
    if (this.parts.proc) out.push('proc');
    return out;
  }

  /** Shedding and spool counters for heartbeats. */
  counters(): AgentCounters {
    const shipper = this.parts.shipper.stats();
    return {
      flows: this.flowTable.size,
      dropped: shipper.droppedLines + (this.parts.hook?.stats().shed ?? 0),
      spooled: shipper.spooledRecords,
    };
  }

  private logOnce(message: string): void {
    if (this.errorsSeen.has(message)) return;
    if (this.errorsSeen.size > 100) this.errorsSeen.clear();
    this.errorsSeen.add(message);
    this.parts.log(message);
  }

  private async collect(): Promise<PeerObservation[]> {
    const { proc, conntrack, hook } = this.parts;
    const out: PeerObservation[] = [];
    if (proc) {
      try {
        out.push(...(await proc.poll()));
        this.flowTable.setListeners(proc.listeners());
      } catch (err) {
        this.logOnce(`/proc scan failed: ${(err as Error).message}`);
      }
    }
    if (conntrack) {
      try {
        const seen = await conntrack.poll();
        // The first read returns each entry's counters since it was created,
        // which an earlier run of the agent may already have shipped: take it
        // as the baseline (peers known, no counts) so a restart never counts twice.
        if (!this.conntrackBaselined) {
          this.conntrackBaselined = true;
          for (const o of seen)
            Object.assign(o, { pktsIn: 0, bytesIn: 0, pktsOut: 0, bytesOut: 0 });
        }
        out.push(...seen);
      } catch (err) {
        this.logOnce(`conntrack read failed: ${(err as Error).message}`);
      }
    }
    if (hook) {
      out.push(...hook.drain());
      const drops = hook.stats().droppedPackets;
      if (drops > this.lastHookDrops) {
        this.parts.log(
          `hooked daemons could not report ${drops - this.lastHookDrops} packets (agent absent, slow, or hook table full)`,
        );
        this.lastHookDrops = drops;
      }
    }
    return out;
  }

  /** One cycle: collect, fold, flush, pack, enqueue. */
  async tick(now: number = Date.now(), options: { all?: boolean } = {}): Promise<number> {
    const observations = await this.collect();
    this.flowTable.ingest(observations);
    const lines: UnsequencedLine[] = this.flowTable.flush(now, options);
    if (now - this.lastHeartbeat >= this.parts.config.heartbeatSeconds * 1000) {
      this.lastHeartbeat = now;
      lines.push({
        v: WIRE_VERSION,
        type: 'heartbeat',
        agentId: this.parts.agentId,
        host: this.parts.config.host,
        at: now,
        ...this.counters(),
        sources: this.sources(),
      });
    }
    this.ship(lines);
    return lines.length;
  }

  /** Packs lines into records (each with the next seq) and queues them for the shipper. */
  private ship(lines: UnsequencedLine[]): void {
    this.parts.shipper.enqueue(
      packRecords(lines, { agentId: this.parts.agentId, nextSeq: () => this.parts.seq.take() }),
    );
  }

  private nudgePending = false;

  /**
   * Hooked daemons just reported: if that brought a flow the table did not
   * know, flush soon instead of at the next interval, so a new client is
   * visible quickly. Busy known flows still wait for the interval.
   */
  nudge(): void {
    const { hook } = this.parts;
    if (!this.running || this.nudgePending || !hook) return;
    this.nudgePending = true;
    setTimeout(() => {
      this.nudgePending = false;
      if (!this.running) return;
      this.cycle = this.cycle
        .then(() => {
          const before = this.flowTable.size;
          this.flowTable.ingest(hook.drain());
          if (this.flowTable.size === before) return;
          this.ship(this.flowTable.flush(Date.now()));
        })
        .catch((err) => this.logOnce(`early flush failed: ${(err as Error).message}`));
    }, 20).unref();
  }

  /** Runs a cycle every interval until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.parts.shipper.start();
    const loop = () => {
      if (!this.running) return;
      this.cycle = this.tick()
        .then(() => undefined)
        .catch((err) => this.logOnce(`cycle failed: ${(err as Error).stack ?? err}`))
        .finally(() => {
          if (this.running) this.timer = setTimeout(loop, this.parts.config.intervalSeconds * 1000);
        });
    };
    loop();
  }

  /** Stops the loop, ships the last deltas into the queue, and spools what is unsent. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.cycle;
    try {
      // Everything counted so far leaves now, whatever the report interval.
      await this.tick(Date.now(), { all: true });
    } catch (err) {
      this.parts.log(`final cycle failed: ${(err as Error).message}`);
    }
    await this.parts.shipper.stop();
    await this.parts.hook?.close();
  }
}
