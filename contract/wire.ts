/**
 * The connection-log wire format, version 1: the one definition of what an
 * agent writes into Kinesis and what the aggregate function reads back.
 *
 * A Kinesis record's data is NDJSON (optionally gzip'd): one JSON object per
 * line, each a flow line or a heartbeat line. All lines of one record share an
 * `agentId` and `seq`; the pair names the payload for de-duplication.
 */
import { z } from 'zod';
import { normalizeIp } from './ip-address.js';

export const WIRE_VERSION = 1;

/**
 * Where an agent learned about a flow, most precise first (a merge of two
 * records keeps the earlier one). Blocks carry the name, so a new source
 * appends no number: only decoders that know the name accept it.
 */
export const FLOW_SOURCES = ['hook', 'ebpf', 'conntrack', 'proc'] as const;
export type FlowSource = (typeof FLOW_SOURCES)[number];

/** The position of `s` in FLOW_SOURCES, its rank (lower is more precise); -1 for none. */
export function flowSourceIndex(s: string): number {
  // A plain loop: codecs call it per endpoint.
  for (let k = 0; k < FLOW_SOURCES.length; k++) if (FLOW_SOURCES[k] === s) return k;
  return -1;
}

const MAX_COUNTER = Number.MAX_SAFE_INTEGER;
/** Timestamps are epoch milliseconds between 2000 and 2100: anything else is a unit mistake. */
const EPOCH_MS = z.number().int().min(946_684_800_000).max(4_102_444_800_000);
const COUNTER = z.number().int().min(0).max(MAX_COUNTER);
const PORT = z.number().int().min(0).max(65_535);
const NAME = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\s\u0000-\u001f]+$/, 'must have no spaces or control characters');

/** An IP address in any valid text form, normalized to its canonical form. */
export const IpAddress = z.string().transform((text, ctx) => {
  const ip = normalizeIp(text);
  if (ip === null) {
    ctx.addIssue({
      code: 'custom',
      message: `not an IPv4 or IPv6 address: ${JSON.stringify(text.slice(0, 64))}`,
    });
    return z.NEVER;
  }
  return ip;
});

const Envelope = {
  v: z.literal(WIRE_VERSION),
  agentId: NAME(128),
  seq: z.number().int().min(0).max(MAX_COUNTER),
  host: NAME(253),
};

/** One flow's activity in one reporting window; counters are deltas since the flow's previous line. */
export const FlowLineSchema = z
  .object({
    ...Envelope,
    type: z.literal('flow'),
    service: NAME(128),
    source: z.enum(FLOW_SOURCES),
    localIp: IpAddress,
    localPort: PORT,
    remoteIp: IpAddress,
    remotePort: PORT,
    firstSeen: EPOCH_MS,
    lastSeen: EPOCH_MS,
    pktsIn: COUNTER,
    bytesIn: COUNTER,
    pktsOut: COUNTER,
    bytesOut: COUNTER,
    /** 1 when every packet was counted; N when 1 in N was, counters already scaled up. */
    sampleRate: z.number().int().min(1).max(1_000_000),
    pid: z.number().int().min(0).max(4_194_304).optional(),
    process: z.string().min(1).max(256).optional(),
    natFromIp: IpAddress.optional(),
    natFromPort: PORT.optional(),
    /** Application-level client id a hooked daemon attached to the flow. */
    clientId: z.string().min(1).max(256).optional(),
  })
  .refine((l) => l.lastSeen >= l.firstSeen, {
    message: 'lastSeen is before firstSeen',
    path: ['lastSeen'],
  });

/** How one source fares on an agent: reading, blind to some ports, blind, or turned off. */
export const SOURCE_STATES = ['live', 'partial', 'blind', 'off'] as const;
export type SourceStateName = (typeof SOURCE_STATES)[number];

/** Longest reason an agent sends for a source state or an unobserved service. */
export const MAX_REASON_CHARS = 400;
/** Unobserved services one heartbeat names at most (the busiest candidates first). */
export const MAX_UNOBSERVED = 32;

const REASON = z.string().min(1).max(MAX_REASON_CHARS);

/** One source's state on the agent, with why it is not live and the fix. */
export const SourceStateSchema = z.object({
  source: z.enum(FLOW_SOURCES),
  state: z.enum(SOURCE_STATES),
  reason: REASON.optional(),
});
export type SourceState = z.output<typeof SourceStateSchema>;

/** A busy listening socket whose peers no live source of the agent observes. */
export const UnobservedServiceSchema = z.object({
  service: NAME(128),
  port: PORT,
  /** Likely cause and fix, e.g. a NOTRACK rule on the port and no eBPF. */
  reason: REASON,
});
export type UnobservedService = z.output<typeof UnobservedServiceSchema>;

/** An agent's periodic sign of life, with its shedding counters. */
export const HeartbeatLineSchema = z.object({
  ...Envelope,
  type: z.literal('heartbeat'),
  at: EPOCH_MS,
  flows: COUNTER,
  /** Flow lines the agent had to shed so far (memory bound, full spool). */
  dropped: COUNTER,
  /** Records waiting to be sent: in the disk spool, or in memory while the spool refuses writes. */
  spooled: COUNTER,
  /** Sources the agent is reading (optional, informative). */
  sources: z.array(z.enum(FLOW_SOURCES)).max(FLOW_SOURCES.length).optional(),
  /** Every source's state with the reason it is not live (optional). */
  sourceStates: z.array(SourceStateSchema).max(FLOW_SOURCES.length).optional(),
  /** Busy services whose peers no live source sees (optional; absent = none found). */
  unobserved: z.array(UnobservedServiceSchema).max(MAX_UNOBSERVED).optional(),
  /**
   * Hook reports since the agent started that matched no socket it lists
   * (per process and port, once a minute): hooked daemons it cannot place,
   * e.g. in another network namespace (optional; absent = none or an older agent).
   */
  hookUnmatched: COUNTER.optional(),
});

export const LineSchema = z.discriminatedUnion('type', [FlowLineSchema, HeartbeatLineSchema]);

/** A flow line as decoded (addresses canonical). */
export type FlowLine = z.output<typeof FlowLineSchema>;
/** A heartbeat line as decoded. */
export type HeartbeatLine = z.output<typeof HeartbeatLineSchema>;
/** Any line of a connection-log record. */
export type Line = FlowLine | HeartbeatLine;
