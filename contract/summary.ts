/**
 * The per-minute summary of one service, as the summarize function stores it
 * under `summaryKey(service, minute)` and the query function reads it back.
 * Defined once here: the writer validates what it puts, the reader what it
 * gets (a summary that fails the schema is skipped, not trusted).
 */
import { z } from 'zod';

/** Endpoints kept in each top-talker list of a summary. */
export const TOP_TALKERS = 10;

const Count = z.number().int().nonnegative();

/** One of a summary's busiest endpoints, with its totals over the summary's window. */
export const TopTalker = z.object({
  ip: z.string(),
  port: z.number().int().min(0).max(65_535),
  pktsIn: Count,
  bytesIn: Count,
  pktsOut: Count,
  bytesOut: Count,
  lastSeen: z.number().int().describe('Epoch ms: start of the second of its last packet.'),
});
export type TopTalker = z.infer<typeof TopTalker>;

/** Socket health over the summarized minute: deepest receive queue, summed kernel drops. */
export const SocketSummary = z.object({
  rxQueueBytes: Count.describe('Largest receive-queue depth any agent saw in the minute, bytes.'),
  drops: Count.describe("Datagrams the kernel dropped on the service's sockets in the minute."),
});
export type SocketSummary = z.infer<typeof SocketSummary>;

/**
 * A service's summary of minute `minute`. Active counts, one-way clients and
 * top talkers are over the active window ending at the end of that minute
 * (`since` .. `until`); totals, socket health, agents and hosts are of the
 * minute alone.
 */
export const SummaryItem = z.object({
  service: z.string().min(1),
  /** Epoch minute summarized. */
  minute: z.number().int().nonnegative(),
  windowSeconds: z.number().int().positive(),
  /** Epoch ms: endpoints last seen at or after this are active (floored to the second). */
  since: z.number().int(),
  /** Epoch ms: end of the minute (exclusive). */
  until: z.number().int(),
  /** Epoch ms: when the summary was computed. */
  computedAt: z.number().int(),
  activeClients: Count.describe('Active endpoints (ip:port) in the window.'),
  activeClientIps: Count.describe('Active distinct client IPs in the window.'),
  oneWay: Count.describe('Active endpoints that sent packets in the window and got none back.'),
  pktsIn: Count,
  bytesIn: Count,
  pktsOut: Count,
  bytesOut: Count,
  socket: SocketSummary.nullable().describe('Null when no agent reported socket health.'),
  agents: Count.describe('Agents with blocks in the minute.'),
  hosts: Count.describe('Hosts with blocks in the minute.'),
  topByPackets: z.array(TopTalker).max(TOP_TALKERS),
  topByBytes: z.array(TopTalker).max(TOP_TALKERS),
  /** Stored block parts read for the window, and those skipped as undecodable. */
  partsRead: Count,
  badParts: Count,
});
export type SummaryItem = z.infer<typeof SummaryItem>;
