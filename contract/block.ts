/**
 * The sealed activity block: what crosses agent -> Kinesis -> Lambda ->
 * DynamoDB in wire format v2. One block is every endpoint one service saw on
 * one agent within one span of one minute, with exact delta counters. A block
 * is sealed once and never updated; the store keeps it as an immutable item
 * keyed by (service, minute, agent shard) and (agent, seq, part), so retries,
 * replays and re-sends overwrite identical bytes and nothing counts twice.
 *
 * `block-codec.ts` turns a Block into deterministic bytes (columnar, varint
 * and prefix coded, brotli-compressed) and back; this file is the shape and its bounds.
 */
import type { FlowSource } from './wire.js';

/** Wire format version of sealed blocks (v1 is the NDJSON line format in wire.ts). */
export const BLOCK_VERSION = 2;

/** Milliseconds in a block's minute. */
export const MINUTE_MS = 60_000;

/** Largest value of one counter of one endpoint in one block (2^48: 281 TB or 281 T packets a minute). */
export const MAX_BLOCK_COUNTER = 2 ** 48;

/** Most endpoints in one part; an agent splits a larger block into numbered parts. */
export const MAX_PART_ENDPOINTS = 20_000;

/**
 * Largest encoded part: it must fit a DynamoDB item (400 KB with its keys and
 * attributes) and a Kinesis record (1 MiB).
 */
export const MAX_PART_BYTES = 350 * 1024;

/** Largest body a decoder inflates a part to (guards against decompression bombs). */
export const MAX_INFLATED_PART_BYTES = 4 * 1024 * 1024;

/** Most parts one block may be split into. */
export const MAX_PARTS = 1024;

/** The minute (epoch minutes) holding epoch-ms time `ms`. */
export function minuteOf(ms: number): number {
  return Math.floor(ms / MINUTE_MS);
}

/** Who owns the daemon side of a flow, as /proc or the hook reported it. */
export interface BlockOwner {
  pid?: number;
  process?: string;
}

/** One client endpoint of the service within the block's span. */
export interface BlockEndpoint {
  /** The client's address as the daemon sees it (canonical text, see ip-address.ts). */
  ip: string;
  port: number;
  /** The daemon's side of the flow. */
  localIp: string;
  localPort: number;
  /** Deltas within the block's span, each 0..MAX_BLOCK_COUNTER. */
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
  /** Second within the block's minute (0..59) of the first and last packet in the span. */
  firstSecond: number;
  lastSecond: number;
  source: FlowSource;
  /** 1 when every packet was counted; N when 1 in N was (counters already scaled). */
  sampleRate: number;
  /** The client's address before NAT, when known. */
  natFromIp?: string;
  natFromPort?: number;
  owner?: BlockOwner;
  /** Application-level client id a hooked daemon attached. */
  clientId?: string;
}

/** Health of the service's sockets on this agent during the span. */
export interface BlockSocketHealth {
  /** Largest receive-queue depth seen, bytes. */
  rxQueueBytes: number;
  /** Datagrams the kernel dropped on the service's sockets during the span. */
  drops: number;
}

/** One sealed part of a block. */
export interface Block {
  agentId: string;
  host: string;
  service: string;
  /** Epoch minute the span lies in. */
  minute: number;
  /** The agent's persistent sequence number that names this block (the v1 `seq` allocator). */
  seq: number;
  /** This part's index (0-based) and the block's number of parts. */
  part: number;
  parts: number;
  /** Sorted by (ip, port, localIp, localPort), no two alike. */
  endpoints: BlockEndpoint[];
  socket?: BlockSocketHealth;
}

/**
 * An agent sends a minute's main part this long after the minute ends at the
 * most, at an offset taken from a hash of its id, so a fleet's blocks do not
 * all arrive at :00.
 */
export const SEND_SPREAD_SECONDS = 50;

/**
 * The summarizer treats a minute as complete this long after it ends: every
 * agent's main part (spread over SEND_SPREAD_SECONDS) should be stored by then.
 * A block stored later marks its minute late and the minute is summarized again.
 */
export const SUMMARY_LAG_SECONDS = 70;
