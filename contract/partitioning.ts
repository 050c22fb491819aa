/**
 * How records are spread over Kinesis shards, and the hash behind every
 * spread (block shards, send offsets, sampling).
 *
 * A block record's partition key is `<agentId>/<seq mod PARTITION_BUCKETS>`,
 * so one busy host spreads over up to PARTITION_BUCKETS shards and a fleet
 * over all of them. The store does not depend on the order records arrive in:
 * every block is stored by content under its own key, so any key that spreads
 * the load is correct. A v1 record (NDJSON) may carry any partition key.
 */

/** Buckets per agent. More buckets spread a busy host over more shards. */
export const PARTITION_BUCKETS = 16;

/** 32-bit FNV-1a of a string: small, fast, stable across runtimes. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The bucket that lines about `remoteIp` of `service` go to. */
export function flowBucket(service: string, remoteIp: string): number {
  return fnv1a(`${service}|${remoteIp}`) % PARTITION_BUCKETS;
}

/** The Kinesis partition key of one agent's bucket (heartbeats use bucket 0). */
export function partitionKey(agentId: string, bucket: number): string {
  return `${agentId}/${bucket}`;
}
