/**
 * What the eBPF source spends turning one printed tuple key into addresses
 * and ports, IPv4 and IPv6, as it does for every tuple of every drain, and
 * what attributing a drain's tuples to flows allocates. Pure CPU on
 * synthetic keys, no bpftrace.
 */
import { decodeTupleKey, tuplesToObservations } from '../agent/ebpf-flows.js';
import { SocketIndex } from '../agent/socket-index.js';
import { bytesAllocated } from './allocation-sampler.js';
import { type Figure, plain } from './harness.js';
import { seededRandom } from './synthetic-flows.js';

/** A key as the program prints it, for an inbound tuple between two random addresses. */
function randomKey(v6: boolean, random: () => number): string {
  const u32 = () => BigInt(Math.floor(random() * 2 ** 32));
  const u64 = () => (u32() << 32n) | u32();
  const meta = ((v6 ? 1n : 0n) << 32n) | u32();
  return (v6 ? [meta, u64(), u64(), u64(), u64()] : [meta, u64()]).join(',');
}

/** ns per key of `decode` over `keys`, `reps` times round. */
function nsPerKey(keys: readonly string[], reps: number, decode: (k: string) => unknown): number {
  let kept = 0;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < reps; r++) for (const k of keys) if (decode(k) !== null) kept++;
  const ns = Number(process.hrtime.bigint() - t0);
  if (kept !== keys.length * reps) throw new Error('key decode: a synthetic key did not decode');
  return ns / kept;
}

/** The decode figures: `rounds` rounds over `count` keys of each family. */
export function keyDecodeFigures(rounds: number, count: number): Figure[] {
  const random = seededRandom(7);
  const v4 = Array.from({ length: count }, () => randomKey(false, random));
  const v6 = Array.from({ length: count }, () => randomKey(true, random));
  const ns4: number[] = [];
  const ns6: number[] = [];
  // The first round warms the JIT and is not kept.
  for (let r = 0; r <= rounds; r++) {
    const m4 = nsPerKey(v4, 3, decodeTupleKey);
    const m6 = nsPerKey(v6, 3, decodeTupleKey);
    if (r === 0) continue;
    ns4.push(m4);
    ns6.push(m6);
  }
  const note = `${count.toLocaleString('en-US')} random keys, decoded three times a round`;
  return [
    plain('tuple key decode, IPv4', 'ns', ns4, { note }),
    plain('tuple key decode, IPv6', 'ns', ns6, { note }),
  ];
}

/** A 16-bit value as the kernel's network-order word reads on this host. */
const wire16 = (v: number): number => ((v & 0xff) << 8) | (v >> 8);
/** IPv4 bytes as the 32-bit word the program reads in host (little-endian) order. */
const word = (a: number, b: number, c: number, d: number): bigint =>
  BigInt(((d << 24) | (c << 16) | (b << 8) | a) >>> 0);

/**
 * Bytes attribution (tuplesToObservations) allocates per tuple, garbage
 * included, for one drain of `count` inbound IPv4 tuples from distinct
 * clients to one listener: the drain's work beside bpftrace's own.
 */
export async function attributionAllocationFigure(count: number): Promise<Figure> {
  const tuples = Array.from({ length: count }, (_, i) => {
    const meta = (BigInt(wire16(20_000 + (i % 40_000))) << 16n) | BigInt(wire16(53));
    const addresses = (word(198, 51, (i >> 8) & 255, 1 + (i & 255)) << 32n) | word(192, 0, 2, 1);
    return { key: `${meta},${addresses}`, packets: 5, bytes: 320, firstNs: 1e9, lastNs: 2e9 };
  });
  const listener = {
    localIp: '192.0.2.1',
    localPort: 53,
    family: 4 as const,
    inode: 1,
    drops: 0,
    rxQueueBytes: 0,
  };
  const index = new SocketIndex([listener], new Set(['192.0.2.1']));
  const attribute = () =>
    tuplesToObservations(tuples, index, { sampleRate: 1, toEpochMs: (ns) => ns / 1e6 });
  if (attribute().length !== count) throw new Error('attribution: a synthetic tuple found no flow');
  const perTuple: number[] = [];
  for (let r = 0; r < 3; r++) perTuple.push((await bytesAllocated(attribute, 10)) / count);
  return plain('drain attribution: bytes allocated per tuple', 'B', perTuple, {
    note: `${count.toLocaleString('en-US')} inbound IPv4 tuples of distinct clients to one listener, one drain; V8 sampling heap profile, collected objects included (1,016 B before keys and peers were decoded without a string or object per tuple)`,
  });
}
