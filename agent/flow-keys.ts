/**
 * Compact keys and shared strings for the agent's per-flow maps. A table of
 * 100,000 flows holds a key per flow in each map: a key built by string
 * concatenation costs a tree of strings per flow (and garbage every cycle it
 * is rebuilt), a number costs at most a heap number. So a flow with an IPv4
 * peer is keyed by a number: a small id of its local side (service, local
 * address and port: few per host) and the peer's address and port; other
 * flows (IPv6 peers, a host with unusually many local sides) by a string.
 */

import { detached } from '../contract/detached-string.js';
import { ipv4Number } from '../contract/ip-address.js';

/** A flow's key in the agent's maps: a number for IPv4 peers, else a string. */
export type FlowKey = number | string;

/** The peer part of a key fits 48 bits (32-bit address, 16-bit port). */
const PEER_SPAN = 2 ** 48;
/** Local ids below this keep number keys under 2^53 (exact doubles). */
const NUMBER_LOCAL_IDS = 32;
/** Distinct local sides remembered; past this, keys are full strings (still correct, bigger). */
const MAX_LOCAL_IDS = 65_536;

/** The peer part of a key: a number for an IPv4 peer, else `ip|port`. */
export function peerKey(remoteIp: string, remotePort: number): FlowKey {
  const v4 = ipv4Number(remoteIp);
  return v4 < 0 ? `${remoteIp}|${remotePort}` : v4 * 65_536 + remotePort;
}

/** Hands out flow keys; local sides get small ids on first sight. */
export class FlowKeys {
  private readonly locals = new Map<string, number>();
  /** The previous call's local side and its id: rows of one report share their local side. */
  private last = { service: '', localIp: '', localPort: -1, id: undefined as number | undefined };

  /** The key of a flow of local side (service, localIp, localPort) with the given peer. */
  key(service: string, localIp: string, localPort: number, remoteIp: string, remotePort: number) {
    const last = this.last;
    let id: number | undefined;
    let local: string | undefined;
    if (
      last.id !== undefined &&
      last.localPort === localPort &&
      last.service === service &&
      last.localIp === localIp
    ) {
      id = last.id;
    } else {
      local = `${service}|${localIp}|${localPort}`;
      id = this.locals.get(local);
      if (id === undefined && this.locals.size < MAX_LOCAL_IDS) {
        id = this.locals.size;
        this.locals.set(local, id);
      }
      this.last = { service, localIp, localPort, id };
    }
    if (id === undefined) return `${service}|${localIp}|${localPort}|${remoteIp}|${remotePort}`;
    const peer = id < NUMBER_LOCAL_IDS ? peerKey(remoteIp, remotePort) : null;
    return typeof peer === 'number' ? id * PEER_SPAN + peer : `${id}|${remoteIp}|${remotePort}`;
  }
}

/**
 * One shared instance per distinct text (service names, addresses, process
 * names), so 100,000 flows of one daemon hold one copy of its name instead of
 * one parsed from every report. Bounded: starts over past `max` entries.
 */
export class StringPool {
  private readonly pool = new Map<string, string>();

  constructor(private readonly max: number = 16_384) {}

  /** The pooled instance equal to `text`. */
  get(text: string): string {
    const have = this.pool.get(text);
    if (have !== undefined) return have;
    if (this.pool.size >= this.max) this.pool.clear();
    const own = detached(text);
    this.pool.set(own, own);
    return own;
  }
}
