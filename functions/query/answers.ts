/** Turns merged entries and raw list items into the API's answer entries. */
import type { ClientEntry, ServiceSummary } from '../../contract/api-schemas.js';
import { formatEndpoint } from '../../contract/ip-address.js';
import { SummaryItem } from '../../contract/summary.js';
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

/** A services-list item and its latest summary as an answer entry. */
export function serviceEntry(item: Raw, summary: SummaryItem | null, since: number) {
  return {
    service: str(item.service),
    firstSeen: num(item.firstSeen),
    lastSeen: num(item.lastSeen),
    active: num(item.lastSeen) >= since,
    activeClients: summary ? summary.activeClients : null,
    activeClientIps: summary ? summary.activeClientIps : null,
    countsAt: summary ? summary.until : null,
    summary: summary ? serviceSummary(summary) : null,
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
  };
}
