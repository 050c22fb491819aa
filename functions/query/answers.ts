/** Turns raw table items into the API's answer entries. */

import type { ClientEntry } from '../../contract/api-schemas.js';
import { formatEndpoint } from '../../contract/ip-address.js';

type Raw = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const strings = (v: unknown): string[] =>
  v instanceof Set ? [...v].map(String).sort() : Array.isArray(v) ? v.map(String).sort() : [];

/** An endpoint, client-IP or host's-client item as an answer entry. */
export function clientEntry(item: Raw): ClientEntry {
  const port = typeof item.port === 'number' ? item.port : undefined;
  const ip = str(item.ip);
  return {
    service: str(item.service),
    ip,
    ...(port !== undefined ? { port, endpoint: formatEndpoint(ip, port) } : {}),
    ...(typeof item.host === 'string' ? { host: item.host } : {}),
    firstSeen: num(item.firstSeen),
    lastSeen: num(item.lastSeen),
    pktsIn: num(item.pktsIn),
    bytesIn: num(item.bytesIn),
    pktsOut: num(item.pktsOut),
    bytesOut: num(item.bytesOut),
    hosts: strings(item.hosts),
    sources: strings(item.sources),
  };
}

/** A services-list item as an answer entry. */
export function serviceEntry(item: Raw, since: number) {
  const nullable = (v: unknown): number | null => (typeof v === 'number' ? v : null);
  return {
    service: str(item.service),
    firstSeen: num(item.firstSeen),
    lastSeen: num(item.lastSeen),
    active: num(item.lastSeen) >= since,
    activeClients: nullable(item.activeClients),
    activeClientIps: nullable(item.activeClientIps),
    countsAt: nullable(item.countsAt),
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
