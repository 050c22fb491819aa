/**
 * How connection logs are spread over Kinesis shards.
 *
 * Each agent splits its lines into PARTITION_BUCKETS buckets by
 * (service, client IP). A bucket always maps to the same partition key, so
 * all lines about one client from one agent travel through one shard, in the
 * order the agent wrote them; that order is what lets the aggregator apply
 * each payload exactly once with a per-item sequence watermark. Different
 * buckets (and different agents) land on different shards, so one busy host
 * never makes one hot shard.
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
