/**
 * The key layout of the single table, defined once: which item lives under
 * which key. Functions write and read through these builders; nothing else
 * spells a key.
 *
 * | item            | pk                                | sk                                   |
 * |-----------------|-----------------------------------|--------------------------------------|
 * | block part      | `B#<service>#<minute>#<shard>`    | `<agentId>#<seq, 16 digits>#<part, 4 digits>` |
 * | hourly roll-up  | `R#<service>#<hour>#<shard>`      | `<part, 4 digits>`                   |
 * | summary         | `S#<service>`                     | `<minute, 10 digits>`                |
 * | hour of counts  | `C#<service>`                     | `<hour, 8 digits>`                   |
 * | service         | `SERVICES`                        | `SVC#<service>`                      |
 * | agent           | `AGENTS`                          | `AGENT#<agentId>`                    |
 * | late minute     | `LATE`                            | `<minute, 10 digits>#<service>`      |
 * | roll-up due     | `ROLLUPS`                         | `<hour, 8 digits>#<service>`         |
 * | conflict        | `CONFLICT#<service>#<minute>`     | block sk + `#<content hash>`         |
 *
 * Blocks of one service-minute are spread over BLOCK_SHARDS partitions by a
 * hash of the agent, and the minute is part of the key, so a big service
 * writes to a new set of partitions every minute and never sits on one hot
 * key. "Blocks of service S in minutes [a, b]" is (b - a + 1) x BLOCK_SHARDS
 * Queries on exact keys: no Scan, no index. Service and host names may hold
 * `#`, but every key puts a fixed-shape suffix after them, so keys cannot
 * collide.
 */
import { fnv1a } from './partitioning.js';

/** Partitions each service-minute's blocks are spread over. */
export const BLOCK_SHARDS = 4;

/** Minutes per roll-up: an hour. */
export const ROLLUP_MINUTES = 60;

/** A primary key of the table. */
export interface ItemKey {
  pk: string;
  sk: string;
}

/** Partition key of the services list. */
export const SERVICES_PK = 'SERVICES';
/** Partition key of the agents list. */
export const AGENTS_PK = 'AGENTS';
/** Partition key of the minutes that got blocks after they were summarized. */
export const LATE_PK = 'LATE';
/** Partition key of the service-hours whose roll-up is to be built (again). */
export const ROLLUP_DUE_PK = 'ROLLUPS';

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** The block shard of an agent: all of one agent's blocks of a service-minute share it. */
export function agentShard(agentId: string): number {
  return fnv1a(`shard|${agentId}`) % BLOCK_SHARDS;
}

/** All shard numbers, for fan-out reads. */
export function allShards(): number[] {
  return Array.from({ length: BLOCK_SHARDS }, (_, i) => i);
}

/** Partition of one shard of a service-minute's blocks. */
export function blockPartition(service: string, minute: number, shard: number): string {
  return `B#${service}#${minute}#${shard}`;
}

/** Sort key of one part of one agent's block; sorts by agent, then seq, then part. */
export function blockSortKey(agentId: string, seq: number, part: number): string {
  return `${agentId}#${pad(seq, 16)}#${pad(part, 4)}`;
}

/** Key of one part of one agent's block. */
export function blockKey(
  service: string,
  minute: number,
  agentId: string,
  seq: number,
  part: number,
): ItemKey {
  return {
    pk: blockPartition(service, minute, agentShard(agentId)),
    sk: blockSortKey(agentId, seq, part),
  };
}

/** The roll-up hour (epoch hours) holding epoch minute `minute`. */
export function hourOf(minute: number): number {
  return Math.floor(minute / ROLLUP_MINUTES);
}

/** Partition of one shard of a service-hour's roll-up. */
export function rollupPartition(service: string, hour: number, shard: number): string {
  return `R#${service}#${hour}#${shard}`;
}

/** Key of one part of a roll-up. */
export function rollupKey(service: string, hour: number, shard: number, part: number): ItemKey {
  return { pk: rollupPartition(service, hour, shard), sk: pad(part, 4) };
}

/** Partition of a service's per-minute summaries. */
export function summaryPartition(service: string): string {
  return `S#${service}`;
}

/** Key of a service's summary of one minute. */
export function summaryKey(service: string, minute: number): ItemKey {
  return { pk: summaryPartition(service), sk: pad(minute, 10) };
}

/** Partition of a service's hours of per-minute counts. */
export function countsPartition(service: string): string {
  return `C#${service}`;
}

/** Sort key of one hour of a service's counts; sorts oldest hour first. */
export function countsSortKey(hour: number): string {
  return pad(hour, 8);
}

/** Key of one hour (epoch hours) of a service's per-minute counts. */
export function countsKey(service: string, hour: number): ItemKey {
  return { pk: countsPartition(service), sk: countsSortKey(hour) };
}

/** Key of a service's entry in the services list. */
export function serviceKey(service: string): ItemKey {
  return { pk: SERVICES_PK, sk: `SVC#${service}` };
}

/** Key of an agent's entry in the agents list. */
export function agentKey(agentId: string): ItemKey {
  return { pk: AGENTS_PK, sk: `AGENT#${agentId}` };
}

/** Key of the mark that a service-minute got a block after it was summarized. */
export function lateKey(service: string, minute: number): ItemKey {
  return { pk: LATE_PK, sk: `${pad(minute, 10)}#${service}` };
}

/** Parses a late mark's sort key back into its service and minute. */
export function parseLateSortKey(sk: string): { minute: number; service: string } | null {
  const m = /^(\d{10})#(.+)$/.exec(sk);
  return m ? { minute: Number(m[1]), service: m[2]! } : null;
}

/** Key of the mark that a service-hour's roll-up is to be built; sorts oldest hour first. */
export function rollupDueKey(service: string, hour: number): ItemKey {
  return { pk: ROLLUP_DUE_PK, sk: `${pad(hour, 8)}#${service}` };
}

/** Parses a roll-up mark's sort key back into its service and hour. */
export function parseRollupDueSortKey(sk: string): { hour: number; service: string } | null {
  const m = /^(\d{8})#(.+)$/.exec(sk);
  return m ? { hour: Number(m[1]), service: m[2]! } : null;
}

/** Key under which a block that differs from the one already stored is kept for inspection. */
export function conflictKey(key: ItemKey, service: string, minute: number, hash: string): ItemKey {
  return { pk: `CONFLICT#${service}#${minute}`, sk: `${key.sk}#${hash}` };
}

/** The TTL (epoch seconds) of an item whose data ends at `lastMs`, kept `retentionHours` after that. */
export function ttlFor(lastMs: number, retentionHours: number): number {
  return Math.ceil(lastMs / 1000) + Math.round(retentionHours * 3600);
}
