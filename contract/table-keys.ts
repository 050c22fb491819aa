/**
 * The key layout of the single table: which item lives under which key, and
 * the shape of each item. Functions write and read through these builders;
 * the CLI and tests use them to know what an answer is made of.
 *
 * | item            | pk                        | sk                     | gsi1pk (byActivity)          | gsi2pk (byClientIp) |
 * |-----------------|---------------------------|------------------------|------------------------------|---------------------|
 * | endpoint        | `SVC#<service>#<shard>`   | `EP#<ip>#<port>`       | `ACT#EP#<service>#<shard>`   | -                   |
 * | client IP       | `SVC#<service>#<shard>`   | `IP#<ip>`              | `ACT#IP#<service>#<shard>`   | `CLIENT#<ip>`       |
 * | host's client   | `HOST#<host>#<shard>`     | `CL#<service>#<ip>`    | `ACT#HOST#<host>#<shard>`    | -                   |
 * | service         | `SERVICES`                | `SVC#<service>`        | -                            | -                   |
 * | agent           | `AGENTS`                  | `AGENT#<agentId>`      | -                            | -                   |
 *
 * Every index sorts by `activeBucket`, the lastSeen rounded down to
 * ACTIVITY_BUCKET_MS, and projects keys only: "active since T" is the key
 * condition `activeBucket >= activityBucket(T)`, which reads only the active
 * part of a partition plus, in the oldest bucket, clients that went quiet less
 * than a bucket before T; readers fetch the items and filter on the exact
 * lastSeen. Client items are spread over
 * WRITE_SHARDS shards by a hash of (service, client IP), so a service with a
 * million clients writes to WRITE_SHARDS partitions, and reads fan out over
 * them. Components never contain `#` except the service and host names, and
 * those are always followed by a fixed-shape suffix, so keys cannot collide.
 */
import { fnv1a } from './partitioning.js';

/** Shards each service's (and each host's) client items are spread over. */
export const WRITE_SHARDS = 8;

/**
 * Width of an activity bucket: 5 minutes, the default active window. An item's
 * index entries are rewritten (delete + put) only when its lastSeen enters a
 * new bucket, so a steadily active client costs its index writes once per
 * bucket instead of once per aggregator batch (60 s). Wider buckets save fewer
 * writes each (the 3 item writes per minute stay) while every "active since T"
 * read fetches more clients that went quiet up to one bucket before T: at the
 * default window a read touches at most two buckets, i.e. the active clients
 * plus those idle for less than 10 minutes.
 */
export const ACTIVITY_BUCKET_MS = 5 * 60 * 1000;

/** The activity bucket (its start, epoch ms) holding time `ms`. */
export function activityBucket(ms: number): number {
  return Math.floor(ms / ACTIVITY_BUCKET_MS) * ACTIVITY_BUCKET_MS;
}

/** Digits of an epoch-ms bucket in an activity key: enough until the year 2286. */
const BUCKET_DIGITS = 13;

/**
 * The indexes' sort key of an item: `<bucket, 13 digits>#<length of pk>#<pk>#<sk>`.
 * The length makes the split unambiguous, so two items never share a key.
 */
export function activityKey(bucket: number, pk: string, sk: string): string {
  return `${String(bucket).padStart(BUCKET_DIGITS, '0')}#${pk.length}#${pk}#${sk}`;
}

/** The lowest activity key of `bucket` and later buckets (for `>=` conditions). */
export function activityKeyFloor(bucket: number): string {
  return String(bucket).padStart(BUCKET_DIGITS, '0');
}

/** The prefix every activity key of `bucket` starts with (for `begins_with`). */
export function activityKeyPrefix(bucket: number): string {
  return `${activityKeyFloor(bucket)}#`;
}

/** The bucket an activity key belongs to. */
export function bucketOfActivityKey(key: string): number {
  return Number(key.slice(0, BUCKET_DIGITS));
}

/** Top-level attribute prefix of the per-agent sequence watermarks (`applied#<agentId>`). */
export const APPLIED_PREFIX = 'applied#';

/** Partition key of the services list. */
export const SERVICES_PK = 'SERVICES';
/** Partition key of the agents list. */
export const AGENTS_PK = 'AGENTS';

/** A primary key of the table. */
export interface ItemKey {
  pk: string;
  sk: string;
}

/** The two ways a service's clients are counted. */
export type ClientView = 'endpoint' | 'ip';

/** The write shard of one client of one service (the same for its endpoint, IP and host items). */
export function clientShard(service: string, ip: string): number {
  return fnv1a(`shard|${service}|${ip}`) % WRITE_SHARDS;
}

/** All shard numbers, for fan-out reads. */
export function allShards(): number[] {
  return Array.from({ length: WRITE_SHARDS }, (_, i) => i);
}

/** Key of one endpoint (ip:port) of a service. */
export function endpointKey(service: string, ip: string, port: number): ItemKey {
  return { pk: `SVC#${service}#${clientShard(service, ip)}`, sk: `EP#${ip}#${port}` };
}

/** Key of one distinct client IP of a service. */
export function clientIpKey(service: string, ip: string): ItemKey {
  return { pk: `SVC#${service}#${clientShard(service, ip)}`, sk: `IP#${ip}` };
}

/** Key of one client IP of a service as seen by one host. */
export function hostClientKey(host: string, service: string, ip: string): ItemKey {
  return { pk: `HOST#${host}#${clientShard(service, ip)}`, sk: `CL#${service}#${ip}` };
}

/** Key of a service's entry in the services list. */
export function serviceKey(service: string): ItemKey {
  return { pk: SERVICES_PK, sk: `SVC#${service}` };
}

/** Key of an agent's entry in the agents list. */
export function agentKey(agentId: string): ItemKey {
  return { pk: AGENTS_PK, sk: `AGENT#${agentId}` };
}

/** byActivity partition holding one shard of a service's endpoints or IPs. */
export function serviceActivityPartition(view: ClientView, service: string, shard: number): string {
  return `ACT#${view === 'endpoint' ? 'EP' : 'IP'}#${service}#${shard}`;
}

/** byActivity partition holding one shard of a host's clients. */
export function hostActivityPartition(host: string, shard: number): string {
  return `ACT#HOST#${host}#${shard}`;
}

/** byClientIp partition holding everything one IP talks to (one item per service). */
export function clientIpPartition(ip: string): string {
  return `CLIENT#${ip}`;
}

/** Time fields and counters every client item carries. */
export interface ClientCounters {
  firstSeen: number;
  lastSeen: number;
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
  /** Hosts whose agents saw the client. */
  hosts: string[];
  /** Sources (hook, conntrack, proc) that saw the client. */
  sources: string[];
  /** agentId -> highest record seq folded into this item. */
  applied: Record<string, number>;
  /** Epoch seconds after which DynamoDB TTL may delete the item. */
  ttl: number;
  /** activityBucket(lastSeen): the sort key of both indexes. */
  activeBucket: number;
}

/** One endpoint of a service. */
export interface EndpointItem extends ClientCounters {
  kind: 'endpoint';
  service: string;
  ip: string;
  port: number;
}

/** One distinct client IP of a service. */
export interface ClientIpItem extends ClientCounters {
  kind: 'ip';
  service: string;
  ip: string;
}

/** One client IP of a service as seen by one host. */
export interface HostClientItem extends ClientCounters {
  kind: 'host';
  host: string;
  service: string;
  ip: string;
}

/** A service in the services list, with the counts the metrics function last computed. */
export interface ServiceItem {
  kind: 'service';
  service: string;
  firstSeen: number;
  lastSeen: number;
  ttl: number;
  activeClients?: number;
  activeClientIps?: number;
  /** Epoch ms when the counts were computed. */
  countsAt?: number;
}

/** An agent's last heartbeat. */
export interface AgentItem {
  kind: 'agent';
  agentId: string;
  host: string;
  /** Epoch ms of the last heartbeat (also stored as lastSeen). */
  lastHeartbeat: number;
  lastSeen: number;
  flows: number;
  dropped: number;
  spooled: number;
  sources: string[];
  ttl: number;
}

/** Any item of the table. */
export type TableItem = EndpointItem | ClientIpItem | HostClientItem | ServiceItem | AgentItem;

/** The TTL of an item last seen at `lastSeenMs`, kept `retentionHours` after that. */
export function ttlFor(lastSeenMs: number, retentionHours: number): number {
  return Math.ceil(lastSeenMs / 1000) + Math.round(retentionHours * 3600);
}

/** Name of the watermark attribute of one agent. */
export function appliedAttribute(agentId: string): string {
  return `${APPLIED_PREFIX}${agentId}`;
}

/** Collects the per-agent watermarks of a raw item into a map. */
export function appliedOf(raw: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (name.startsWith(APPLIED_PREFIX) && typeof value === 'number') {
      out[name.slice(APPLIED_PREFIX.length)] = value;
    }
  }
  return out;
}
