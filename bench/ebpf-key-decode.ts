/**
 * What the eBPF source spends turning one printed tuple key into addresses
 * and ports, IPv4 and IPv6, as it does for every tuple of every drain. Pure
 * CPU on synthetic keys, no bpftrace.
 */
import { decodeTupleKey } from '../agent/ebpf-flows.js';
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
