/** Turns merged entries and raw list items into the API's answer entries. */
import type { ClientEntry, ServiceSummary } from '../../contract/api-schemas.js';
import { formatEndpoint } from '../../contract/ip-address.js';
import { SummaryItem } from '../../contract/summary.js';
import {
  type SourceState,
  SourceStateSchema,
  type UnobservedService,
  UnobservedServiceSchema,
} from '../../contract/wire.js';
import type { MergedClient } from '../store/endpoint-merge.js';

type Raw = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const strings = (v: unknown): string[] =>
  v instanceof Set ? [...v].map(String).sort() : Array.isArray(v) ? v.map(String).sort() : [];

/** A merged endpoint or IP as an answer entry (`host` when listing one host's clients). */
export function clientEntry(m: MergedClient, host?: string): ClientEntry {
  return {
    service: m.service,
    ip: m.ip,
    ...(m.port !== undefined ? { port: m.port, endpoint: formatEndpoint(m.ip, m.port) } : {}),
    ...(host !== undefined ? { host } : {}),
    firstSeen: m.firstSeen,
    lastSeen: m.lastSeen,
    pktsIn: m.pktsIn,
    bytesIn: m.bytesIn,
    pktsOut: m.pktsOut,
    bytesOut: m.bytesOut,
    hosts: m.hosts,
    sources: m.sources,
    natFrom: m.natFrom,
    owners: m.owners,
    clientIds: m.clientIds,
  };
}

/** A stored summary item, or null when absent or not of the summary's shape. */
export function parseSummary(item: Raw | undefined): SummaryItem | null {
  if (!item) return null;
  const parsed = SummaryItem.safeParse(item);
  return parsed.success ? parsed.data : null;
}

function serviceSummary(s: SummaryItem): ServiceSummary {
  return {
    minute: s.minute,
    computedAt: s.computedAt,
    oneWay: s.oneWay,
    pktsIn: s.pktsIn,
    bytesIn: s.bytesIn,
    pktsOut: s.pktsOut,
    bytesOut: s.bytesOut,
    socket: s.socket,
    agents: s.agents,
    hosts: s.hosts,
    topByPackets: s.topByPackets,
    topByBytes: s.topByBytes,
  };
}

/** The items of a stored list that fit the schema (a bad one is skipped, not trusted). */
function validItems<T>(
  v: unknown,
  schema: { safeParse(x: unknown): { success: boolean; data?: T } },
) {
  if (!Array.isArray(v)) return [];
  const out: T[] = [];
  for (const x of v.slice(0, 64)) {
    const p = schema.safeParse(x);
    if (p.success) out.push(p.data as T);
  }
  return out;
}

/** Longest unobservedReason an answer gives. */
const MAX_ANSWER_REASON = 600;

/**
 * Services that agents reporting within the window (last heartbeat at or
 * after `since`) name as busy with unobserved peers, with the reason of the
 * first such host and how many others say so.
 */
export function unobservedServices(
  agentItems: Raw[],
  since: number,
): Map<string, { reason: string; at: number }> {
  const byService = new Map<string, string[]>();
  const atOf = new Map<string, number>();
  for (const a of agentItems) {
    if (num(a.lastHeartbeat) < since) continue;
    for (const u of validItems<UnobservedService>(a.unobserved, UnobservedServiceSchema)) {
      const list = byService.get(u.service) ?? [];
      list.push(`${str(a.host) || str(a.agentId)}: udp port ${u.port}: ${u.reason}`);
      byService.set(u.service, list);
      atOf.set(u.service, Math.max(atOf.get(u.service) ?? 0, num(a.lastHeartbeat)));
    }
  }
  const out = new Map<string, { reason: string; at: number }>();
  for (const [service, reasons] of byService) {
    reasons.sort();
    const more = reasons.length > 1 ? ` (and ${reasons.length - 1} more)` : '';
    out.set(service, {
      reason: `${reasons[0]!.slice(0, MAX_ANSWER_REASON)}${more}`,
      at: atOf.get(service) ?? since,
    });
  }
  return out;
}

/** The unobserved fields of a service's answer entry. */
export function unobservedFields(reason: string | undefined) {
  return reason === undefined
    ? { peersUnobserved: false }
    : { peersUnobserved: true, unobservedReason: reason };
}

/** A services-list item and its latest summary as an answer entry. */
export function serviceEntry(
  item: Raw,
  summary: SummaryItem | null,
  since: number,
  unobservedReason?: string,
) {
  return {
    service: str(item.service),
    firstSeen: num(item.firstSeen),
    lastSeen: num(item.lastSeen),
    active: num(item.lastSeen) >= since,
    activeClients: summary ? summary.activeClients : null,
    activeClientIps: summary ? summary.activeClientIps : null,
    countsAt: summary ? summary.until : null,
    summary: summary ? serviceSummary(summary) : null,
    ...unobservedFields(unobservedReason),
  };
}

/** A service no block named yet but an agent flags as busy with unobserved peers. */
export function unobservedOnlyEntry(service: string, reason: string, at: number) {
  return {
    service,
    firstSeen: at,
    lastSeen: at,
    // Its clients were not seen, so none is active.
    active: false,
    activeClients: null,
    activeClientIps: null,
    countsAt: null,
    summary: null,
    ...unobservedFields(reason),
  };
}

/** An agents-list item as an answer entry. */
export function agentEntry(item: Raw, since: number) {
  return {
    agentId: str(item.agentId),
    host: str(item.host),
    lastHeartbeat: num(item.lastHeartbeat),
    reporting: num(item.lastHeartbeat) >= since,
    flows: num(item.flows),
    dropped: num(item.dropped),
    spooled: num(item.spooled),
    sources: strings(item.sources),
    sourceStates: validItems<SourceState>(item.sourceStates, SourceStateSchema),
    unobserved: validItems<UnobservedService>(item.unobserved, UnobservedServiceSchema),
    hookUnmatched: num(item.hookUnmatched),
  };
}
