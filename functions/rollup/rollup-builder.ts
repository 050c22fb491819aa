/**
 * Builds the hourly roll-up of one (service, hour, shard) from that hour's
 * minute parts. Pure: the caller reads the parts and writes the result.
 *
 * A roll-up keeps one block per agent (so hosts, and a host's own view, stay
 * exact): each endpoint (ip, port, localIp, localPort) with its counters
 * summed over the hour and its first/last seen exact to the second, encoded
 * as described in functions/store/stored-part.ts (minute offsets in the
 * codec's second fields, seconds in the extra `t` column). Source, pre-NAT
 * address, owner and client id are those of the endpoint's latest minute
 * (the most precise source on a tie). The block's minute is the hour's first
 * minute and its seq the hour. A shard with no data in the hour gets one
 * marker part without data, so "no roll-up yet" and "nothing to roll up"
 * differ.
 */
import {
  type Block,
  type BlockEndpoint,
  MAX_BLOCK_COUNTER,
  MINUTE_MS,
} from '../../contract/block.js';
import { blockHash, sealEncodedParts } from '../../contract/block-codec.js';
import { ROLLUP_MINUTES } from '../../contract/table-keys.js';
import { FLOW_SOURCES } from '../../contract/wire.js';
import { endpointTimes, type StoredPart } from '../store/stored-part.js';

/** One part of a roll-up set, ready to store. */
export interface RollupPart {
  /** Index within the set (the roll-up sort key). */
  part: number;
  parts: number;
  /** Absent on the marker of a shard with no data. */
  data?: Buffer;
  seconds?: Buffer;
  /** Hash of data + seconds. */
  hash: string;
  /** Content id of the whole set. */
  set: string;
  agentId?: string;
  host?: string;
  endpoints: number;
  /** Latest packet of the part, epoch ms (the hour's start for the marker). */
  lastMs: number;
}

interface Acc {
  e: BlockEndpoint;
  firstMs: number;
  lastMs: number;
}

const rank = (s: BlockEndpoint['source']): number => FLOW_SOURCES.indexOf(s);
const keyOf = (e: BlockEndpoint): string => `${e.ip}|${e.port}|${e.localIp}|${e.localPort}`;
const add = (a: number, b: number): number => Math.min(MAX_BLOCK_COUNTER, a + b);

/** Builds the roll-up set of one shard of a service-hour from its minute parts. */
export function buildRollup(
  service: string,
  hour: number,
  parts: readonly StoredPart[],
): RollupPart[] {
  const hourStart = hour * ROLLUP_MINUTES * MINUTE_MS;
  const byAgent = new Map<
    string,
    { host: string; endpoints: Map<string, Acc>; socket?: Block['socket'] }
  >();
  for (const p of parts) {
    const b = p.block;
    const agentKey = `${b.agentId}\u0000${b.host}`;
    let agent = byAgent.get(agentKey);
    if (!agent) {
      agent = { host: b.host, endpoints: new Map() };
      byAgent.set(agentKey, agent);
    }
    if (b.socket) {
      agent.socket = {
        rxQueueBytes: Math.max(agent.socket?.rxQueueBytes ?? 0, b.socket.rxQueueBytes),
        drops: add(agent.socket?.drops ?? 0, b.socket.drops),
      };
    }
    for (let i = 0; i < b.endpoints.length; i++) {
      const e = b.endpoints[i]!;
      const [firstMs, lastMs] = endpointTimes(p, i);
      const k = keyOf(e);
      const acc = agent.endpoints.get(k);
      if (!acc) {
        agent.endpoints.set(k, { e: { ...e }, firstMs, lastMs });
        continue;
      }
      const later =
        lastMs > acc.lastMs || (lastMs === acc.lastMs && rank(e.source) < rank(acc.e.source));
      const base = later ? e : acc.e;
      acc.e = {
        ...base,
        pktsIn: add(acc.e.pktsIn, e.pktsIn),
        bytesIn: add(acc.e.bytesIn, e.bytesIn),
        pktsOut: add(acc.e.pktsOut, e.pktsOut),
        bytesOut: add(acc.e.bytesOut, e.bytesOut),
        sampleRate: Math.max(acc.e.sampleRate, e.sampleRate),
      };
      acc.firstMs = Math.min(acc.firstMs, firstMs);
      acc.lastMs = Math.max(acc.lastMs, lastMs);
    }
  }
  const built: Omit<RollupPart, 'part' | 'parts' | 'set'>[] = [];
  for (const [agentKey, agent] of [...byAgent].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const agentId = agentKey.slice(0, agentKey.indexOf('\u0000'));
    const seconds = new Map<string, [number, number]>();
    let lastMs = hourStart;
    const endpoints = [...agent.endpoints.values()].map(({ e, firstMs, lastMs: last }) => {
      const f = (firstMs - hourStart) / 1000;
      const l = (last - hourStart) / 1000;
      seconds.set(keyOf(e), [f % 60, l % 60]);
      lastMs = Math.max(lastMs, last);
      return { ...e, firstSecond: Math.floor(f / 60), lastSecond: Math.floor(l / 60) };
    });
    const parts = sealEncodedParts(
      {
        agentId,
        host: agent.host,
        service,
        minute: hour * ROLLUP_MINUTES,
        seq: hour,
        ...(agent.socket ? { socket: agent.socket } : {}),
      },
      endpoints,
    );
    for (const { block, data } of parts) {
      const t = Buffer.alloc(block.endpoints.length * 2);
      let partLast = hourStart;
      block.endpoints.forEach((e, i) => {
        const [f, l] = seconds.get(keyOf(e))!;
        t[2 * i] = f;
        t[2 * i + 1] = l;
        partLast = Math.max(partLast, hourStart + (e.lastSecond * 60 + l) * 1000);
      });
      built.push({
        data,
        seconds: t,
        hash: blockHash(Buffer.concat([data, t])),
        agentId,
        host: agent.host,
        endpoints: block.endpoints.length,
        lastMs: partLast,
      });
    }
  }
  if (built.length === 0) {
    built.push({
      hash: blockHash(Buffer.from(`empty|${service}|${hour}`)),
      endpoints: 0,
      lastMs: hourStart,
    });
  }
  const set = blockHash(Buffer.from(built.map((b) => b.hash).join(',')));
  return built.map((b, part) => ({ ...b, part, parts: built.length, set }));
}
