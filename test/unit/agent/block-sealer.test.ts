import { describe, expect, it } from 'vitest';
import {
  BlockSealer,
  type BlockSealerOptions,
  blockRecord,
  MAX_DELTA_AGE_MS,
  sendOffsetMs,
} from '../../../agent/block-sealer.js';
import type { FlowDelta } from '../../../agent/flow-table.js';
import type { EndpointList } from '../../../agent/pending-endpoints.js';
import {
  type Block,
  type BlockEndpoint,
  MINUTE_MS,
  SEND_SPREAD_SECONDS,
} from '../../../contract/block.js';
import {
  AGENT_BLOCK_QUALITY,
  decodeBlock,
  encodeBlock,
  type SealedPart,
} from '../../../contract/block-codec.js';

const M = 28_333_333; // an epoch minute
const at = (minute: number, second: number) => minute * MINUTE_MS + second * 1000;

function sealer(options: Partial<BlockSealerOptions> = {}) {
  let seq = 100;
  return new BlockSealer({
    agentId: 'agent-1',
    host: 'host-1',
    nextSeq: () => seq++,
    sealIntervalMs: MINUTE_MS,
    graceMs: 3000,
    sendOffsetMs: 7000,
    earlyBurst: 2,
    earlyRefillMs: 30_000,
    now: at(M, 0),
    ...options,
  });
}

function delta(partial: Partial<FlowDelta>): FlowDelta {
  return {
    service: 'dns',
    source: 'hook',
    localIp: '192.0.2.1',
    localPort: 53,
    remoteIp: '198.51.100.7',
    remotePort: 40_000,
    firstSeen: at(M, 1),
    lastSeen: at(M, 1),
    sampleRate: 1,
    pktsIn: 1,
    bytesIn: 100,
    pktsOut: 1,
    bytesOut: 60,
    fresh: false,
    ...partial,
  };
}

/** What crosses the wire: each part's shipped bytes decoded back (they are its block's encoding at the agent's quality). */
function shipped(parts: SealedPart[]): Block[] {
  return parts.map((p) => {
    const d = decodeBlock(blockRecord(p).data);
    if (!d.ok) throw new Error(d.reason);
    expect(p.data.equals(encodeBlock(p.block, AGENT_BLOCK_QUALITY))).toBe(true);
    return d.block;
  });
}

const totalOf = (
  blocks: Block[],
  port: number,
  field: 'pktsIn' | 'bytesIn' | 'pktsOut' | 'bytesOut',
) =>
  blocks
    .flatMap((b) => b.endpoints)
    .filter((e) => e.port === port)
    .reduce((n, e) => n + e[field], 0);

describe('BlockSealer', () => {
  it('seals a minute once it ended plus grace and offset, with first and last second inside it', () => {
    const s = sealer();
    expect(
      s.addDeltas([delta({ firstSeen: at(M - 1, 50), lastSeen: at(M, 12) })], at(M, 12)),
    ).toEqual([]);
    expect(s.addDeltas([delta({ firstSeen: at(M, 12), lastSeen: at(M, 40) })], at(M, 40))).toEqual(
      [],
    );
    // Next minute's traffic already.
    s.addDeltas(
      [delta({ remotePort: 2, firstSeen: at(M + 1, 2), lastSeen: at(M + 1, 5) })],
      at(M + 1, 5),
    );
    // The minute has ended, but grace (3 s) + offset (7 s) have not passed.
    expect(s.sealDue(at(M + 1, 9) + 999)).toEqual([]);
    const blocks = shipped(s.sealDue(at(M + 1, 10)));
    expect(blocks).toHaveLength(1);
    const [b] = blocks;
    expect(b).toMatchObject({
      agentId: 'agent-1',
      host: 'host-1',
      service: 'dns',
      minute: M,
      part: 0,
      parts: 1,
    });
    expect(b!.endpoints).toEqual([
      expect.objectContaining({
        port: 40_000,
        pktsIn: 2,
        bytesIn: 200,
        firstSecond: 0,
        lastSecond: 40,
      }),
    ]);
    // The next minute waits for its own moment, then goes alone.
    expect(s.sealDue(at(M + 1, 30))).toEqual([]);
    const next = shipped(s.sealDue(at(M + 2, 10)));
    expect(
      next.map((x) => [
        x.minute,
        x.endpoints[0]!.port,
        x.endpoints[0]!.firstSecond,
        x.endpoints[0]!.lastSecond,
      ]),
    ).toEqual([[M + 1, 2, 2, 5]]);
    expect(s.stats().pendingEndpoints).toBe(0);
  });

  it("reuses a sealed minute's endpoints and lists for later minutes, nothing of them carried over", () => {
    const s = sealer({ earlyBurst: 0 });
    // Minute M: 300 clients with NAT addresses, client tags and an owner.
    const rich = (minute: number, i: number) =>
      delta({
        remotePort: 10_000 + i,
        firstSeen: at(minute, 5),
        lastSeen: at(minute, 6),
        pktsIn: i + 1,
        bytesIn: 100 * (i + 1),
        natFromIp: '203.0.113.9',
        natFromPort: 5000 + i,
        clientId: `tenant-${i}`,
        pid: 42,
        process: 'dnsd',
        source: 'ebpf',
        sampleRate: 4,
      });
    s.addDeltas(
      Array.from({ length: 300 }, (_, i) => rich(M, i)),
      at(M, 6),
    );
    const first = s.sealDue(at(M + 1, 10));
    const firstBlocks = structuredClone(first.map((p) => p.block));
    const firstBytes = first.map((p) => Buffer.from(p.data));
    expect(shipped(first).flatMap((b) => b.endpoints)).toHaveLength(300);
    // Minutes M + 1 and M + 2: other clients, plain hook deltas with none of those fields.
    for (const minute of [M + 1, M + 2]) {
      s.addDeltas(
        Array.from({ length: 200 }, (_, i) =>
          delta({
            remoteIp: '198.51.100.20',
            remotePort: 20_000 + i,
            firstSeen: at(minute, 30),
            lastSeen: at(minute, 31),
          }),
        ),
        at(minute, 31),
      );
      const parts = shipped(s.sealDue(at(minute + 1, 10)));
      const eps = parts.flatMap((b) => b.endpoints);
      expect(eps).toHaveLength(200);
      for (const e of eps) {
        expect(e).toStrictEqual({
          ip: '198.51.100.20',
          port: e.port,
          localIp: '192.0.2.1',
          localPort: 53,
          pktsIn: 1,
          bytesIn: 100,
          pktsOut: 1,
          bytesOut: 60,
          firstSecond: 30,
          lastSecond: 31,
          source: 'hook',
          sampleRate: 1,
        });
      }
    }
    // What minute M sealed is untouched by the reuse.
    expect(first.map((p) => p.block)).toStrictEqual(firstBlocks);
    expect(first.map((p) => p.data)).toStrictEqual(firstBytes);
    expect(s.stats().pendingEndpoints).toBe(0);
  });

  it('keeps totals exact over early, main and late parts', () => {
    const s = sealer({ earlyBurst: 1, earlyRefillMs: 20_000 });
    const want = new Map<number, { pkts: number; bytes: number; out: number }>();
    const blocks: SealedPart[] = [];
    const seen = new Set<number>();
    let lateOfM = 0;
    // Three minutes, a cycle a second, 12 clients with their own rhythm; some packets reported late.
    for (let t = at(M, 0); t < at(M + 3, 0); t += 1000) {
      const deltas: FlowDelta[] = [];
      for (let c = 0; c < 12; c++) {
        if ((t / 1000 + c) % (c + 2) !== 0) continue;
        // Reports that reach the sealer after their minute was sealed.
        const late = c === 5 && t >= at(M + 1, 10) && t < at(M + 1, 25) ? 25_000 : 0;
        const pkts = 1 + ((t / 1000) % 5) + c;
        const d = delta({
          remotePort: 1000 + c,
          firstSeen: t - late - 500,
          lastSeen: t - late,
          pktsIn: pkts,
          bytesIn: pkts * 90,
          pktsOut: c % 3,
          bytesOut: (c % 3) * 40,
          fresh: !seen.has(c),
        });
        seen.add(c);
        deltas.push(d);
        const w = want.get(d.remotePort) ?? { pkts: 0, bytes: 0, out: 0 };
        w.pkts += d.pktsIn;
        w.bytes += d.bytesIn;
        w.out += d.bytesOut;
        want.set(d.remotePort, w);
      }
      blocks.push(...s.addDeltas(deltas, t));
      const due = s.sealDue(t);
      if (due.some((p) => p.block.minute === M) && t >= at(M + 2, 0)) lateOfM++;
      blocks.push(...due);
    }
    blocks.push(...s.sealAll());
    const got = shipped(blocks);
    expect(s.stats().earlyBlocks).toBeGreaterThanOrEqual(1);
    // Late reports of an already sealed minute went out as extra parts of it.
    expect(lateOfM).toBe(1);
    for (const [port, w] of want) {
      expect([
        totalOf(got, port, 'pktsIn'),
        totalOf(got, port, 'bytesIn'),
        totalOf(got, port, 'bytesOut'),
      ]).toEqual([w.pkts, w.bytes, w.out]);
    }
    // One seq per block, never reused.
    expect(new Set(got.map((b) => b.seq)).size).toBe(got.length);
    for (const b of got) expect(b.endpoints.every((e) => e.firstSecond <= e.lastSecond)).toBe(true);
  });

  it('gives the same bytes for the same deltas, whatever their order', () => {
    const deltas = [
      delta({ remoteIp: '2001:db8::9', remotePort: 5, natFromIp: '203.0.113.4', natFromPort: 99 }),
      delta({
        remoteIp: '198.51.100.1',
        remotePort: 7,
        pid: 42,
        process: 'named',
        clientId: 'c-1',
      }),
      delta({ remoteIp: '198.51.100.1', remotePort: 6, source: 'conntrack', sampleRate: 4 }),
      delta({ service: 'ntp', remotePort: 123, localPort: 123, lastSeen: at(M, 30) }),
    ];
    const run = (order: FlowDelta[]) => {
      const s = sealer();
      s.addDeltas(order.slice(0, 2), at(M, 30));
      s.addDeltas(order.slice(2), at(M, 31));
      return s.sealAll().map((b) => blockRecord(b).data.toString('hex'));
    };
    const one = run(deltas);
    expect(one).toHaveLength(2);
    expect(run([...deltas].reverse())).toEqual(one);
    expect(run([deltas[2]!, deltas[0]!, deltas[3]!, deltas[1]!])).toEqual(one);
  });

  it('sends new clients early within the token bucket; the rest wait for the main part', () => {
    const s = sealer({ earlyBurst: 2, earlyRefillMs: 30_000 });
    const early = (port: number, second: number) =>
      shipped(
        s.addDeltas(
          [delta({ remotePort: port, fresh: true, lastSeen: at(M, second) })],
          at(M, second),
        ),
      );
    expect(early(1, 1).map((b) => b.endpoints.map((e) => e.port))).toEqual([[1]]);
    expect(early(2, 2).map((b) => b.endpoints.map((e) => e.port))).toEqual([[2]]);
    // Burst spent: the third new client waits.
    expect(early(3, 3)).toEqual([]);
    // A known client never goes early.
    expect(shipped(s.addDeltas([delta({ remotePort: 1, lastSeen: at(M, 4) })], at(M, 4)))).toEqual(
      [],
    );
    // 30 s after the burst began, one more token.
    expect(early(4, 31).map((b) => b.endpoints.map((e) => e.port))).toEqual([[4]]);
    expect(early(5, 32)).toEqual([]);
    // Several new clients in one cycle share one early part (one token).
    const together = shipped(
      s.addDeltas(
        [60, 61, 62].map((p) => delta({ remotePort: p, fresh: true, lastSeen: at(M, 59) })),
        at(M + 1, 1),
      ),
    );
    expect(together.map((b) => b.endpoints.map((e) => e.port))).toEqual([[60, 61, 62]]);
    const main = shipped(s.sealDue(at(M + 1, 10)));
    expect(main).toHaveLength(1);
    expect(main[0]!.endpoints.map((e) => e.port)).toEqual([1, 3, 5]);
    expect(s.stats()).toMatchObject({ earlyBlocks: 4, mainBlocks: 1 });
  });

  it('spreads agents over the send spread, and seals everything every interval under a one-minute interval', () => {
    const offsets = new Set(['a', 'b', 'c', 'host-17', 'i-0abc'].map(sendOffsetMs));
    for (const o of offsets) {
      expect(o % 1000).toBe(0);
      expect(o).toBeGreaterThanOrEqual(0);
      expect(o).toBeLessThan(SEND_SPREAD_SECONDS * 1000);
    }
    expect(offsets.size).toBeGreaterThan(1);
    expect(sendOffsetMs('a')).toBe(sendOffsetMs('a'));

    const s = sealer({
      sealIntervalMs: 1000,
      sendOffsetMs: 40_000,
      earlyBurst: 0,
      now: at(M, 10) + 100,
    });
    s.addDeltas([delta({ lastSeen: at(M, 10) + 200 })], at(M, 10) + 200);
    expect(s.sealDue(at(M, 10) + 500)).toEqual([]);
    // Mid-minute, at the next whole interval, no offset.
    const b = shipped(s.sealDue(at(M, 11)));
    expect(b.map((x) => [x.minute, x.endpoints[0]!.pktsIn])).toEqual([[M, 1]]);
    expect(s.sealDue(at(M, 12))).toEqual([]);
  });

  it('seals everything pending on stop, the current minute and socket health included', () => {
    const s = sealer();
    s.addDeltas([delta({ remotePort: 1, lastSeen: at(M, 20) })], at(M, 20));
    s.addSocketHealth(new Map([['dns', { rxQueueBytes: 4096, drops: 3 }]]), at(M, 20));
    s.addSocketHealth(new Map([['dns', { rxQueueBytes: 512, drops: 2 }]]), at(M, 21));
    // A service with no clients and no drops is not worth a block; one with drops is.
    s.addSocketHealth(
      new Map([
        ['idle', { rxQueueBytes: 0, drops: 0 }],
        ['lossy', { rxQueueBytes: 900, drops: 8 }],
      ]),
      at(M, 21),
    );
    const blocks = shipped(s.sealAll());
    expect(blocks.map((b) => [b.service, b.endpoints.length, b.socket])).toEqual([
      ['dns', 1, { rxQueueBytes: 4096, drops: 5 }],
      ['lossy', 0, { rxQueueBytes: 900, drops: 8 }],
    ]);
    expect(s.sealAll()).toEqual([]);
  });

  it('exports what is pending for a checkpoint, oldest minute first, within a bound, as views of its rows', () => {
    const s = sealer();
    // Copies of what a view shows (its object is reused from endpoint to endpoint).
    const read = (list: EndpointList) => {
      const out: BlockEndpoint[] = [];
      list.forEach((e) => {
        out.push({ ...e });
      });
      expect(out).toHaveLength(list.length);
      return out;
    };
    s.addDeltas(
      [1, 2, 3].map((p) => delta({ remotePort: p, lastSeen: at(M + 1, 5) })),
      at(M + 1, 5),
    );
    s.addDeltas([delta({ remotePort: 9, lastSeen: at(M, 50) })], at(M + 1, 5));
    const first = s.exportPending(100);
    expect(first.omitted).toBe(0);
    expect(first.groups.map((g) => [g.minute, read(g.endpoints).map((e) => e.port)])).toEqual([
      [M, [9]],
      [M + 1, [1, 2, 3]],
    ]);
    // Over the bound: the oldest minute first, the rest left out and counted.
    const bounded = s.exportPending(2);
    expect(bounded.omitted).toBe(2);
    expect(bounded.groups.map((g) => read(g.endpoints).map((e) => e.port))).toEqual([[9], [1]]);
    // Every field a delta set reaches the view; one that has none reads undefined.
    s.addDeltas(
      [
        delta({
          remotePort: 4,
          lastSeen: at(M + 1, 6),
          natFromIp: '203.0.113.4',
          natFromPort: 4000,
        }),
        delta({
          remotePort: 1,
          lastSeen: at(M + 1, 7),
          clientId: 'c-1',
          pid: 77,
          process: 'named',
        }),
      ],
      at(M + 1, 7),
    );
    const again = read(s.exportPending(100).groups[1]!.endpoints);
    expect(again.map((e) => [e.port, e.pktsIn, e.lastSecond])).toEqual([
      [1, 2, 7],
      [2, 1, 5],
      [3, 1, 5],
      [4, 1, 6],
    ]);
    expect(again[0]).toMatchObject({ clientId: 'c-1', owner: { pid: 77, process: 'named' } });
    expect(again[0]!.natFromIp).toBeUndefined();
    expect(again[3]).toMatchObject({ natFromIp: '203.0.113.4', natFromPort: 4000 });
    expect(again[3]!.clientId).toBeUndefined();
  });

  it('moves impossible times to now and leaves out endpoints that break the format', () => {
    const log: string[] = [];
    const s = sealer({ log: (m) => log.push(m) });
    const now = at(M, 30);
    s.addDeltas(
      [
        delta({ remotePort: 1, lastSeen: now + 3_600_000 }),
        delta({ remotePort: 2, lastSeen: now - MAX_DELTA_AGE_MS - 1 }),
        delta({ remotePort: 3, clientId: 'bad\u0001id' }),
      ],
      now,
    );
    const blocks = shipped(s.sealAll());
    expect(blocks.map((b) => b.minute)).toEqual([M]);
    expect(blocks[0]!.endpoints.map((e) => [e.port, e.lastSecond])).toEqual([
      [1, 30],
      [2, 30],
    ]);
    expect(s.stats()).toMatchObject({ retimed: 2, rejected: 1 });
    expect(log.join('\n')).toMatch(/endpoint 198\.51\.100\.7:3 left out: .*clientId/);
  });

  it('splits a huge minute into parts that share one seq', () => {
    const s = sealer();
    const deltas: FlowDelta[] = [];
    for (let i = 0; i < 20_500; i++) {
      deltas.push(
        delta({ remoteIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, remotePort: 1 }),
      );
    }
    s.addDeltas(deltas, at(M, 1));
    const parts = s.sealAll();
    const blocks = shipped(parts);
    expect(blocks.length).toBeGreaterThan(1);
    expect(new Set(blocks.map((b) => b.seq)).size).toBe(1);
    expect(blocks.map((b) => b.part)).toEqual(blocks.map((_, i) => i));
    expect(blocks.reduce((n, b) => n + b.endpoints.length, 0)).toBe(20_500);
    expect(new Set(parts.map((p) => blockRecord(p).partitionKey)).size).toBe(1);
  });
});
