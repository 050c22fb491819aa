/**
 * What the eBPF source spends turning one printed tuple key into addresses
 * and ports, IPv4 and IPv6, as it does for every tuple of every drain, and
 * what reading a drain's lines and attributing its tuples to flows cost. Pure CPU on
 * synthetic keys, no bpftrace.
 */
import { BpftraceOutputParser } from '../agent/bpftrace-output.js';
import { DrainedTuples } from '../agent/drained-tuples.js';
import { decodeTupleKey, visitTupleObservations } from '../agent/ebpf-flows.js';
import { SocketIndex } from '../agent/socket-index.js';
import { bytesAllocated } from './allocation-sampler.js';
import { compared, type Figure, plain } from './harness.js';
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
 * One drain of `count` inbound IPv4 tuples of distinct clients to one
 * listener, printed as bpftrace prints it (sums, then seen values in
 * another order), and the listener's socket index.
 */
function syntheticDrain(count: number) {
  const keys = Array.from({ length: count }, (_, i) => {
    const meta = (BigInt(wire16(20_000 + (i % 40_000))) << 16n) | BigInt(wire16(53));
    const addresses = (word(198, 51, (i >> 8) & 255, 1 + (i & 255)) << 32n) | word(192, 0, 2, 1);
    return `${meta},${addresses}`;
  });
  const entries = (ks: string[], value: bigint) => ks.map((k) => `"${k}": ${value}`).join(', ');
  const lines = [
    '{"type": "printf", "data": "udpwatch drain 2000000000\\n"}',
    '{"type": "map", "data": {"@refused": 0}}',
    `{"type": "map", "data": {"@s4_0": {${entries(keys, (5n << 40n) | 320n)}}}}`,
    `{"type": "map", "data": {"@t4_0": {${entries([...keys].reverse(), (954n << 20n) | 954n)}}}}`,
    '{"type": "printf", "data": "udpwatch drained\\n"}',
  ];
  const listener = {
    localIp: '192.0.2.1',
    localPort: 53,
    family: 4 as const,
    inode: 1,
    drops: 0,
    rxQueueBytes: 0,
  };
  return { lines, index: new SocketIndex([listener], new Set(['192.0.2.1'])) };
}

/**
 * What a drain's work beside bpftrace's own costs per tuple, for one drain
 * of `count` tuples: reading bpftrace's lines (time and bytes allocated,
 * against JSON.parse of the same lines, which would also round values past
 * 2^53) and attributing the tuples to flows (bytes allocated).
 */
export async function drainFigures(count: number, rounds: number): Promise<Figure[]> {
  const { lines, index } = syntheticDrain(count);
  const drained = new DrainedTuples();
  const parser = new BpftraceOutputParser(drained);
  const parse = () => {
    drained.clear();
    for (const line of lines) parser.line(line);
  };
  let parsedKeys = 0;
  const jsonParse = () => {
    parsedKeys = 0;
    for (const line of lines) {
      const data = (JSON.parse(line) as { data: unknown }).data;
      if (typeof data === 'object' && data !== null)
        for (const map of Object.values(data))
          if (typeof map === 'object') parsedKeys += Object.keys(map).length;
    }
  };
  // As the agent attributes: each tuple handed on as one refilled observation.
  let attributed = 0;
  const attribute = () => {
    attributed = 0;
    visitTupleObservations(drained, index, { sampleRate: 1, toEpochMs: (ns) => ns / 1e6 }, () => {
      attributed++;
    });
    return attributed;
  };
  parse();
  jsonParse();
  if (drained.size !== count || parsedKeys !== 2 * count || attribute() !== count)
    throw new Error('drain: a synthetic tuple was not read or found no flow');
  const nsPerTuple = (fn: () => void) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 5; i++) fn();
    return Number(process.hrtime.bigint() - t0) / 5 / count;
  };
  const scanNs: number[] = [];
  const jsonNs: number[] = [];
  const scanBytes: number[] = [];
  const jsonBytes: number[] = [];
  const attributeBytes: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    // Alternating, the first round (JIT warm-up) not kept.
    const a = nsPerTuple(parse);
    const b = nsPerTuple(jsonParse);
    if (r === 0) continue;
    scanNs.push(a);
    jsonNs.push(b);
  }
  for (let r = 0; r < 3; r++) {
    scanBytes.push((await bytesAllocated(parse, 10)) / count);
    jsonBytes.push((await bytesAllocated(jsonParse, 10)) / count);
    parse();
    attributeBytes.push((await bytesAllocated(attribute, 10)) / count);
  }
  const note = `one drain of ${count.toLocaleString('en-US')} inbound IPv4 tuples of distinct clients to one listener (a sum and a seen value each)`;
  return [
    compared(
      'drain read: time per tuple',
      'ns',
      scanNs,
      'JSON.parse of the lines',
      jsonNs,
      'lower',
      {
        note: `${note}; before the in-place scan into typed arrays: 1,500-2,000 ns`,
      },
    ),
    compared(
      'drain read: bytes allocated per tuple',
      'B',
      scanBytes,
      'JSON.parse of the lines',
      jsonBytes,
      'lower',
      {
        note: `${note}; V8 sampling heap profile, collected objects included (648 B before the in-place scan)`,
      },
    ),
    plain('drain attribution: bytes allocated per tuple', 'B', attributeBytes, {
      note: `${note}, each handed on as the agent takes them (one refilled observation); V8 sampling heap profile, collected objects included (1,016 B before keys and peers were decoded without a string or object per tuple; 243-316 B with an observation and map entry per flow)`,
    }),
  ];
}
