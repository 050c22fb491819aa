/**
 * Realistic synthetic flow lines for benchmarks: a seeded generator, so runs
 * are comparable, of what one host's agent reports in one window. Clients
 * come from many IPv4 and some IPv6 networks with ephemeral ports; services,
 * counters and timestamps vary the way real traffic does, so gzip sees
 * roughly the entropy real lines have (not one template repeated).
 */
import type { UnsequencedFlowLine } from '../agent/record-packer.js';
import type { BlockEndpoint } from '../contract/block.js';
import { normalizeIp } from '../contract/ip-address.js';

/** A small, fast, seeded PRNG (mulberry32): same seed, same sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Services a host might run, with their port, process and typical datagram sizes. */
const SERVICES = [
  { service: 'dns', port: 53, process: 'named', inSize: 70, outSize: 180 },
  { service: 'game-eu', port: 27015, process: 'srcds_linux', inSize: 90, outSize: 600 },
  { service: 'voip-media', port: 16384, process: 'rtpengine', inSize: 172, outSize: 172 },
  { service: 'telemetry', port: 8125, process: 'statsd', inSize: 300, outSize: 0 },
  { service: 'quic-edge', port: 443, process: 'node', inSize: 1200, outSize: 1350 },
] as const;

/** Options of syntheticFlowLines. */
export interface SyntheticOptions {
  count: number;
  seed?: number;
  /** Agent and host the lines come from. */
  agentId?: string;
  host?: string;
  /** Window end (epoch ms); lines are last seen within the second before it. */
  now?: number;
  /** Distinct client IPs to draw from (default: count, so most flows are distinct clients). */
  clients?: number;
}

/** A client IP number i as text: mostly IPv4 from spread-out networks, one in eight IPv6. */
export function clientIp(i: number, rand: () => number): string {
  if (i % 8 === 7) {
    const h = (n: number) => Math.floor(rand() * n).toString(16);
    return `2001:db8:${h(0xffff)}:${h(0xffff)}::${h(0xffff)}`;
  }
  const a = [198, 203, 100, 45, 81, 91, 185, 37][i % 8]!;
  return `${a}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${1 + Math.floor(rand() * 254)}`;
}

/** `count` flow lines of one window from one agent. */
export function syntheticFlowLines(options: SyntheticOptions): UnsequencedFlowLine[] {
  const rand = seededRandom(options.seed ?? 1);
  const now = options.now ?? Date.now();
  const agentId = options.agentId ?? 'i-0a1b2c3d4e5f60718';
  const host = options.host ?? 'ip-10-0-17-42.eu-west-1.compute.internal';
  const clientCount = Math.max(1, options.clients ?? options.count);
  const ips = Array.from({ length: clientCount }, (_, i) => clientIp(i, rand));
  const lines: UnsequencedFlowLine[] = [];
  for (let i = 0; i < options.count; i++) {
    const svc = SERVICES[Math.floor(rand() * rand() * SERVICES.length)]!;
    const pkts = 1 + Math.floor(-Math.log(1 - rand()) * 20);
    const pktsOut = svc.outSize === 0 ? 0 : Math.max(1, Math.round(pkts * (0.5 + rand())));
    const jitter = (size: number) => Math.round(size * (0.7 + 0.6 * rand()));
    const lastSeen = now - Math.floor(rand() * 1000);
    const line: UnsequencedFlowLine = {
      v: 1,
      type: 'flow',
      agentId,
      host,
      service: svc.service,
      source: rand() < 0.7 ? 'conntrack' : 'hook',
      localIp: '10.0.17.42',
      localPort: svc.port,
      remoteIp: ips[i % clientCount]!,
      remotePort: 1024 + Math.floor(rand() * 64_511),
      firstSeen: lastSeen - Math.floor(rand() * 600_000),
      lastSeen,
      pktsIn: pkts,
      bytesIn: pkts * jitter(svc.inSize),
      pktsOut,
      bytesOut: pktsOut * jitter(svc.outSize || 1),
      sampleRate: 1,
      pid: 1000 + SERVICES.indexOf(svc) * 37,
      process: svc.process,
    };
    lines.push(line);
  }
  return lines;
}

/** One host's minute of traffic, as v1 flow lines and as the block endpoints of each service. */
export interface SyntheticHostMinute {
  /** One line per endpoint, counters for the whole minute (what a v1 agent at a 60 s refresh sends). */
  lines: UnsequencedFlowLine[];
  /** The same flows as block endpoints, per service, in the order the services first appear. */
  byService: Map<string, BlockEndpoint[]>;
}

/**
 * `endpoints` client endpoints of one host active in minute `minute`: the
 * flows of syntheticFlowLines with a minute's worth of packets (active for a
 * random number of its seconds) and first/last seconds within the minute.
 */
export function syntheticHostMinute(options: {
  endpoints: number;
  minute: number;
  seed?: number;
  agentId?: string;
  host?: string;
}): SyntheticHostMinute {
  const start = options.minute * 60_000;
  const base = syntheticFlowLines({
    count: options.endpoints,
    seed: options.seed ?? 1,
    now: start + 60_000,
    ...(options.agentId ? { agentId: options.agentId } : {}),
    ...(options.host ? { host: options.host } : {}),
  });
  const rand = seededRandom((options.seed ?? 1) ^ 0x5eed);
  const lines: UnsequencedFlowLine[] = [];
  const byService = new Map<string, BlockEndpoint[]>();
  for (const l of base) {
    const firstSecond = Math.floor(rand() * 60);
    const lastSecond = firstSecond + Math.floor(rand() * (60 - firstSecond));
    const seconds = lastSecond - firstSecond + 1;
    const line: UnsequencedFlowLine = {
      ...l,
      firstSeen: start + firstSecond * 1000 + Math.floor(rand() * 1000),
      lastSeen: start + lastSecond * 1000 + 999,
      pktsIn: l.pktsIn * seconds,
      bytesIn: l.bytesIn * seconds,
      pktsOut: l.pktsOut * seconds,
      bytesOut: l.bytesOut * seconds,
    };
    if (line.lastSeen < line.firstSeen) line.lastSeen = line.firstSeen;
    lines.push(line);
    const endpoint: BlockEndpoint = {
      ip: normalizeIp(line.remoteIp) ?? line.remoteIp,
      port: line.remotePort,
      localIp: line.localIp,
      localPort: line.localPort,
      pktsIn: line.pktsIn,
      bytesIn: line.bytesIn,
      pktsOut: line.pktsOut,
      bytesOut: line.bytesOut,
      firstSecond,
      lastSecond,
      source: line.source,
      sampleRate: line.sampleRate,
      owner: { pid: line.pid!, process: line.process! },
    };
    const list = byService.get(line.service) ?? [];
    list.push(endpoint);
    byService.set(line.service, list);
  }
  return { lines, byService };
}
