import { brotliCompressSync, brotliDecompressSync } from 'node:zlib';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  type Block,
  type BlockEndpoint,
  MAX_BLOCK_COUNTER,
  MAX_INFLATED_PART_BYTES,
  MAX_PART_BYTES,
  MAX_PART_ENDPOINTS,
} from '../../../contract/block.js';
import {
  AGENT_BLOCK_QUALITY,
  type BlockHead,
  blockHash,
  compareEndpoints,
  decodeBlock,
  encodeBlock,
  encodeBlockUnchecked,
  isBlockRecord,
  mergeEndpoints,
  SMALLEST_BLOCK_QUALITY,
  sealEncodedParts,
  sealParts,
} from '../../../contract/block-codec.js';
import { formatIpWords, ipv4Number, parseIpv6 } from '../../../contract/ip-address.js';
import { FLOW_SOURCES } from '../../../contract/wire.js';

const MINUTE = 29_400_000;

// Addresses drawn partly from small pools, so endpoints share IPs and prefixes.
const ipv4 = fc.oneof(
  fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.')),
  fc.nat(5).map((i) => `198.51.100.${i}`),
);
const ipv6 = fc.oneof(
  fc
    .array(fc.nat(0xffff), { minLength: 8, maxLength: 8 })
    .map(formatIpWords)
    .filter((t) => t.includes(':')),
  fc.nat(5).map((i) => `2001:db8::${i + 1}`),
);
const anyIp = fc.oneof(ipv4, ipv4, ipv6);
const port = fc.oneof(
  fc.integer({ min: 0, max: 65_535 }),
  fc.integer({ min: 40_000, max: 40_004 }),
);
const counter = fc.oneof(fc.nat(5000), fc.constant(MAX_BLOCK_COUNTER), fc.nat(MAX_BLOCK_COUNTER));
const name = fc.oneof(
  fc.stringMatching(/^[a-z0-9.#_-]{1,24}$/),
  fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: 12 })
    .filter((s) => /^[^\s\u0000-\u001f]+$/.test(s)),
);
const text = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 40 })
  .filter((s) => /^[^\u0000-\u001f\u007f]+$/.test(s));

const endpoint: fc.Arbitrary<BlockEndpoint> = fc
  .record(
    {
      ip: anyIp,
      port,
      localIp: fc.constantFrom('192.0.2.1', '192.0.2.2', '2001:db8::53'),
      localPort: fc.constantFrom(53, 123, 5000),
      pktsIn: counter,
      bytesIn: counter,
      pktsOut: counter,
      bytesOut: counter,
      seconds: fc.tuple(fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 59 })),
      source: fc.constantFrom(...FLOW_SOURCES),
      sampleRate: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 1_000_000 })),
      natFromIp: fc.option(anyIp, { nil: undefined }),
      natFromPort: fc.option(port, { nil: undefined }),
      owner: fc.option(
        fc.oneof(
          fc.record({ pid: fc.integer({ min: 0, max: 4_194_304 }) }),
          fc.record({ process: text }),
          fc.record({ pid: fc.integer({ min: 0, max: 4_194_304 }), process: text }),
        ),
        { nil: undefined },
      ),
      clientId: fc.option(fc.oneof(text, fc.constantFrom('c1', 'c2')), { nil: undefined }),
    },
    {
      requiredKeys: [
        'ip',
        'port',
        'localIp',
        'localPort',
        'pktsIn',
        'bytesIn',
        'pktsOut',
        'bytesOut',
        'seconds',
        'source',
        'sampleRate',
      ],
    },
  )
  .map(({ seconds, ...e }) => {
    const out: BlockEndpoint = {
      ...e,
      firstSecond: Math.min(...seconds),
      lastSecond: Math.max(...seconds),
    };
    for (const k of Object.keys(out) as (keyof BlockEndpoint)[])
      if (out[k] === undefined) delete out[k];
    return out;
  });

const head: fc.Arbitrary<BlockHead> = fc
  .record({
    agentId: name,
    host: name,
    service: name,
    minute: fc.integer({ min: 15_778_080, max: 68_374_080 }),
    seq: fc.oneof(fc.nat(1000), fc.constant(Number.MAX_SAFE_INTEGER)),
    socket: fc.option(fc.record({ rxQueueBytes: counter, drops: counter }), { nil: undefined }),
  })
  .map(({ socket, ...h }) => (socket ? { ...h, socket: { ...socket } } : { ...h }));

const block: fc.Arbitrary<Block> = fc
  .tuple(head, fc.array(endpoint, { maxLength: 60 }), fc.integer({ min: 1, max: 1024 }), fc.nat())
  .map(([h, eps, parts, p]) => ({ ...h, part: p % parts, parts, endpoints: mergeEndpoints(eps) }));

function baseEndpoint(i: number, over: Partial<BlockEndpoint> = {}): BlockEndpoint {
  return {
    ip: `198.51.100.${i % 200}`,
    port: 40_000 + i,
    localIp: '192.0.2.1',
    localPort: 53,
    pktsIn: 10 + i,
    bytesIn: 1000 + i,
    pktsOut: 5,
    bytesOut: 500,
    firstSecond: 1,
    lastSecond: 30,
    source: 'hook',
    sampleRate: 1,
    ...over,
  };
}

const HEAD: BlockHead = {
  agentId: 'agent-a',
  host: 'host-1',
  service: 'dns',
  minute: MINUTE,
  seq: 7,
};

function validBlock(endpoints: BlockEndpoint[] = [baseEndpoint(0), baseEndpoint(1)]): Block {
  return { ...HEAD, part: 0, parts: 1, endpoints };
}

/** Decodes and returns the reason, failing the test when the bytes decode. */
function reasonOf(data: Uint8Array): string {
  const out = decodeBlock(data);
  if (out.ok) throw new Error('expected the bytes to be rejected');
  return out.reason;
}

const body = (data: Buffer): Buffer => brotliDecompressSync(data.subarray(4));
const wrap = (b: Uint8Array): Buffer =>
  Buffer.concat([Buffer.from('UWB'), Buffer.of(2), brotliCompressSync(b)]);
const shuffle = <T>(items: readonly T[], seed: number): T[] => {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
};

describe('encodeBlock / decodeBlock', () => {
  test.prop([block])('round-trips every valid block', (b) => {
    const out = decodeBlock(encodeBlock(b));
    expect(out).toStrictEqual({ ok: true, block: b });
  });

  test.prop([block])('is deterministic: same content, same bytes and hash', (b) => {
    const copy = structuredClone(b);
    const a = encodeBlock(b);
    const c = encodeBlock(copy);
    expect(c.equals(a)).toBe(true);
    expect(blockHash(c)).toBe(blockHash(a));
    expect(isBlockRecord(a)).toBe(true);
  });

  test.prop([block, fc.integer({ min: 0, max: 11 })])(
    'decodes the same block from every brotli quality, each quality deterministic',
    (b, quality) => {
      const data = encodeBlock(b, quality);
      expect(decodeBlock(data)).toStrictEqual({ ok: true, block: b });
      expect(encodeBlock(structuredClone(b), quality).equals(data)).toBe(true);
    },
  );

  it('refuses a brotli quality outside 0..11, naming it', () => {
    const b = validBlock([baseEndpoint(0)]);
    for (const q of [-1, 12, 5.5, Number.NaN])
      expect(() => encodeBlock(b, q)).toThrow(
        new RangeError(`brotli quality ${q} must be an integer 0..11`),
      );
  });

  test.prop([block, endpoint])('different content gives different bytes', (b, extra) => {
    const more = { ...b, endpoints: mergeEndpoints([...b.endpoints, extra]) };
    const changed = encodeBlock(more);
    const same = JSON.stringify(more.endpoints) === JSON.stringify(b.endpoints);
    expect(changed.equals(encodeBlock(b))).toBe(same);
  });

  it('codes byte counters against the previous endpoint: equal datagram sizes cost a zero each', () => {
    const sized = (bytesPerPacket: number) =>
      validBlock(
        [0, 1, 2, 3].map((i) =>
          baseEndpoint(i, {
            pktsIn: 1000 + i * 977,
            bytesIn: (1000 + i * 977) * bytesPerPacket,
            pktsOut: 0,
            bytesOut: 0,
          }),
        ),
      );
    const even = body(encodeBlock(sized(1200)));
    // The bytesIn column: the first endpoint against nothing (zigzag 1,200,000), then three zeros.
    const first = [0x80, 0xbe, 0x92, 0x01]; // varint of 2 x 1,200,000
    expect(even.indexOf(Buffer.of(...first, 0, 0, 0))).toBeGreaterThan(0);
    // Extremes still round-trip: a huge mean times a huge packet count is capped, not imprecise.
    const extreme = validBlock([
      baseEndpoint(0, { pktsIn: 1, bytesIn: MAX_BLOCK_COUNTER }),
      baseEndpoint(1, { pktsIn: MAX_BLOCK_COUNTER, bytesIn: 0 }),
      baseEndpoint(2, { pktsIn: 0, bytesIn: 5 }),
    ]);
    expect(decodeBlock(encodeBlock(extreme))).toStrictEqual({ ok: true, block: extreme });
  });

  it('tells v2 records from v1 NDJSON and gzip', () => {
    expect(isBlockRecord(Buffer.from('{"v":1}'))).toBe(false);
    expect(isBlockRecord(Buffer.of(0x1f, 0x8b, 8))).toBe(false);
    expect(isBlockRecord(Buffer.from('UW'))).toBe(false);
    expect(isBlockRecord(Buffer.from('UWB\x09'))).toBe(true);
  });

  it('hashes to 32 hex digits of sha-256', () => {
    const h = blockHash(Buffer.from('abc'));
    expect(h).toBe('ba7816bf8f01cfea414140de5dae2223');
  });

  it('encodes a realistic minute at about 15 bytes per endpoint', () => {
    let s = 99;
    const rnd = (n: number) => {
      s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0;
      return s % n;
    };
    const ips = Array.from(
      { length: 300 },
      () => `${1 + rnd(223)}.${rnd(256)}.${rnd(256)}.${rnd(256)}`,
    );
    const locals = [
      ['192.0.2.1', 53],
      ['192.0.2.1', 123],
      ['192.0.2.2', 53],
    ] as const;
    const eps = Array.from({ length: 1000 }, (): BlockEndpoint => {
      const [localIp, localPort] = locals[rnd(3)]!;
      const pktsIn = 10 + rnd(3000);
      const pktsOut = rnd(pktsIn);
      const firstSecond = rnd(30);
      return {
        ip: ips[rnd(300)]!,
        port: 32_768 + rnd(28_232),
        localIp,
        localPort,
        pktsIn,
        bytesIn: pktsIn * (40 + rnd(160)),
        pktsOut,
        bytesOut: pktsOut * (40 + rnd(460)),
        firstSecond,
        lastSecond: firstSecond + rnd(30),
        source: 'hook',
        sampleRate: 1,
      };
    });
    const [part] = sealParts(HEAD, eps);
    expect(part!.endpoints.length).toBeGreaterThan(950);
    const perEndpoint = (q: number) => encodeBlock(part!, q).length / part!.endpoints.length;
    expect(perEndpoint(SMALLEST_BLOCK_QUALITY)).toBeLessThan(18);
    // The agent's faster quality costs a few percent more bytes, not a different scale.
    expect(perEndpoint(AGENT_BLOCK_QUALITY)).toBeLessThan(
      perEndpoint(SMALLEST_BLOCK_QUALITY) * 1.12,
    );
  });
});

/** Printable text that does not compress: `length` characters a call from a seeded generator. */
function noiseText(seed: number, length: number): () => string {
  let s = seed;
  return () => {
    let out = '';
    for (let i = 0; i < length; i++) {
      s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0;
      out += String.fromCharCode(0x21 + (s % 0x5e));
    }
    return out;
  };
}

/** The format's order as text: family, address bytes in hex, port; client side, then local side. */
function orderKey(e: BlockEndpoint): string {
  const side = (ip: string, p: number) => {
    const v4 = ipv4Number(ip);
    const bytes =
      v4 >= 0
        ? `4${v4.toString(16).padStart(8, '0')}`
        : `6${parseIpv6(ip)!
            .map((w) => w.toString(16).padStart(4, '0'))
            .join('')}`;
    return `${bytes}/${p.toString(16).padStart(4, '0')}`;
  };
  return `${side(e.ip, e.port)}/${side(e.localIp, e.localPort)}`;
}

describe('mergeEndpoints', () => {
  test.prop([fc.array(endpoint, { maxLength: 150 }), fc.nat()])(
    'orders by family, address bytes and port, client side first, one endpoint per key',
    (eps, seed) => {
      const merged = mergeEndpoints(shuffle([...eps, ...eps.slice(0, 7)], seed));
      const keys = merged.map(orderKey);
      expect(keys).toStrictEqual([...new Set(eps.map(orderKey))].sort());
    },
  );

  it('gives endpoints that shared an owner equal owners, and never the input objects', () => {
    const owner = { pid: 7, process: 'dnsd' };
    const eps = [1, 2, 3].map((i) => ({ ...baseEndpoint(i), owner }));
    const merged = mergeEndpoints(eps);
    expect(merged.map((e) => e.owner)).toStrictEqual([owner, owner, owner]);
    merged.forEach((e, i) => {
      expect(e).not.toBe(eps[i]);
      expect(e.owner).not.toBe(owner);
    });
  });
});

describe('sealParts', () => {
  test.prop([head, fc.array(endpoint, { maxLength: 80 }), fc.nat()])(
    'gives the same parts for the same endpoints in any order, duplicates merged',
    (h, eps, seed) => {
      const doubled = [...eps, ...eps.slice(0, 10)];
      const a = sealParts(h, doubled).map(encodeBlock);
      const b = sealParts(h, shuffle(doubled, seed)).map(encodeBlock);
      expect(b).toStrictEqual(a);
    },
  );

  test.prop([head, fc.array(endpoint, { maxLength: 120 }), fc.integer({ min: 1, max: 9 })])(
    'splits into numbered parts within the limits that together hold every endpoint once',
    (h, eps, maxEndpoints) => {
      const parts = sealParts(h, eps, { maxEndpoints, maxBytes: MAX_PART_BYTES });
      const merged = mergeEndpoints(eps);
      expect(parts.length).toBe(Math.max(1, Math.ceil(merged.length / maxEndpoints)));
      parts.forEach((p, i) => {
        expect(p.part).toBe(i);
        expect(p.parts).toBe(parts.length);
        expect(p.seq).toBe(h.seq);
        expect(p.endpoints.length).toBeLessThanOrEqual(maxEndpoints);
        expect(p.socket).toStrictEqual(i === 0 ? h.socket : undefined);
      });
      expect(parts.flatMap((p) => p.endpoints)).toStrictEqual(merged);
    },
  );

  it('merges the records of one endpoint: counters add, first is the min, last the max', () => {
    const a = baseEndpoint(1, {
      pktsIn: 3,
      bytesIn: 30,
      firstSecond: 10,
      lastSecond: 20,
      source: 'proc',
    });
    const b = baseEndpoint(1, {
      pktsIn: 4,
      bytesIn: 40,
      firstSecond: 5,
      lastSecond: 15,
      clientId: 'x',
      source: 'hook',
    });
    const c = baseEndpoint(1, { pktsIn: MAX_BLOCK_COUNTER, firstSecond: 7, lastSecond: 44 });
    const [ab] = sealParts(HEAD, [a, b]);
    expect(ab!.endpoints).toHaveLength(1);
    expect(ab!.endpoints[0]).toMatchObject({
      pktsIn: 7,
      bytesIn: 70,
      pktsOut: 10,
      bytesOut: 1000,
      firstSecond: 5,
      lastSecond: 20,
      clientId: 'x',
      source: 'hook',
    });
    const [abc] = sealParts(HEAD, [c, a, b]);
    expect(abc!.endpoints[0]!.pktsIn).toBe(MAX_BLOCK_COUNTER);
    expect(abc!.endpoints[0]!.lastSecond).toBe(44);
  });

  it('sorts endpoints canonically: IPv4 before IPv6, by bytes, then port and local endpoint', () => {
    const eps = [
      baseEndpoint(0, { ip: '2001:db8::1', port: 1 }),
      baseEndpoint(0, { ip: '10.0.0.2', port: 1 }),
      baseEndpoint(0, { ip: '9.0.0.1', port: 7 }),
      baseEndpoint(0, { ip: '10.0.0.2', port: 1, localIp: '192.0.2.0' }),
      baseEndpoint(0, { ip: '9.0.0.1', port: 6 }),
    ];
    const [p] = sealParts(HEAD, eps);
    expect(p!.endpoints.map((e) => `${e.ip} ${e.port} ${e.localIp}`)).toStrictEqual([
      '9.0.0.1 6 192.0.2.1',
      '9.0.0.1 7 192.0.2.1',
      '10.0.0.2 1 192.0.2.0',
      '10.0.0.2 1 192.0.2.1',
      '2001:db8::1 1 192.0.2.1',
    ]);
    for (let i = 1; i < p!.endpoints.length; i++) {
      expect(compareEndpoints(p!.endpoints[i - 1]!, p!.endpoints[i]!)).toBeLessThan(0);
    }
  });

  it('splits at MAX_PART_ENDPOINTS', () => {
    const eps = Array.from({ length: MAX_PART_ENDPOINTS + 5 }, (_, i) =>
      baseEndpoint(i, { ip: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, port: 9 }),
    );
    const parts = sealParts(HEAD, eps);
    expect(parts.map((p) => p.endpoints.length)).toStrictEqual([MAX_PART_ENDPOINTS, 5]);
  });

  it('splits incompressible endpoints so every part stays under MAX_PART_BYTES', () => {
    const noise = noiseText(7, 250);
    const eps = Array.from({ length: 2000 }, (_, i) =>
      baseEndpoint(i, {
        ip: `2001:db8::${(i + 1).toString(16)}`,
        clientId: noise(),
        owner: { process: noise() },
      }),
    );
    const parts = sealParts(HEAD, eps);
    const sizes = parts.map((p) => encodeBlock(p).length);
    expect(parts.length).toBeGreaterThan(1);
    for (const size of sizes) expect(size).toBeLessThanOrEqual(MAX_PART_BYTES);
    expect(parts.reduce((n, p) => n + p.endpoints.length, 0)).toBe(2000);
  }, 60_000); // brotli at quality 11 on incompressible parts: 9 s alone, over 20 s beside the other suites on 2 cores

  it('seals no endpoints as one empty part that keeps the socket health', () => {
    const parts = sealParts({ ...HEAD, socket: { rxQueueBytes: 10, drops: 2 } }, []);
    expect(parts).toStrictEqual([
      { ...HEAD, part: 0, parts: 1, endpoints: [], socket: { rxQueueBytes: 10, drops: 2 } },
    ]);
    expect(decodeBlock(encodeBlock(parts[0]!))).toStrictEqual({ ok: true, block: parts[0] });
  });
});

describe('sealEncodedParts', () => {
  test.prop([
    head,
    fc.array(endpoint, { maxLength: 120 }),
    fc.integer({ min: 1, max: 9 }),
    fc.constantFrom(AGENT_BLOCK_QUALITY, SMALLEST_BLOCK_QUALITY),
  ])(
    'seals the parts sealParts does, each with the bytes encodeBlock gives it at that quality',
    (h, eps, maxEndpoints, quality) => {
      const limits = { maxEndpoints, maxBytes: MAX_PART_BYTES };
      const parts = sealEncodedParts(h, eps, limits, quality);
      expect(parts.map((p) => p.block)).toStrictEqual(sealParts(h, eps, limits, quality));
      for (const p of parts) expect(p.data.equals(encodeBlock(p.block, quality))).toBe(true);
    },
  );

  it('sizes the parts by halving when parts cut by count alone are over the byte limit', () => {
    const noise = noiseText(11, 120);
    const eps = Array.from({ length: 60 }, (_, i) => baseEndpoint(i, { clientId: noise() }));
    const limits = { maxEndpoints: 1000, maxBytes: 2000 };
    const parts = sealEncodedParts(HEAD, eps, limits);
    // One part by count; the limit takes several.
    expect(parts.length).toBeGreaterThan(2);
    for (const [i, p] of parts.entries()) {
      expect(p.data.length).toBeLessThanOrEqual(limits.maxBytes);
      expect(p.data.equals(encodeBlock(p.block))).toBe(true);
      expect([p.block.part, p.block.parts]).toStrictEqual([i, parts.length]);
    }
    expect(parts.flatMap((p) => p.block.endpoints)).toStrictEqual(mergeEndpoints(eps));
    expect(parts.map((p) => p.block)).toStrictEqual(sealParts(HEAD, eps, limits));
  });

  it('throws RangeError for an endpoint the format cannot hold, as sealParts does', () => {
    const bad = [baseEndpoint(0, { clientId: 'x'.repeat(10_000) })];
    expect(() => sealParts(HEAD, bad)).toThrow(RangeError);
    expect(() => sealEncodedParts(HEAD, bad)).toThrow(RangeError);
  });
});

describe('decodeBlock on untrusted bytes', () => {
  test.prop([fc.uint8Array({ maxLength: 300 })])('never throws on random bytes', (bytes) => {
    const withMagic = Buffer.concat([Buffer.from('UWB\x02'), bytes]);
    for (const data of [bytes, withMagic, wrap(bytes)]) {
      const out = decodeBlock(data);
      if (!out.ok) expect(out.reason.length).toBeGreaterThan(0);
    }
  });

  test.prop([block, fc.nat()])('rejects every truncation of a valid record', (b, cut) => {
    const bytes = encodeBlock(b);
    const at = cut % bytes.length;
    const out = decodeBlock(bytes.subarray(0, at));
    expect(out.ok).toBe(false);
  });

  test.prop([block, fc.nat(), fc.integer({ min: 1, max: 255 })])(
    'never throws on a body with one byte changed',
    (b, at, delta) => {
      const raw = body(encodeBlock(b));
      raw[at % raw.length] = (raw[at % raw.length]! + delta) & 0xff;
      const out = decodeBlock(wrap(raw));
      if (out.ok) expect(reencodes(out.block)).toBe(true);
    },
  );

  it('refuses a decompression bomb with a reason', () => {
    const bomb = wrap(Buffer.alloc(MAX_INFLATED_PART_BYTES + 1024));
    expect(bomb.length).toBeLessThan(10_000);
    expect(reasonOf(bomb)).toBe(`body inflates to more than ${MAX_INFLATED_PART_BYTES} bytes`);
  });
});

describe('decodeBlock on stored bytes', () => {
  const stored = (data: Uint8Array) => decodeBlock(data, { stored: true });

  test.prop([block])('returns exactly what the strict path returns on a valid record', (b) => {
    const data = encodeBlock(b);
    const strict = decodeBlock(data);
    expect(strict.ok).toBe(true);
    expect(stored(data)).toStrictEqual(strict);
  });

  test.prop([fc.uint8Array({ maxLength: 300 })])('never throws on random bytes', (bytes) => {
    const withMagic = Buffer.concat([Buffer.from('UWB\x02'), bytes]);
    for (const data of [bytes, withMagic, wrap(bytes)]) {
      const out = stored(data);
      if (out.ok) expect(reencodes(out.block)).toBe(true);
      else expect(out.reason.length).toBeGreaterThan(0);
    }
  });

  test.prop([block, fc.nat()])('rejects every truncation of a valid record', (b, cut) => {
    const bytes = encodeBlock(b);
    expect(stored(bytes.subarray(0, cut % bytes.length)).ok).toBe(false);
  });

  test.prop([block, fc.nat(), fc.integer({ min: 1, max: 255 })])(
    'on a body with one byte changed: never throws, accepts only a valid block, agrees with the strict path',
    (b, at, delta) => {
      const raw = body(encodeBlock(b));
      raw[at % raw.length] = (raw[at % raw.length]! + delta) & 0xff;
      const data = wrap(raw);
      const out = stored(data);
      if (out.ok) expect(reencodes(out.block)).toBe(true);
      const strict = decodeBlock(data);
      if (strict.ok) expect(out).toStrictEqual(strict);
    },
  );

  test.prop([block, fc.nat({ max: 59 }), fc.integer({ min: 1, max: 255 })])(
    'on a body with its endpoints swapped or repeated: names the endpoint',
    (b, pick, delta) => {
      fc.pre(b.endpoints.length >= 2);
      const i = 1 + (pick % (b.endpoints.length - 1));
      const eps = [...b.endpoints];
      const repeat = delta % 2 === 0;
      // Ports after the first of an IP are coded as gaps: a swap within one IP cannot be written.
      fc.pre(repeat || eps[i - 1]!.ip !== eps[i]!.ip);
      if (repeat) eps[i] = { ...eps[i - 1]! };
      else [eps[i - 1], eps[i]] = [eps[i]!, eps[i - 1]!];
      const out = stored(encodeBlockUnchecked({ ...b, endpoints: eps }));
      expect(out).toStrictEqual({
        ok: false,
        reason: repeat
          ? `endpoint ${i}: duplicates endpoint ${i - 1}`
          : `endpoint ${i}: sorts before endpoint ${i - 1}`,
      });
    },
  );

  it('refuses a decompression bomb with a reason', () => {
    const bomb = wrap(Buffer.alloc(MAX_INFLATED_PART_BYTES + 1024));
    expect(stored(bomb)).toStrictEqual({
      ok: false,
      reason: `body inflates to more than ${MAX_INFLATED_PART_BYTES} bytes`,
    });
  });
});

/** Whether a decoded block is valid: it encodes and decodes again. */
function reencodes(b: Block): boolean {
  return decodeBlock(encodeBlock(b)).ok;
}

describe('every reason', () => {
  const valid = encodeBlock(validBlock());
  const raw = body(valid);
  const unchecked = (over: Partial<Block>, e: Partial<BlockEndpoint> = {}, at = 1) => {
    const b = validBlock();
    b.endpoints[at] = { ...b.endpoints[at]!, ...e };
    return encodeBlockUnchecked({ ...b, ...over });
  };
  /** The body with the given bytes inserted at the end of the header strings. */
  const headerOffset = 1 + 7 + 1 + 6 + 1 + 3;
  expect(raw.subarray(0, headerOffset).toString('latin1')).toBe('\x07agent-a\x06host-1\x03dns');

  const cases: [string, () => Uint8Array, string | RegExp][] = [
    ['no magic', () => Buffer.from('{"v":1}'), 'not a block record (no UWB magic)'],
    ['no version', () => Buffer.from('UWB'), 'record ends before the version byte'],
    [
      'wrong version',
      () => Buffer.concat([Buffer.from('UWB\x03'), valid.subarray(4)]),
      'block version 3 is not supported (expected 2)',
    ],
    [
      'oversized record',
      () => Buffer.concat([valid, Buffer.alloc(MAX_PART_BYTES)]),
      /^record of \d+ bytes is larger than 358400$/,
    ],
    ['not brotli', () => Buffer.from('UWB\x02\xff\xff\xff'), /^body is not valid brotli data/],
    ['truncated body', () => wrap(raw.subarray(0, raw.length - 3)), /^body ends while reading/],
    [
      'trailing bytes',
      () => wrap(Buffer.concat([raw, Buffer.of(0, 0)])),
      '2 bytes after the last column',
    ],
    [
      'long varint',
      () => wrap(Buffer.concat([raw.subarray(0, headerOffset), Buffer.alloc(9, 0xff)])),
      'minute: varint longer than 8 bytes',
    ],
    [
      'bad utf-8',
      () => wrap(Buffer.concat([Buffer.of(2, 0xc3, 0x28), raw.subarray(8)])),
      'agentId is not valid UTF-8',
    ],
    [
      'overlong name bytes',
      () => wrap(Buffer.concat([Buffer.of(0xff, 0x7f), raw])),
      'agentId length 16383 is more than 384',
    ],
    [
      'long agentId',
      () => unchecked({ agentId: 'a'.repeat(129) }),
      'agentId must be 1..128 characters',
    ],
    ['long host', () => unchecked({ host: 'h'.repeat(254) }), 'host must be 1..253 characters'],
    ['empty service', () => unchecked({ service: '' }), 'service must be 1..128 characters'],
    [
      'space in host',
      () => unchecked({ host: 'my host' }),
      'host "my host" has spaces or control characters',
    ],
    [
      'control in service',
      () => unchecked({ service: 'd\u0001ns' }),
      /^service .* has spaces or control characters$/,
    ],
    ['minute', () => unchecked({ minute: 1 }), 'minute 1 out of range'],
    ['seq', () => unchecked({ seq: 2 ** 54 }), `seq ${2 ** 54} out of range`],
    ['parts', () => unchecked({ parts: 1025 }), 'parts 1025 out of range 1..1024'],
    ['part', () => unchecked({ part: 2, parts: 2 }), 'part 2 out of range 0..1'],
    [
      'header flags',
      () => {
        const b = Buffer.from(raw);
        b[headerOffset + 4 + 1 + 1 + 1] = 4; // minute (4 bytes), seq, part, parts: then flags
        return wrap(b);
      },
      'header flags 4 are unknown',
    ],
    [
      'rx queue',
      () => unchecked({ socket: { rxQueueBytes: MAX_BLOCK_COUNTER + 1, drops: 0 } }),
      /^socket rxQueueBytes \d+ out of range$/,
    ],
    [
      'drops',
      () => unchecked({ socket: { rxQueueBytes: 0, drops: MAX_BLOCK_COUNTER + 1 } }),
      /^socket drops \d+ out of range$/,
    ],
    [
      'too many endpoints',
      () =>
        encodeBlockUnchecked(
          validBlock(Array.from({ length: MAX_PART_ENDPOINTS + 1 }, (_, i) => baseEndpoint(i))),
        ),
      `endpoint count ${MAX_PART_ENDPOINTS + 1} is more than ${MAX_PART_ENDPOINTS}`,
    ],
    ['port', () => unchecked({}, { port: 70_000 }), 'endpoint 1: port 70000 out of range'],
    [
      'bytes residual past the counter range',
      () => unchecked({}, { bytesIn: MAX_BLOCK_COUNTER + 1 }),
      `endpoint 1: bytesIn ${MAX_BLOCK_COUNTER + 1} out of range`,
    ],
    [
      'bytes residual below zero',
      () => unchecked({}, { bytesOut: -3 }),
      'endpoint 1: bytesOut -3 out of range',
    ],
    [
      'local port',
      () => unchecked({}, { localPort: 70_000 }),
      'endpoint 1: localPort 70000 out of range',
    ],
    [
      'counter',
      () => unchecked({}, { bytesOut: MAX_BLOCK_COUNTER + 1 }),
      `endpoint 1: bytesOut ${MAX_BLOCK_COUNTER + 1} out of range`,
    ],
    [
      'first second',
      () => unchecked({}, { firstSecond: 60, lastSecond: 60 }),
      'endpoint 1: firstSecond 60 out of range',
    ],
    [
      'last second',
      () => unchecked({}, { lastSecond: 61 }),
      'endpoint 1: lastSecond 61 out of range',
    ],
    [
      'seconds order',
      () => unchecked({}, { firstSecond: 9, lastSecond: 5 }),
      'endpoint 1: lastSecond 5 is before firstSecond 9',
    ],
    [
      'source',
      () => unchecked({}, { source: 'tcp' as 'hook' }),
      'endpoint 1: source "tcp" is unknown',
    ],
    [
      'sample rate',
      () => unchecked({}, { sampleRate: 0 }),
      'endpoint 1: sampleRate 0 out of range',
    ],
    [
      'nat port',
      () => unchecked({}, { natFromPort: 65_536 }),
      'endpoint 1: natFromPort 65536 out of range',
    ],
    [
      'pid',
      () => unchecked({}, { owner: { pid: 5_000_000 } }),
      'endpoint 1: owner pid 5000000 out of range',
    ],
    [
      'process',
      () => unchecked({}, { owner: { process: 'a\nb' } }),
      'endpoint 1: owner process "a\\nb" has control characters',
    ],
    [
      'client id',
      () => unchecked({}, { clientId: 'c'.repeat(257) }),
      'endpoint 1: clientId must be 1..256 characters',
    ],
    [
      'unsorted',
      () => encodeBlockUnchecked(validBlock([baseEndpoint(1), baseEndpoint(0)])),
      'endpoint 1: sorts before endpoint 0',
    ],
    [
      'duplicate',
      () => encodeBlockUnchecked(validBlock([baseEndpoint(1), baseEndpoint(1)])),
      'endpoint 1: duplicates endpoint 0',
    ],
    [
      'mapped IPv6 client',
      () => {
        // Endpoint 0's head byte becomes "IPv6, no shared prefix", its bytes ::ffff:198.51.100.0.
        const b = validBlock([baseEndpoint(0)]);
        const r = body(encodeBlock(b));
        const at = r.indexOf(Buffer.of(0, 198, 51, 100, 0));
        const mapped = Buffer.of(0x80, ...Array(10).fill(0), 0xff, 0xff, 198, 51, 100, 0);
        return wrap(Buffer.concat([r.subarray(0, at), mapped, r.subarray(at + 5)]));
      },
      'endpoint 0: client IPv6 bytes hold an IPv4-mapped address',
    ],
    [
      'malformed IP head',
      () => {
        const r = Buffer.from(raw);
        r[r.indexOf(Buffer.of(0, 3, 198, 51, 100, 0))] = 0x40;
        return wrap(r);
      },
      'endpoint 0: client IP head byte 64 is malformed',
    ],
    [
      'prefix across families',
      () => {
        const r = Buffer.from(raw);
        // Endpoint 1 (IPv4, shares 3 bytes) claims IPv6 with a shared prefix.
        r[r.indexOf(Buffer.of(0, 3, 198, 51, 100, 0)) + 1] = 0x83;
        return wrap(r);
      },
      'endpoint 1: client IP shares a prefix with an address of another family',
    ],
    [
      'unknown family',
      () => {
        const r = Buffer.from(raw);
        r[r.indexOf(Buffer.of(4, 192, 0, 2, 1))] = 5;
        return wrap(r);
      },
      'local endpoint 0: address family 5 is unknown',
    ],
    [
      'index past dictionary',
      () => {
        const b = validBlock([baseEndpoint(0), baseEndpoint(1, { localPort: 54 })]);
        const r = body(encodeBlock(b));
        const at = r.indexOf(Buffer.of(4, 192, 0, 2, 1, 54)) + 6; // after the dictionary: indexes 0, 1
        r[at + 1] = 2;
        return wrap(r);
      },
      'endpoint 1: local endpoint index 2 is past the dictionary of 2',
    ],
    [
      'empty local dictionary',
      () => {
        const r = body(encodeBlock(validBlock([baseEndpoint(0)])));
        const at = r.indexOf(Buffer.of(1, 4, 192, 0, 2, 1, 53));
        return wrap(Buffer.concat([r.subarray(0, at), Buffer.of(0), r.subarray(at + 7)]));
      },
      'local endpoint dictionary is empty',
    ],
    [
      'empty source dictionary',
      () => {
        const r = body(encodeBlock(validBlock([baseEndpoint(0)])));
        const at = r.indexOf(Buffer.from('\x01\x04hook'));
        return wrap(Buffer.concat([r.subarray(0, at), Buffer.of(0), r.subarray(at + 6)]));
      },
      'source dictionary is empty',
    ],
    [
      'owner flags',
      () => {
        const r = body(encodeBlock(validBlock([baseEndpoint(0, { owner: { pid: 9 } })])));
        const at = r.lastIndexOf(Buffer.of(1, 1, 9));
        r[at + 1] = 4;
        return wrap(r);
      },
      'owner 0: flags 4 are malformed',
    ],
    [
      'non-canonical dictionary',
      () => {
        // Two endpoints, two local endpoints listed in the other order (indexes swapped to match).
        const b = validBlock([baseEndpoint(0), baseEndpoint(1, { localPort: 54 })]);
        const r = body(encodeBlock(b));
        const at = r.indexOf(Buffer.of(2, 4, 192, 0, 2, 1, 53, 4, 192, 0, 2, 1, 54, 0, 1));
        const swapped = Buffer.of(2, 4, 192, 0, 2, 1, 54, 4, 192, 0, 2, 1, 53, 1, 0);
        return wrap(Buffer.concat([r.subarray(0, at), swapped, r.subarray(at + swapped.length)]));
      },
      'body is not in canonical form',
    ],
  ];

  it.each(cases)('%s', (_, make, reason) => {
    const r = reasonOf(make());
    if (typeof reason === 'string') expect(r).toBe(reason);
    else expect(r).toMatch(reason);
  });

  it.each(cases)(
    '%s: the stored path refuses it too, unless only the form is off',
    (_, make, reason) => {
      const data = make();
      const out = decodeBlock(data, { stored: true });
      if (reason === 'body is not in canonical form') {
        // Content within bounds in another spelling: the stored path need not care.
        expect(out.ok).toBe(true);
        if (out.ok) expect(reencodes(out.block)).toBe(true);
      } else {
        expect(out.ok).toBe(false);
        if (!out.ok) expect(out.reason.length).toBeGreaterThan(0);
      }
    },
  );

  it('the encoder refuses what the decoder would refuse, naming the part', () => {
    expect(() => encodeBlock(validBlock([baseEndpoint(0, { ip: '::ffff:198.51.100.1' })]))).toThrow(
      /^block part 0 of agent agent-a seq 7: endpoint 0: ip "::ffff:198.51.100.1" is not a canonical address$/,
    );
    expect(() => encodeBlock(validBlock([baseEndpoint(0, { localIp: '192.0.2.01' })]))).toThrow(
      RangeError,
    );
    expect(() => encodeBlock(validBlock([baseEndpoint(0, { natFromIp: 'x' })]))).toThrow(
      /natFromIp "x"/,
    );
    expect(() => encodeBlock(validBlock([baseEndpoint(0, { owner: {} })]))).toThrow(
      /owner has neither/,
    );
    expect(() => encodeBlock(validBlock([baseEndpoint(0, { clientId: 'a\uD800' })]))).toThrow(
      /control characters/,
    );
    expect(() => encodeBlock({ ...validBlock(), host: 'h\uDC00' })).toThrow(/host/);
  });
});
