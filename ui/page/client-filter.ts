/**
 * The client table's filter: space-separated terms that must all match. A
 * term is an IP (`192.0.2.7`), a CIDR block (`10.0.0.0/8`, `2001:db8::/32`)
 * or a port (`:53`), matched against a client's address and its pre-NAT
 * addresses.
 */
import { parseIpv4, parseIpv6 } from '../../contract/ip-address.js';

/** One filter term, ready to test addresses against. */
type Term =
  | { kind: 'net'; bits: number[]; prefix: number; v6: boolean }
  | { kind: 'port'; port: number };

/** A parsed filter, or the term that could not be read. */
export type ClientFilter =
  | { ok: true; terms: Term[]; test(entry: FilterableClient): boolean }
  | { ok: false; error: string };

/** What the filter looks at in a client entry. */
export interface FilterableClient {
  ip: string;
  port?: number;
  natFrom?: string[];
}

/** Most terms one filter holds: more is not a filter anyone types. */
const MAX_TERMS = 16;

/** An address as 32 or 128 bits (IPv4-mapped IPv6 folded to IPv4). */
function addressBits(ip: string): { bits: number[]; v6: boolean } | null {
  const v4 = parseIpv4(ip);
  if (v4) return { bits: bytesToBits(v4, 8), v6: false };
  const v6 = parseIpv6(ip);
  if (!v6) return null;
  if (v6.slice(0, 5).every((w) => w === 0) && v6[5] === 0xffff) {
    return {
      bits: bytesToBits([v6[6]! >> 8, v6[6]! & 255, v6[7]! >> 8, v6[7]! & 255], 8),
      v6: false,
    };
  }
  return { bits: bytesToBits(v6, 16), v6: true };
}

function bytesToBits(words: readonly number[], width: number): number[] {
  const bits: number[] = [];
  for (const w of words) for (let i = width - 1; i >= 0; i--) bits.push((w >> i) & 1);
  return bits;
}

/** `ip:port` or `[ip]:port` split into its parts. */
export function splitEndpoint(text: string): { ip: string; port?: number } {
  const v6 = /^\[(.+)\]:(\d{1,5})$/.exec(text);
  if (v6) return { ip: v6[1]!, port: Number(v6[2]) };
  const v4 = /^([^:]+):(\d{1,5})$/.exec(text);
  if (v4) return { ip: v4[1]!, port: Number(v4[2]) };
  return { ip: text };
}

function parseTerm(term: string): Term | string {
  const port = /^:(\d{1,5})$/.exec(term);
  if (port) {
    const n = Number(port[1]);
    return n <= 65535 ? { kind: 'port', port: n } : `${term}: a port is 0 to 65535`;
  }
  const slash = term.indexOf('/');
  const addr = slash < 0 ? term : term.slice(0, slash);
  const parsed = addressBits(addr);
  if (!parsed) return `${term}: not an IP, a CIDR block (10.0.0.0/8) or a port (:53)`;
  const max = parsed.v6 ? 128 : 32;
  let prefix = max;
  if (slash >= 0) {
    const p = term.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return `${term}: prefix length is 0 to ${max}`;
    prefix = Number(p);
  }
  return { kind: 'net', bits: parsed.bits, prefix, v6: parsed.v6 };
}

function inNet(term: Extract<Term, { kind: 'net' }>, ip: string): boolean {
  const a = addressBits(ip);
  if (!a || a.v6 !== term.v6) return false;
  for (let i = 0; i < term.prefix; i++) if (a.bits[i] !== term.bits[i]) return false;
  return true;
}

function termMatches(term: Term, entry: FilterableClient): boolean {
  const addresses = [
    { ip: entry.ip, port: entry.port },
    ...(entry.natFrom ?? []).map((e) => splitEndpoint(e)),
  ];
  return addresses.some((a) => (term.kind === 'port' ? a.port === term.port : inNet(term, a.ip)));
}

/** Parses filter text; an empty filter matches everything. */
export function parseClientFilter(text: string): ClientFilter {
  const words = text.trim().split(/\s+/).filter(Boolean);
  if (words.length > MAX_TERMS) return { ok: false, error: `at most ${MAX_TERMS} terms` };
  const terms: Term[] = [];
  for (const w of words) {
    const t = parseTerm(w);
    if (typeof t === 'string') return { ok: false, error: t };
    terms.push(t);
  }
  return {
    ok: true,
    terms,
    test: (entry) => terms.every((t) => termMatches(t, entry)),
  };
}
