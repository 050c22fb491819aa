/**
 * Folds the decoded lines of one Kinesis batch into one pending update per
 * table item, keeping each agent's payloads (seq) apart so a write that meets
 * an item already holding some of them can drop exactly those and retry.
 */
import {
  clientIpKey,
  clientIpPartition,
  clientShard,
  endpointKey,
  hostActivityPartition,
  hostClientKey,
  type ItemKey,
  serviceActivityPartition,
} from '../../contract/table-keys.js';
import type { FlowLine, HeartbeatLine, Line } from '../../contract/wire.js';

/** A decoded record of the batch: its position in the batch and its good lines. */
export interface BatchRecord {
  index: number;
  lines: readonly Line[];
}

/** What one payload (agentId, seq) adds to one item. */
export interface Contribution {
  firstSeen: number;
  lastSeen: number;
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
  hosts: Set<string>;
  sources: Set<string>;
  /** Batch positions of the records this contribution came from. */
  records: Set<number>;
}

/** All pending changes to one client item (endpoint, client IP or host's client). */
export interface ClientFold {
  key: ItemKey;
  /** Attributes that name the item; rewritten unchanged on every update. */
  identity: Record<string, string | number>;
  /** agentId -> seq -> contribution. */
  byAgent: Map<string, Map<number, Contribution>>;
}

/** Pending change to a service's entry: the newest and oldest packet seen. */
export interface ServiceFold {
  service: string;
  firstSeen: number;
  lastSeen: number;
  records: Set<number>;
}

/** Pending change to an agent's entry: its newest heartbeat in the batch. */
export interface AgentFold {
  heartbeat: HeartbeatLine;
  records: Set<number>;
}

/** Everything one batch will write, one entry per item. */
export interface BatchFold {
  clients: Map<string, ClientFold>;
  services: Map<string, ServiceFold>;
  agents: Map<string, AgentFold>;
  flowLines: number;
  /** Records skipped because the same payload (agentId, seq) came earlier in the batch. */
  duplicateRecords: number;
}

function keyString(key: ItemKey): string {
  return `${key.pk}\u0000${key.sk}`;
}

function addContribution(
  folds: Map<string, ClientFold>,
  key: ItemKey,
  identity: Record<string, string | number>,
  line: FlowLine,
  record: number,
): void {
  const id = keyString(key);
  let fold = folds.get(id);
  if (!fold) {
    fold = { key, identity, byAgent: new Map() };
    folds.set(id, fold);
  }
  let bySeq = fold.byAgent.get(line.agentId);
  if (!bySeq) {
    bySeq = new Map();
    fold.byAgent.set(line.agentId, bySeq);
  }
  const c = bySeq.get(line.seq);
  if (!c) {
    bySeq.set(line.seq, {
      firstSeen: line.firstSeen,
      lastSeen: line.lastSeen,
      pktsIn: line.pktsIn,
      bytesIn: line.bytesIn,
      pktsOut: line.pktsOut,
      bytesOut: line.bytesOut,
      hosts: new Set([line.host]),
      sources: new Set([line.source]),
      records: new Set([record]),
    });
    return;
  }
  c.firstSeen = Math.min(c.firstSeen, line.firstSeen);
  c.lastSeen = Math.max(c.lastSeen, line.lastSeen);
  c.pktsIn += line.pktsIn;
  c.bytesIn += line.bytesIn;
  c.pktsOut += line.pktsOut;
  c.bytesOut += line.bytesOut;
  c.hosts.add(line.host);
  c.sources.add(line.source);
  c.records.add(record);
}

/** Adds one flow line to the endpoint, client-IP and host's-client items it touches. */
function foldFlow(fold: BatchFold, line: FlowLine, record: number): void {
  const { service, remoteIp: ip, remotePort: port, host } = line;
  const shard = clientShard(service, ip);
  addContribution(
    fold.clients,
    endpointKey(service, ip, port),
    {
      kind: 'endpoint',
      service,
      ip,
      port,
      gsi1pk: serviceActivityPartition('endpoint', service, shard),
    },
    line,
    record,
  );
  addContribution(
    fold.clients,
    clientIpKey(service, ip),
    {
      kind: 'ip',
      service,
      ip,
      gsi1pk: serviceActivityPartition('ip', service, shard),
      gsi2pk: clientIpPartition(ip),
    },
    line,
    record,
  );
  addContribution(
    fold.clients,
    hostClientKey(host, service, ip),
    { kind: 'host', host, service, ip, gsi1pk: hostActivityPartition(host, shard) },
    line,
    record,
  );
  const s = fold.services.get(service);
  if (!s) {
    fold.services.set(service, {
      service,
      firstSeen: line.firstSeen,
      lastSeen: line.lastSeen,
      records: new Set([record]),
    });
  } else {
    s.firstSeen = Math.min(s.firstSeen, line.firstSeen);
    s.lastSeen = Math.max(s.lastSeen, line.lastSeen);
    s.records.add(record);
  }
}

/** Keeps the newest heartbeat of each agent. */
function foldHeartbeat(fold: BatchFold, line: HeartbeatLine, record: number): void {
  const a = fold.agents.get(line.agentId);
  if (!a) {
    fold.agents.set(line.agentId, { heartbeat: line, records: new Set([record]) });
    return;
  }
  if (line.at > a.heartbeat.at) a.heartbeat = line;
  a.records.add(record);
}

/**
 * Folds a batch's records into one pending update per item. A payload the
 * agent sent twice (same agentId and seq) counts once, also within a batch.
 */
export function foldBatch(records: readonly BatchRecord[]): BatchFold {
  const fold: BatchFold = {
    clients: new Map(),
    services: new Map(),
    agents: new Map(),
    flowLines: 0,
    duplicateRecords: 0,
  };
  const payloads = new Set<string>();
  for (const r of records) {
    const first = r.lines[0];
    if (!first) continue;
    const payload = `${first.agentId}\u0000${first.seq}`;
    if (payloads.has(payload)) {
      fold.duplicateRecords++;
      continue;
    }
    payloads.add(payload);
    for (const line of r.lines) {
      if (line.type === 'flow') {
        fold.flowLines++;
        foldFlow(fold, line, r.index);
      } else {
        foldHeartbeat(fold, line, r.index);
      }
    }
  }
  return fold;
}
