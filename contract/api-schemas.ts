/**
 * The HTTP API's request and response shapes: zod schemas that validate
 * requests, type responses, and generate the OpenAPI description. The CLI
 * imports the response schemas to parse answers.
 */
import { z } from 'zod';
import { DEFAULTS } from './resources.js';
import { SocketSummary, TopTalker } from './summary.js';
import { IpAddress, SourceStateSchema, UnobservedServiceSchema } from './wire.js';

/** Longest window a query may ask for: a week (data is kept for the retention, 24 h by default). */
export const MAX_WINDOW_SECONDS = 7 * 24 * 3600;
/** Largest page. */
export const MAX_LIMIT = 1000;
export const DEFAULT_LIMIT = 100;

const NAME_RE = /^[^\s\u0000-\u001f]+$/;

// ---- request parameters -------------------------------------------------

/** A service name in the path. */
export const ServiceParam = z
  .string()
  .min(1)
  .max(128)
  .regex(NAME_RE, 'must have no spaces or control characters')
  .describe('Service name as the agents report it.');

/** A host name in the path. */
export const HostParam = z
  .string()
  .min(1)
  .max(253)
  .regex(NAME_RE, 'must have no spaces or control characters')
  .describe('Host name as its agent reports it.');

/** A client IP in the path (any IPv4/IPv6 text form; answered in canonical form). */
export const IpParam = IpAddress.describe('Client IPv4 or IPv6 address.');

/**
 * Plain decimal digits: no sign, exponent, radix prefix, fraction, blanks or
 * leading zeros ("0" alone is fine). Sixteen digits at most, beyond any bound.
 */
const DECIMAL_RE = /^(?:0|[1-9][0-9]{0,15})$/;
/** Longest piece of a refused value an error quotes. */
const QUOTED_MAX = 40;

/** A value quoted for an error message, cut short when long. */
export function quoteValue(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > QUOTED_MAX ? `${text.slice(0, QUOTED_MAX)}…` : text);
}

/**
 * A whole-number query parameter of `unit` in [min, max], given as plain
 * decimal digits. z.coerce.number would take `0x10`, `1e3`, `+5`, ` 5` and
 * `5.0`; this refuses them before any conversion. The JSON Schema of its
 * input is the integer range, as OpenAPI describes a query parameter.
 */
function decimalParam(unit: string, min: number, max: number) {
  const range = (issue: { input?: unknown }) =>
    `${String(issue.input)} is out of range: ${min} to ${max} ${unit}`;
  return z.preprocess(
    (v) => (typeof v === 'string' && DECIMAL_RE.test(v) ? Number(v) : v),
    z
      .int({
        error: (issue) =>
          issue.code === 'invalid_type'
            ? `${quoteValue(issue.input)} is not a decimal number of ${unit}`
            : undefined,
      })
      .min(min, { error: range })
      .max(max, { error: range }),
  );
}

const Window = decimalParam('seconds', 1, MAX_WINDOW_SECONDS)
  .optional()
  .describe(
    `Seconds: a client is active if its last packet is younger than this (default: the configured active window, ${DEFAULTS.activeWindowSeconds}).`,
  );
const Limit = decimalParam('entries', 1, MAX_LIMIT)
  .default(DEFAULT_LIMIT)
  .describe('Largest number of entries in one page.');
const Cursor = z
  .string()
  .min(1)
  .max(4096)
  .optional()
  .describe('Opaque `nextCursor` of the previous page of the same query.');

/** Query of GET /v1/services and GET /v1/agents. */
export const WindowQuery = z.strictObject({ window: Window });

/** Query of GET /v1/services/{service}/clients. */
export const ClientsQuery = z.strictObject({
  window: Window,
  by: z
    .enum(['endpoint', 'ip'])
    .default('endpoint')
    .describe('List endpoints (ip:port) or distinct client IPs.'),
  limit: Limit,
  cursor: Cursor,
});

/** Query of GET /v1/services/{service}/count. */
export const CountQuery = WindowQuery;

/** Query of GET /v1/clients/{ip}. */
export const ClientIpQuery = z.strictObject({ window: Window, limit: Limit });

/** Query of GET /v1/hosts/{host}/clients. */
export const HostClientsQuery = z.strictObject({ window: Window, limit: Limit, cursor: Cursor });

/** Longest history one request may ask for: a day (the default retention). */
export const MAX_HISTORY_MINUTES = 24 * 60;
/** History a request gets without `minutes`: the last hour. */
export const DEFAULT_HISTORY_MINUTES = 60;

/** Query of GET /v1/services/{service}/history. */
export const HistoryQuery = z.strictObject({
  minutes: decimalParam('minutes', 1, MAX_HISTORY_MINUTES)
    .default(DEFAULT_HISTORY_MINUTES)
    .describe('How many of the latest complete minutes to answer (1 to 1440, default 60).'),
});

/** Query of GET /v1/alarms. */
export const AlarmsQuery = z.strictObject({
  service: ServiceParam.optional().describe(
    'Only the alarms of this service (the client-count alarms on its counts).',
  ),
});

// ---- responses ----------------------------------------------------------

const EpochMs = z.number().int().describe('Epoch milliseconds.');

/** A client as an answer lists it: an endpoint or an IP of one service, with its counters. */
export const ClientEntry = z.object({
  service: z.string(),
  ip: z.string(),
  port: z.number().int().optional().describe('Present when listing endpoints.'),
  endpoint: z
    .string()
    .optional()
    .describe('`ip:port` (`[ip]:port` for IPv6), when listing endpoints.'),
  host: z.string().optional().describe("Present when listing one host's clients."),
  firstSeen: EpochMs,
  lastSeen: EpochMs,
  pktsIn: z.number().int(),
  bytesIn: z.number().int(),
  pktsOut: z.number().int(),
  bytesOut: z.number().int(),
  hosts: z.array(z.string()).describe('Hosts whose agents saw this client.'),
  sources: z.array(z.string()).describe('How it was seen: hook, conntrack, proc.'),
  natFrom: z
    .array(z.string())
    .optional()
    .describe('Addresses before NAT (`ip:port`, `[ip]:port` for IPv6) the agents reported.'),
  owners: z
    .array(z.object({ pid: z.number().int().optional(), process: z.string().optional() }))
    .optional()
    .describe('Processes that owned the daemon side of the flows.'),
  clientIds: z
    .array(z.string())
    .optional()
    .describe('Application-level client ids a hooked daemon attached.'),
});
export type ClientEntry = z.infer<typeof ClientEntry>;

const WindowFields = {
  window: z.number().int().describe('Window in seconds the answer used.'),
  since: EpochMs.describe(
    'now - window, floored to the second: entries last seen before this are left out (last seen is the start of the second of the last packet).',
  ),
  now: EpochMs,
};

/** The latest per-minute summary of a service, as GET /v1/services shows it. */
export const ServiceSummary = z.object({
  minute: z.number().int().describe('Epoch minute summarized.'),
  computedAt: EpochMs,
  oneWay: z
    .number()
    .int()
    .describe('Active endpoints that sent packets within the window and got none back.'),
  pktsIn: z.number().int().describe('Packets in during the minute (all clients).'),
  bytesIn: z.number().int(),
  pktsOut: z.number().int(),
  bytesOut: z.number().int(),
  socket: SocketSummary.nullable().describe('Socket health in the minute; null if none reported.'),
  agents: z.number().int().describe('Agents that sent blocks for the minute.'),
  hosts: z.number().int(),
  topByPackets: z.array(TopTalker).describe('Busiest active endpoints of the window by packets.'),
  topByBytes: z.array(TopTalker).describe('Busiest active endpoints of the window by bytes.'),
});
export type ServiceSummary = z.infer<typeof ServiceSummary>;

/** Whether a reporting agent says the service is busy while no live source sees its clients. */
const UnobservedFields = {
  // Defaults keep the CLI reading answers of an API from before these fields.
  peersUnobserved: z
    .boolean()
    .default(false)
    .describe(
      'A reporting agent found the service busy while none of its live sources sees the clients (NOTRACK, no conntrack rules, no eBPF): no clients listed does not mean no clients.',
    ),
  unobservedReason: z
    .string()
    .optional()
    .describe(
      'Present with peersUnobserved: host, likely cause and the fix, as the agent gave it.',
    ),
};

/** GET /v1/services */
export const ServicesResponse = z.object({
  ...WindowFields,
  services: z.array(
    z.object({
      service: z.string(),
      firstSeen: EpochMs,
      lastSeen: EpochMs,
      active: z.boolean().describe('Whether any client was seen within the window.'),
      activeClients: z
        .number()
        .int()
        .nullable()
        .describe(
          "Active endpoints in the service's latest summary (the active window ending at the end of `summary.minute`); null before the first.",
        ),
      activeClientIps: z
        .number()
        .int()
        .nullable()
        .describe('Active distinct IPs in the latest summary.'),
      countsAt: EpochMs.nullable().describe(
        'End of the summarized minute the counts are of (null before the first summary).',
      ),
      summary: ServiceSummary.nullable()
        .optional()
        .describe('The latest per-minute summary of the service, null before the first.'),
      ...UnobservedFields,
    }),
  ),
});
export type ServicesResponse = z.infer<typeof ServicesResponse>;

/** GET /v1/services/{service}/clients */
export const ClientsResponse = z.object({
  service: z.string(),
  by: z.enum(['endpoint', 'ip']),
  ...WindowFields,
  clients: z
    .array(ClientEntry)
    .describe(
      'Newest first (ties in a fixed order), across pages too: a cursor resumes right after the last entry of its page, with the window fixed on the first page.',
    ),
  nextCursor: z
    .string()
    .nullable()
    .describe('Pass as `cursor` for the next page; null on the last page.'),
});
export type ClientsResponse = z.infer<typeof ClientsResponse>;

/** GET /v1/services/{service}/count */
export const CountResponse = z.object({
  service: z.string(),
  ...WindowFields,
  endpoints: z.number().int().describe('Active endpoints (ip:port).'),
  ips: z.number().int().describe('Active distinct client IPs.'),
  ...UnobservedFields,
});
export type CountResponse = z.infer<typeof CountResponse>;

/** GET /v1/clients/{ip} */
export const ClientIpResponse = z.object({
  ip: z.string(),
  ...WindowFields,
  services: z.array(ClientEntry).describe('One entry per service the IP talked to, newest first.'),
  truncated: z.boolean().describe('More services than `limit` matched.'),
});
export type ClientIpResponse = z.infer<typeof ClientIpResponse>;

/** GET /v1/hosts/{host}/clients */
export const HostClientsResponse = z.object({
  host: z.string(),
  ...WindowFields,
  clients: z
    .array(ClientEntry)
    .describe(
      'One entry per (service, client IP) this host saw, newest first across pages (the cursor fixes the window and resumes after the last entry).',
    ),
  nextCursor: z.string().nullable(),
});
export type HostClientsResponse = z.infer<typeof HostClientsResponse>;

/** GET /v1/agents */
export const AgentsResponse = z.object({
  ...WindowFields,
  agents: z.array(
    z.object({
      agentId: z.string(),
      host: z.string(),
      lastHeartbeat: EpochMs,
      reporting: z.boolean().describe('Whether the last heartbeat is within the window.'),
      flows: z.number().int(),
      dropped: z.number().int().describe('Flow lines the agent had to shed so far.'),
      spooled: z
        .number()
        .int()
        .describe(
          "Records waiting to be sent (the agent's disk spool, or memory while it refuses writes).",
        ),
      sources: z
        .array(z.string())
        .describe('Sources that see clients (live, or blind to some ports).'),
      sourceStates: z
        .array(SourceStateSchema)
        .default([])
        .describe(
          'Every source with its state (live, partial, blind, off) and why it is not live; empty for agents that do not report it.',
        ),
      unobserved: z
        .array(UnobservedServiceSchema)
        .default([])
        .describe('Busy services on this agent whose peers no live source observes.'),
      hookUnmatched: z
        .number()
        .int()
        .default(0)
        .describe(
          'Hook reports since the agent started that matched no socket the agent lists (per process and port, once a minute): hooked daemons it cannot place, e.g. in another network namespace; 0 for agents that do not report it.',
        ),
    }),
  ),
});
export type AgentsResponse = z.infer<typeof AgentsResponse>;

/** GET /v1/services/{service}/history */
export const HistoryResponse = z.object({
  service: z.string(),
  minutes: z.number().int().describe('Minutes asked for.'),
  from: EpochMs.describe('Start of the first minute asked for.'),
  until: EpochMs.describe(
    'End of the last minute asked for (the start of the current minute); the newest summaries lag it by 2-3 minutes.',
  ),
  now: EpochMs,
  points: z
    .array(
      z.object({
        minute: z.number().int().describe('Epoch minute summarized.'),
        at: EpochMs.describe('End of the minute: the counts are of the active window ending here.'),
        endpoints: z.number().int().describe('Active endpoints (ip:port).'),
        ips: z.number().int().describe('Active distinct client IPs.'),
      }),
    )
    .describe(
      'One point per summarized minute, oldest first; a minute without a summary (not yet summarized, before the first traffic, or idle after a zero) has none.',
    ),
  skipped: z.number().int().describe('Stored minute entries that were malformed and left out.'),
});
export type HistoryResponse = z.infer<typeof HistoryResponse>;

/** The state names of a CloudWatch alarm. */
export const AlarmStateName = z.enum(['OK', 'ALARM', 'INSUFFICIENT_DATA']);
export type AlarmStateName = z.infer<typeof AlarmStateName>;

/** One alarm as GET /v1/alarms lists it. */
export const AlarmEntry = z.object({
  name: z.string(),
  service: z
    .string()
    .nullable()
    .describe('The service a client-count alarm watches; null for an operations alarm.'),
  metric: z.string().describe('The metric watched (or the expression, for metric math).'),
  bound: z
    .enum(['min', 'max'])
    .nullable()
    .describe('min: alarms below the threshold; max: above it; null for other comparisons.'),
  threshold: z.number().nullable(),
  state: AlarmStateName,
  reason: z.string().describe("The alarm's own account of its state."),
  changedAt: EpochMs.nullable().describe('When the state last changed (null before any).'),
});
export type AlarmEntry = z.infer<typeof AlarmEntry>;

/** GET /v1/alarms */
export const AlarmsResponse = z.object({
  now: EpochMs,
  source: z
    .enum(['cloudwatch', 'local', 'none'])
    .describe(
      "Where the states come from: the stack's CloudWatch alarms, local mode's evaluation of `--alarms`, or none configured.",
    ),
  readAt: EpochMs.describe('When the states were read (answers are cached for up to 30 s).'),
  alarms: z.array(AlarmEntry).describe('ALARM first, then INSUFFICIENT_DATA, then OK; by name.'),
  truncated: z
    .boolean()
    .describe('More alarms than one reading takes (1,000): the rest are left out.'),
});
export type AlarmsResponse = z.infer<typeof AlarmsResponse>;

/** An error answer (RFC 9457 problem details). */
export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  parameter: z.string().optional().describe('The request parameter at fault.'),
});
export type Problem = z.infer<typeof Problem>;

/** Content type of every error answer, from the query function and the local HTTP adapter alike. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The problem document of an error answer; `parameter` only when one is at fault. */
export function problemBody(
  status: number,
  title: string,
  detail: string,
  parameter?: string,
): Problem {
  return {
    type: 'about:blank',
    title,
    status,
    detail,
    ...(parameter !== undefined ? { parameter } : {}),
  };
}
