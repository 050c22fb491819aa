/**
 * Blocks: bytes per endpoint-minute on the wire (Kinesis record data) and
 * stored (the whole DynamoDB item: key, attributes and data), for the sealed
 * blocks of realistic synthetic host-minutes as the agent seals them
 * (sealParts, encodeBlock at AGENT_BLOCK_QUALITY), against
 * the old gzip'd NDJSON lines (encodeRecords) of the same flows; write units
 * per block item from the item's billed size, checked against what dynalite
 * meters for a PutItem of that item (ReturnConsumedCapacity, metered like
 * DynamoDB); decoding speed against decoding the old lines; and encoding
 * speed and bytes at the agent's brotli quality against the roll-ups' 11.
 */
import { DeleteCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Block, BlockEndpoint } from '../../contract/block.js';
import {
  AGENT_BLOCK_QUALITY,
  type BlockHead,
  type BlockQuality,
  DEFAULT_LIMITS,
  decodeBlock,
  encodeBlock,
  mergeEndpoints,
  SMALLEST_BLOCK_QUALITY,
  sealEncodedParts,
  sealParts,
} from '../../contract/block-codec.js';
import { decodeRecord, encodeRecords } from '../../contract/codec.js';
import { DEFAULTS } from '../../contract/resources.js';
import { agentKey, ttlFor } from '../../contract/table-keys.js';
import { bytesAllocated } from '../allocation-sampler.js';
import { blockItem } from '../block-item.js';
import { itemBytes } from '../dynamodb-item-size.js';
import { type BenchCase, compared, type Figure, plain, spread } from '../harness.js';
import { recordMeasurement } from '../measured.js';
import { kinesisBilledKb, type PartSize, writeUnits } from '../scale-model.js';
import { documentClient, prepareHandlerEnvironment, startStoreChild } from '../store-harness.js';
import { type SyntheticHostMinute, syntheticHostMinute } from '../synthetic-flows.js';

const AGENT = 'i-0a1b2c3d4e5f60718';
const HOST = 'ip-10-0-17-42.eu-west-1.compute.internal';
const MINUTE = 29_666_666;

/** Seals every service of a host-minute into parts as the agent does, one seq per service. */
export function sealHostMinute(
  h: SyntheticHostMinute,
  firstSeq: number,
  minute: number = MINUTE,
): Block[] {
  const out: Block[] = [];
  let seq = firstSeq;
  for (const [service, endpoints] of h.byService) {
    const head = { agentId: AGENT, host: HOST, service, minute, seq: seq++ };
    out.push(...sealParts(head, endpoints, DEFAULT_LIMITS, AGENT_BLOCK_QUALITY));
  }
  return out;
}

interface Sized extends PartSize {
  block: Block;
  data: Buffer;
  item: ReturnType<typeof blockItem>;
}

/** The parts encoded as the agent ships them (or at `quality`), with their items and sizes. */
function sized(
  blocks: readonly Block[],
  services: readonly string[],
  quality: BlockQuality = AGENT_BLOCK_QUALITY,
): Sized[] {
  return blocks.map((block) => {
    const data = encodeBlock(block, quality);
    const item = blockItem(block, data, DEFAULTS.retentionHours);
    return {
      block,
      data,
      item,
      service: services.indexOf(block.service),
      endpoints: block.endpoints.length,
      dataBytes: data.length,
      itemBytes: itemBytes(item),
    };
  });
}

/** The early part (two new clients of one service) and the heartbeat, sized. */
export function earlyAndHeartbeat(): {
  early: Sized;
  heartbeat: { recordBytes: number; itemBytes: number };
} {
  const fresh = syntheticHostMinute({ endpoints: 2, minute: MINUTE, seed: 77 });
  const [service, endpoints] = [...fresh.byService][0]!;
  const early = sized(
    sealParts({ agentId: AGENT, host: HOST, service, minute: MINUTE, seq: 99 }, endpoints),
    [service],
  )[0]!;
  // The agent's heartbeat: a v1 line a minute, and the agent item it updates.
  const now = MINUTE * 60_000;
  const hb = encodeRecords(
    [
      {
        v: 1,
        type: 'heartbeat',
        agentId: AGENT,
        host: HOST,
        at: now,
        flows: 1000,
        dropped: 0,
        spooled: 0,
        sources: ['hook', 'conntrack'],
      },
    ],
    { nextSeq: () => 123_456 },
  )[0]!;
  const agentItem = {
    ...agentKey(AGENT),
    host: HOST,
    lastHeartbeat: now,
    flows: 1000,
    dropped: 0,
    spooled: 0,
    sources: 'hook,conntrack',
    ttl: ttlFor(now, DEFAULTS.retentionHours),
  };
  return { early, heartbeat: { recordBytes: hb.data.length, itemBytes: itemBytes(agentItem) } };
}

/** One host-minute of `n` endpoints sealed and sized, with its service mix. */
export function hostMinuteSample(n: number): {
  host: SyntheticHostMinute;
  services: string[];
  parts: Sized[];
  mix: number[];
} {
  const host = syntheticHostMinute({ endpoints: n, minute: MINUTE, seed: n });
  const services = [...host.byService.keys()];
  const parts = sized(sealHostMinute(host, 1), services);
  return { host, services, parts, mix: services.map((s) => host.byService.get(s)!.length / n) };
}

/** Endpoint-minutes per second one core decodes (the stored path, as the readers do) and merges, over `rounds` rounds after a warm-up. */
export function mergeRates(parts: readonly Sized[], n: number, rounds: number): number[] {
  const out: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    const t0 = performance.now();
    const all = [];
    for (const p of parts) {
      // The store's readers decode their own checked parts on the stored path.
      const d = decodeBlock(p.data, { stored: true });
      if (!d.ok) throw new Error(`block part ${p.block.part} of ${p.block.service}: ${d.reason}`);
      all.push(...d.block.endpoints);
    }
    const merged = mergeEndpoints(all);
    const ms = performance.now() - t0;
    if (merged.length !== n) throw new Error(`decoded ${merged.length} endpoints, expected ${n}`);
    if (r > 0) out.push(n / (ms / 1000));
  }
  return out;
}

/**
 * Endpoints per second one core encodes (encodeBlock: validate, serialize,
 * brotli) at each quality, rounds alternating which goes first, after a
 * warm-up; and the bytes each gives.
 */
export function encodeRates(
  parts: readonly Sized[],
  rounds: number,
  qualities: readonly BlockQuality[],
): { rates: number[][]; bytes: number[] } {
  const n = parts.reduce((s, p) => s + p.endpoints, 0);
  const rates = qualities.map(() => [] as number[]);
  // Sizing every part at every quality first is also the warm-up.
  const bytes = qualities.map((q) => parts.reduce((s, p) => s + encodeBlock(p.block, q).length, 0));
  for (let r = 0; r < rounds; r++) {
    const order = qualities.map((_, k) => k);
    if (r % 2 === 1) order.reverse();
    for (const k of order) {
      const t0 = performance.now();
      for (const p of parts) encodeBlock(p.block, qualities[k]);
      rates[k]!.push(n / ((performance.now() - t0) / 1000));
    }
  }
  return { rates, bytes };
}

/** One service-minute of a synthetic host's endpoints, all under one service, as the seal figures take it. */
interface BigService {
  endpoints: BlockEndpoint[];
  head: BlockHead;
}

function bigService(n: number): BigService {
  const host = syntheticHostMinute({ endpoints: n, minute: MINUTE, seed: 5 });
  return {
    endpoints: [...host.byService.values()].flat(),
    head: { agentId: AGENT, host: HOST, service: 'one', minute: MINUTE, seq: 1 },
  };
}

/**
 * Endpoints per second one core seals and encodes one service-minute of `n`
 * endpoints as the agent's sealer does (sealEncodedParts) at the agent's
 * brotli quality, against the same at the smallest quality (the agent's
 * earlier one), in alternating order; and the agent CPU per 1,000 flows the
 * difference is worth (each flow is one endpoint of a minute's main part).
 */
function bigServiceSeal(
  { endpoints, head }: BigService,
  rounds: number,
  log: (m: string) => void,
): Figure[] {
  const n = endpoints.length;
  const qualities = [AGENT_BLOCK_QUALITY, SMALLEST_BLOCK_QUALITY] as const;
  const rates: [number[], number[]] = [[], []];
  const sizes: [number[], number[]] = [[], []];
  for (let r = 0; r < rounds; r++) {
    for (const k of r % 2 === 0 ? [0, 1] : [1, 0]) {
      const t0 = performance.now();
      const bytes = sealEncodedParts(head, endpoints, DEFAULT_LIMITS, qualities[k]).map(
        (p) => p.data.length,
      );
      const rate = n / ((performance.now() - t0) / 1000);
      rates[k]!.push(rate);
      sizes[k] = bytes;
      log(
        `one ${n}-endpoint service-minute at quality ${qualities[k]}: ${bytes.length} parts of ${bytes.join(', ')} B, ${rate.toFixed(0)} endpoints/s`,
      );
    }
  }
  const [agent, smallest] = rates.map((r) => spread(r).median) as [number, number];
  // Seconds of CPU a minute per endpoint saved, as ms CPU/s per 1,000 flows.
  const savedMsPerSecond = ((1 / smallest - 1 / agent) * 1_000 * 1_000) / 60;
  const count = n.toLocaleString('en-US');
  return [
    compared(
      `seal + encode, one ${count}-endpoint service-minute, agent's quality ${AGENT_BLOCK_QUALITY}`,
      'endpoints/s',
      rates[0],
      `quality ${SMALLEST_BLOCK_QUALITY} (the agent's before)`,
      rates[1],
      'higher',
      {
        note: `sealEncodedParts as the agent's sealer runs it; parts of ${sizes[0].join(', ')} B against ${sizes[1].join(', ')} B`,
      },
    ),
    plain(
      `agent CPU per 1,000 active flows the faster quality saves, from the ${count}-endpoint seal`,
      'ms CPU/s',
      [savedMsPerSecond],
      { note: 'one seal a minute per flow: (1/rate at 11 - 1/rate at 5) x 1,000 flows / 60 s' },
    ),
  ];
}

/**
 * What sealing one service-minute of `n` endpoints allocates per endpoint,
 * garbage included: all of it is alive until the seal ends, so at 100,000
 * endpoints much of it outlives young collections and is freed only by a
 * full one (what lets the old generation grow to a multiple of the live heap).
 */
async function sealAllocation({ endpoints, head }: BigService): Promise<Figure> {
  const n = endpoints.length;
  const v6 = endpoints.filter((e) => e.ip.includes(':')).length;
  const perEndpoint: number[] = [];
  for (let r = 0; r < 3; r++) {
    const bytes = await bytesAllocated(
      () => sealEncodedParts(head, endpoints, DEFAULT_LIMITS, AGENT_BLOCK_QUALITY),
      1,
    );
    perEndpoint.push(bytes / endpoints.length);
  }
  return plain(
    `seal + encode: bytes allocated per endpoint, one ${n.toLocaleString('en-US')}-endpoint service-minute`,
    'B',
    perEndpoint,
    {
      note: `sealEncodedParts at the agent's quality, ${Math.round((100 * v6) / endpoints.length)} % IPv6 clients; V8 sampling heap profile, collected objects included (4,205 B before the allocation-light sort, address bytes and IPv6 parse)`,
    },
  );
}

/** Sizes of the parts, as the scale model takes them. */
export function partSizes(parts: readonly Sized[]): PartSize[] {
  return parts.map(({ service, endpoints, dataBytes, itemBytes }) => ({
    service,
    endpoints,
    dataBytes,
    itemBytes,
  }));
}

export const blocks: BenchCase = {
  id: 'blocks',
  title: 'sealed blocks: bytes and write units per endpoint-minute vs gzip’d NDJSON',
  async run({ quick, log }) {
    const figures: Figure[] = [];
    const roundCount = quick ? 3 : 9;
    const sizes = quick ? [1_000] : [1_000, 10_000];
    const store = await startStoreChild();
    try {
      prepareHandlerEnvironment();
      const doc = documentClient(store.endpoints.dynamodbEndpoint);
      const table = store.endpoints.tableName;
      /** Write units dynalite meters for a PutItem of the item (as the aggregate writes it). */
      const metered = async (item: Record<string, unknown>): Promise<number> => {
        const out = await doc.send(
          new PutCommand({
            TableName: table,
            Item: item,
            ConditionExpression: 'attribute_not_exists(pk) OR h = :h',
            ExpressionAttributeValues: { ':h': item.h },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        );
        return out.ConsumedCapacity?.CapacityUnits ?? Number.NaN;
      };

      for (const n of sizes) {
        const { host, services, parts, mix } = hostMinuteSample(n);
        const wire = parts.reduce((s, p) => s + p.dataBytes, 0);
        const stored = parts.reduce((s, p) => s + p.itemBytes, 0);
        const units = parts.reduce((s, p) => s + writeUnits(p.itemBytes), 0);
        const kb = parts.reduce((s, p) => s + kinesisBilledKb(p.dataBytes), 0);
        let seq = 0;
        const old = encodeRecords(host.lines, { nextSeq: () => seq++ });
        const oldWire = old.reduce((s, r) => s + r.data.length, 0);
        const oldKb = old.reduce((s, r) => s + kinesisBilledKb(r.data.length), 0);
        const meteredUnits: number[] = [];
        for (const p of parts) meteredUnits.push(await metered(p.item));
        // Every size seals the same keys: clear them so the next size's puts are new items.
        for (const p of parts) {
          await doc.send(
            new DeleteCommand({ TableName: table, Key: { pk: p.item.pk, sk: p.item.sk } }),
          );
        }
        const meteredTotal = meteredUnits.reduce((s, u) => s + u, 0);
        const label = `${n.toLocaleString('en-US')}-endpoint host-minute, ${services.length} services`;
        log(
          `${label}: ${parts.length} parts, ${wire} B wire, ${stored} B stored, ${units} WRU computed, ${meteredTotal} metered`,
        );
        if (n === 1_000) {
          recordMeasurement('hostMinuteParts', partSizes(parts));
          const blocksOf = parts.map((p) => p.block);
          recordMeasurement(
            'hostMinutePartsSmallest',
            partSizes(sized(blocksOf, services, SMALLEST_BLOCK_QUALITY)),
          );
          recordMeasurement('serviceMix', mix);
        }
        figures.push(
          compared(
            `wire bytes per endpoint-minute, ${label}`,
            'B',
            [wire / n],
            'v1 gzip’d NDJSON, same flows',
            [oldWire / n],
            'lower',
            {
              note: `${parts.length} main parts (one per service) of ${parts.map((p) => p.dataBytes).join(', ')} B; v1: ${old.length} record(s) of one line per endpoint`,
            },
          ),
          plain(`stored bytes per endpoint-minute (whole item), ${label}`, 'B', [stored / n], {
            note: `key + ${Object.keys(parts[0]!.item).length - 2} attributes + data; ${(stored - wire) / parts.length} B of key and attributes per item`,
          }),
          compared(
            `Kinesis billed KB per 1,000 endpoint-minutes, ${label}`,
            'KB',
            [(kb * 1000) / n],
            'v1 gzip’d NDJSON',
            [(oldKb * 1000) / n],
            'lower',
            { note: 'on-demand bills each record rounded up to 1 KB' },
          ),
          plain(
            `write units per block item, ${label}`,
            'WRU',
            parts.map((p) => writeUnits(p.itemBytes)),
            {
              note: `one per started KB of the item (${parts.map((p) => p.itemBytes).join(', ')} B); dynalite metered ${meteredUnits.join(', ')} for the same PutItems (${meteredTotal === units ? 'equal' : 'DIFFERENT'})`,
            },
          ),
          plain(`write units per 1,000 endpoint-minutes, ${label}`, 'WRU', [(units * 1000) / n], {
            note: 'the old layout wrote 3 items + 8/5 index units per client a minute: 4,600 per 1,000',
          }),
        );

        // Decoding: every part of the host-minute decoded and merged, vs v1 decodeRecord of its lines.
        const rate = mergeRates(parts, n, roundCount);
        const oldRate: number[] = [];
        for (let r = 0; r <= roundCount; r++) {
          const t0 = performance.now();
          let lines = 0;
          for (const rec of old) lines += decodeRecord(rec.data).lines.length;
          const ms = performance.now() - t0;
          if (lines !== n) throw new Error(`decoded ${lines} v1 lines, expected ${n}`);
          if (r > 0) oldRate.push(n / (ms / 1000));
        }
        const encoded = encodeRates(parts, roundCount, [
          AGENT_BLOCK_QUALITY,
          SMALLEST_BLOCK_QUALITY,
        ]);
        const [agentRate, smallestRate] = encoded.rates as [number[], number[]];
        const [agentBytes, smallestBytes] = encoded.bytes as [number, number];
        if (n === 1_000) {
          // The best round: the machine is shared, the fastest round is the least disturbed.
          recordMeasurement('mergeEndpointMinutesPerSecond', Math.max(...rate));
          // Roll-up parts are encoded at the smallest quality.
          recordMeasurement('encodeEndpointsPerSecond', Math.max(...smallestRate));
        }
        figures.push(
          compared(
            `decode + merge, ${label}`,
            'endpoint-min/s',
            rate,
            'v1 decodeRecord (gunzip + JSON + schema)',
            oldRate,
            'higher',
            { note: 'one core; the summarizer and the query function do this per block' },
          ),
          compared(
            `encode (validate + serialize + brotli), agent's quality ${AGENT_BLOCK_QUALITY}, ${label}`,
            'endpoints/s',
            agentRate,
            `quality ${SMALLEST_BLOCK_QUALITY} (roll-ups; the agent's before)`,
            smallestRate,
            'higher',
            {
              note: `one core; the agent does this once per part, the roll-up builder at quality ${SMALLEST_BLOCK_QUALITY} per roll-up part`,
            },
          ),
          compared(
            `wire bytes per endpoint-minute at the agent's quality ${AGENT_BLOCK_QUALITY}, ${label}`,
            'B',
            [agentBytes / n],
            `quality ${SMALLEST_BLOCK_QUALITY}`,
            [smallestBytes / n],
            'lower',
            { note: 'the price of the faster encode, in bytes; the scale model prices it' },
          ),
        );
      }

      const big = bigService(quick ? 20_000 : 100_000);
      figures.push(...bigServiceSeal(big, quick ? 1 : 3, log));
      figures.push(await sealAllocation(big));

      // An early part: the two new clients of one service, sent at once; the heartbeat.
      const { early, heartbeat } = earlyAndHeartbeat();
      const earlyMetered = await metered(early.item);
      recordMeasurement('earlyPart', { ...partSizes([early])[0]!, service: 0 });
      recordMeasurement('heartbeat', heartbeat);
      figures.push(
        plain(
          `early part (${early.endpoints} new endpoints of one service)`,
          'B',
          [early.dataBytes],
          {
            note: `item ${early.itemBytes} B: ${writeUnits(early.itemBytes)} WRU computed, ${earlyMetered} metered by dynalite; one Kinesis KB`,
          },
        ),
        plain('heartbeat record (v1 line, gzip)', 'B', [heartbeat.recordBytes], {
          note: `agent item about ${heartbeat.itemBytes} B: ${writeUnits(heartbeat.itemBytes)} WRU a minute per agent`,
        }),
      );
      return figures;
    } finally {
      await store.stop();
    }
  },
};
