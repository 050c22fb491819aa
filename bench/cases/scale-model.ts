/**
 * Scale model: what 1,000 hosts x 1,000 active endpoints at one-minute
 * freshness cost a month on the block store (Kinesis, Lambda, DynamoDB,
 * CloudWatch), from the part sizes and handler speeds measured earlier in
 * this run (measured here when cheap, or a named default when the measuring
 * case did not run), side by side with the old per-client layout (its own
 * formulas, fed the figures its last full run recorded) and VPC Flow Logs
 * into CloudWatch Logs and into S3. Prices and their sources: bench/prices.ts.
 */

import { MAX_PART_BYTES, SEND_SPREAD_SECONDS } from '../../contract/block.js';
import { SMALLEST_BLOCK_QUALITY } from '../../contract/block-codec.js';
import {
  AGGREGATE_EVENT_SOURCE,
  DEFAULTS,
  ROLLUP_TIMEOUT_MINUTES,
} from '../../contract/resources.js';
import { BLOCK_SHARDS } from '../../contract/table-keys.js';
import { STREAM_DEFAULTS, TABLE_CAPACITY_DEFAULTS } from '../../infra/config.js';
import { projectFlowLogsToCloudWatch, projectFlowLogsToS3 } from '../flow-logs-model.js';
import { type BenchCase, type Figure, plain } from '../harness.js';
import { measurement } from '../measured.js';
import { OLD_LAYOUT_RECORDED, oldLayoutInputs, projectFleet } from '../old-layout-model.js';
import { MODEL_INPUTS, PRICES, PRICES_AS_OF, type Sourced } from '../prices.js';
import { type BlockFleetInputs, projectBlocks } from '../scale-model.js';
import {
  earlyAndHeartbeat,
  encodeRates,
  hostMinuteSample,
  mergeRates,
  partSizes,
} from './blocks.js';

const HOSTS = 1_000;
const ENDPOINTS_PER_HOST = 1_000;

/** The budget for Kinesis + Lambda + DynamoDB + CloudWatch, and for the early parts' share of writes. */
export const GOALS = { monthlyUsd: 600, earlyShareOfWrites: 0.15 } as const;

/**
 * The agent's shipped defaults as the spec states them (early parts: token
 * bucket of burst 2, one token per 30 s; one main part per service-minute).
 */
export const SHIPPED = {
  earlyBurst: 2,
  earlyRefillSeconds: 30,
  sealSeconds: 60,
  streamMode: STREAM_DEFAULTS.mode,
  provisionedShards: STREAM_DEFAULTS.shardCount,
  tableMode: TABLE_CAPACITY_DEFAULTS.mode,
  tableTargetUtilization: TABLE_CAPACITY_DEFAULTS.targetUtilizationPercent / 100,
  tableMinCapacity: TABLE_CAPACITY_DEFAULTS.minCapacity,
  /** The summarizer keeps the window's earlier minutes (functions/summarize/). */
  summarizeReads: 'warm-cache',
} as const;

/**
 * Assumptions (not measured), stated with every projection. Churn: 5
 * endpoints never seen before per agent-minute, i.e. 0.5 % of the 1,000
 * active endpoints a minute (an endpoint stays ~200 min); it drives the early
 * parts. The rest are small and named where they are used.
 */
export const ASSUMED = {
  churnPerAgentMinute: 5,
  redeliveredShare: 0.01,
  lateShare: 0.001,
  summaryItemBytes: 2_048,
  /** A full hour of a service's counts: under 1 KB even at a million endpoints (test/e2e/functions/history.test.ts). */
  countsItemBytes: 1_000,
  apiWindowQueriesPerMinute: 1,
  /** Page loads reading a card's hour of counts, fleet-wide. */
  historyQueriesPerMinute: 10,
  /** One query instance re-reading the alarms every 30 s while someone watches. */
  alarmReadsPerMinute: 2,
  alarmsPerService: 2,
  /** The stack's operations alarms (infra/operations-alarms.ts: 12 with the defaults). */
  operationalAlarms: 12,
  operationalMetrics: 6,
  /** The summarizer loses its cache (a new instance) about once an hour, and then reads the whole window. */
  summarizeColdStartsPerHour: 1,
} as const;

/**
 * Used when the aggregator case did not run: a deliberately slow figure
 * (endpoint-minutes stored per second per invocation, and ms per invocation).
 */
const AGGREGATE_FALLBACK = {
  endpointMinutesPerSecond: 20_000,
  cpuEndpointMinutesPerSecond: 20_000,
  fixedMs: 50,
} as const;

/** Builds the model's inputs from this run's measurements (or measures them here). */
export function blockInputs(overrides: Partial<BlockFleetInputs> = {}): {
  inputs: BlockFleetInputs;
  from: string[];
} {
  const from: string[] = [];
  let parts = measurement('hostMinuteParts');
  let mix = measurement('serviceMix');
  if (!parts || !mix) {
    const s = hostMinuteSample(ENDPOINTS_PER_HOST);
    parts = partSizes(s.parts);
    mix = s.mix;
    from.push('part sizes: measured here');
  } else from.push('part sizes: blocks case');
  let early = measurement('earlyPart');
  let heartbeat = measurement('heartbeat');
  if (!early || !heartbeat) {
    const e = earlyAndHeartbeat();
    early = { ...partSizes([e.early])[0]!, service: 0 };
    heartbeat = e.heartbeat;
  }
  let merge =
    overrides.mergeEndpointMinutesPerSecond ?? measurement('mergeEndpointMinutesPerSecond');
  if (merge === undefined) {
    const s = hostMinuteSample(ENDPOINTS_PER_HOST);
    merge = Math.max(...mergeRates(s.parts, ENDPOINTS_PER_HOST, 5));
    from.push(`decode+merge ${merge.toFixed(0)} endpoint-min/s (best of 5 rounds): measured here`);
  } else from.push(`decode+merge ${merge.toFixed(0)} endpoint-min/s (best round): blocks case`);
  let encode = overrides.encodeEndpointsPerSecond ?? measurement('encodeEndpointsPerSecond');
  if (encode === undefined) {
    const s = hostMinuteSample(ENDPOINTS_PER_HOST);
    encode = Math.max(...encodeRates(s.parts, 3, [SMALLEST_BLOCK_QUALITY]).rates[0]!);
    from.push(`encode ${encode.toFixed(0)} endpoints/s (best of 3 rounds): measured here`);
  } else from.push(`encode ${encode.toFixed(0)} endpoints/s (best round): blocks case`);
  const aggRate = measurement('aggregateEndpointMinutesPerSecond');
  const aggCpu = measurement('aggregateCpuEndpointMinutesPerSecond');
  const aggFixed = measurement('aggregateFixedMs');
  from.push(
    aggRate === undefined
      ? `aggregate ${AGGREGATE_FALLBACK.endpointMinutesPerSecond} endpoint-min/s: DEFAULT (aggregator case did not run)`
      : `aggregate ${aggRate.toFixed(0)} endpoint-min/s wall, ${aggCpu?.toFixed(0)} per CPU second: aggregator case`,
  );
  const inputs: BlockFleetInputs = {
    hosts: HOSTS,
    endpointsPerHost: ENDPOINTS_PER_HOST,
    serviceMix: mix,
    mainParts: parts,
    sealSeconds: SHIPPED.sealSeconds,
    earlyPart: early,
    churnPerAgentMinute: ASSUMED.churnPerAgentMinute,
    earlyBurst: SHIPPED.earlyBurst,
    earlyRefillSeconds: SHIPPED.earlyRefillSeconds,
    heartbeatRecordBytes: heartbeat.recordBytes,
    heartbeatItemBytes: heartbeat.itemBytes,
    redeliveredShare: ASSUMED.redeliveredShare,
    lateShare: ASSUMED.lateShare,
    summaryItemBytes: ASSUMED.summaryItemBytes,
    countsItemBytes: ASSUMED.countsItemBytes,
    windowMinutes: DEFAULTS.activeWindowSeconds / 60,
    retentionHours: DEFAULTS.retentionHours,
    blockShards: BLOCK_SHARDS,
    maxPartBytes: MAX_PART_BYTES,
    batchSize: AGGREGATE_EVENT_SOURCE.batchSize,
    batchWindowSeconds: AGGREGATE_EVENT_SOURCE.maxBatchingWindowSeconds,
    parallelizationFactor: AGGREGATE_EVENT_SOURCE.parallelizationFactor,
    streamMode: SHIPPED.streamMode,
    provisionedShards: SHIPPED.provisionedShards,
    tableMode: SHIPPED.tableMode,
    tableTargetUtilization: SHIPPED.tableTargetUtilization,
    tableMinCapacity: SHIPPED.tableMinCapacity,
    sendSpreadSeconds: SEND_SPREAD_SECONDS,
    aggregateMemoryGb: MODEL_INPUTS.aggregateMemoryGb.value,
    summarizeMemoryGb: MODEL_INPUTS.summarizeMemoryGb.value,
    queryMemoryGb: MODEL_INPUTS.queryMemoryGb.value,
    aggregateEndpointMinutesPerSecond: aggRate ?? AGGREGATE_FALLBACK.endpointMinutesPerSecond,
    aggregateCpuEndpointMinutesPerSecond: aggCpu ?? AGGREGATE_FALLBACK.cpuEndpointMinutesPerSecond,
    aggregateFixedMs: aggFixed ?? AGGREGATE_FALLBACK.fixedMs,
    mergeEndpointMinutesPerSecond: merge,
    encodeEndpointsPerSecond: encode,
    summarizeReads: SHIPPED.summarizeReads,
    summarizeColdStartsPerHour: ASSUMED.summarizeColdStartsPerHour,
    apiWindowQueriesPerMinute: ASSUMED.apiWindowQueriesPerMinute,
    historyQueriesPerMinute: ASSUMED.historyQueriesPerMinute,
    alarmReadsPerMinute: ASSUMED.alarmReadsPerMinute,
    operationalAlarms: ASSUMED.operationalAlarms,
    alarmsPerService: ASSUMED.alarmsPerService,
    operationalMetrics: ASSUMED.operationalMetrics,
    ...overrides,
  };
  return { inputs, from };
}

/**
 * The rows of the projection: the shipped defaults first (the headline),
 * then sensitivities, then settings that cost more, labelled EXPENSIVE.
 */
export const SCENARIOS: readonly { label: string; overrides: Partial<BlockFleetInputs> }[] = [
  { label: 'blocks, shipped defaults', overrides: {} },
  { label: 'blocks, churn 1/agent-min', overrides: { churnPerAgentMinute: 1 } },
  { label: 'blocks, churn 50/agent-min', overrides: { churnPerAgentMinute: 50 } },
  {
    label: 'blocks, summarizer without its cache (reads the window every run)',
    overrides: { summarizeReads: 'whole-window' },
  },
  { label: 'blocks, aggregate at 1 GB (the earlier size)', overrides: { aggregateMemoryGb: 1 } },
  {
    label: 'blocks, auto scaling at a 50 % target (more headroom)',
    overrides: { tableTargetUtilization: 0.5 },
  },
  { label: 'blocks, EXPENSIVE: on-demand table', overrides: { tableMode: 'on-demand' } },
  { label: 'blocks, EXPENSIVE: on-demand stream', overrides: { streamMode: 'on-demand' } },
  {
    label: 'blocks, EXPENSIVE: on-demand stream and table, churn 50/agent-min',
    overrides: { streamMode: 'on-demand', tableMode: 'on-demand', churnPerAgentMinute: 50 },
  },
  { label: 'blocks, EXPENSIVE: main parts every 10 s', overrides: { sealSeconds: 10 } },
];

/** How a monthly total stands against the goal, as the row states it. */
export function goalVerdict(totalUsd: number): string {
  return totalUsd <= GOALS.monthlyUsd
    ? `meets the $${GOALS.monthlyUsd} goal`
    : `MISSES the $${GOALS.monthlyUsd} goal by $${Math.ceil(totalUsd - GOALS.monthlyUsd)}`;
}

const usd = (n: number) => `$${n.toLocaleString('en-US', { maximumFractionDigits: 0 })}`;
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

export const scaleModel: BenchCase = {
  id: 'scale-model',
  title: 'fleet projection: 1,000 hosts × 1,000 active endpoints, one-minute freshness',
  async run({ log }) {
    const { inputs, from } = blockInputs();
    const assumed = `assumed: churn ${ASSUMED.churnPerAgentMinute} new endpoints per agent-minute, ${pct(ASSUMED.redeliveredShare)} of records redelivered, ${pct(ASSUMED.lateShare)} of main parts late, summary item ${ASSUMED.summaryItemBytes} B, hour of counts ${ASSUMED.countsItemBytes} B, ${ASSUMED.apiWindowQueriesPerMinute} API window query a minute, ${ASSUMED.historyQueriesPerMinute} history requests and ${ASSUMED.alarmReadsPerMinute} DescribeAlarms calls a minute, ${ASSUMED.operationalAlarms} + ${ASSUMED.alarmsPerService}/service alarms`;
    log(from.join('; '));
    log(assumed);
    const figures: Figure[] = [];
    // What the agent's faster brotli quality costs, priced in the same run.
    const smallest = measurement('hostMinutePartsSmallest');
    const scenarios = smallest
      ? [
          SCENARIOS[0]!,
          {
            label: `blocks, agents sealing at brotli quality ${SMALLEST_BLOCK_QUALITY} (the earlier default)`,
            overrides: { mainParts: smallest },
          },
          ...SCENARIOS.slice(1),
        ]
      : SCENARIOS;
    for (const s of scenarios) {
      const p = projectBlocks({ ...inputs, ...s.overrides });
      const m = p.monthly;
      const a = p.perAgentMinute;
      const w = p.writeUnits;
      const tag = s.label;
      const isDefault = Object.keys(s.overrides).length === 0;
      figures.push(
        plain(
          `${tag}: monthly total (Kinesis + Lambda + DynamoDB + CloudWatch)`,
          'USD',
          [m.total],
          {
            goal: `≤ $${GOALS.monthlyUsd}`,
            note: `${goalVerdict(m.total)}: Kinesis ${usd(m.kinesis)}, Lambda ${usd(m.lambda)}, DynamoDB writes ${usd(m.dynamodbWrites)} + reads ${usd(m.dynamodbReads)} + storage ${usd(m.dynamodbStorage)} (${p.storageGb.toFixed(1)} GB), CloudWatch ${usd(m.cloudWatch)} (${p.cloudWatch.metrics} metrics, ${p.cloudWatch.alarms} alarms, ${p.cloudWatch.logGb.toFixed(1)} GB logs)${isDefault ? `; ${from.join('; ')}; ${assumed}` : ''}`,
          },
        ),
        plain(
          `${tag}: early parts' share of DynamoDB write units`,
          '%',
          [p.earlyShareOfWrites * 100],
          {
            goal: `≤ ${GOALS.earlyShareOfWrites * 100} %`,
            note: `per agent-minute: ${a.mainParts} main parts (${a.mainWriteUnits} WRU), ${a.earlySends.toFixed(2)} early sends = ${a.earlyParts.toFixed(2)} early parts (${a.earlyWriteUnits.toFixed(2)} WRU); month: main ${(w.main / 1e6).toFixed(0)}M, early ${(w.early / 1e6).toFixed(0)}M, heartbeats ${(w.heartbeats / 1e6).toFixed(0)}M, services ${(w.services / 1e6).toFixed(1)}M, summaries ${(w.summaries / 1e6).toFixed(2)}M, roll-ups ${(w.rollups / 1e6).toFixed(1)}M, redelivered ${(w.redelivered / 1e6).toFixed(1)}M, late ${(w.lateMarks / 1e6).toFixed(2)}M`,
          },
        ),
      );
      if (isDefault) {
        figures.push(
          plain(`${tag}: Kinesis records`, 'records/s', [p.recordsPerSecond], {
            note: `${(p.wireBytesPerSecond / 1e3).toFixed(0)} kB/s; ${p.shardsNeeded} shard(s) needed (1,000 records/s and 1 MiB/s each), ${p.shards} ${inputs.streamMode}${p.streamOverCapacity ? ' — OVER CAPACITY' : ''}`,
          }),
          plain(`${tag}: aggregate Lambda concurrency`, 'instances', [p.aggregateConcurrency], {
            note: `${p.aggregateInvocationsPerSecond.toFixed(2)} invocations/s (a batch per poller every ${p.batchIntervalSeconds.toFixed(1)} s), ${(p.aggregateSecondsPerInvocation * 1000).toFixed(0)} ms each`,
          }),
          plain(`${tag}: summarize run time`, 's', [p.summarizeSecondsPerRun], {
            goal: '< 60 s',
            note: `${inputs.summarizeReads}: ${inputs.summarizeReads === 'warm-cache' ? `the newly complete minute of every service's blocks per warm run; a cold start (${inputs.summarizeColdStartsPerHour}/h assumed) reads the ${inputs.windowMinutes}-minute window in ${p.summarizeColdSecondsPerRun.toFixed(0)} s` : `${inputs.windowMinutes} minutes of every service's blocks per run`}; decoded and merged at the measured rate, scaled to the Lambda's CPU share; roll-ups run in their own function`,
          }),
          plain(
            `${tag}: Lambda GB-seconds`,
            'GB-s/month',
            [
              p.gbSeconds.aggregate +
                p.gbSeconds.summarize +
                p.gbSeconds.rollups +
                p.gbSeconds.query,
            ],
            {
              note: `aggregate ${(p.gbSeconds.aggregate / 1e6).toFixed(2)}M at ${inputs.aggregateMemoryGb} GB (${(p.aggregateSecondsPerInvocation * 1000).toFixed(0)} ms x ${p.aggregateInvocationsPerSecond.toFixed(2)}/s), summarize ${(p.gbSeconds.summarize / 1e6).toFixed(2)}M, roll-ups ${(p.gbSeconds.rollups / 1e6).toFixed(2)}M, query ${(p.gbSeconds.query / 1e6).toFixed(2)}M`,
            },
          ),
          plain(`${tag}: roll-up work per hour (roll-up function)`, 's', [p.rollupSecondsPerHour], {
            goal: '< 3600 s',
            note: `the hour's blocks decoded, merged and encoded, one (service, shard) at a time; the biggest shard takes ${p.rollupLongestShardSeconds.toFixed(0)} s of the ${((ROLLUP_TIMEOUT_MINUTES * 60 * 2) / 3).toFixed(0)} s in which a run starts shards (timeout ${ROLLUP_TIMEOUT_MINUTES} min); its reads take ${p.rollupReadSecondsPerHour.toFixed(0)} s of the capacity the summaries and the API leave; minute summaries never wait for it`,
          }),
          plain(
            `${tag}: DynamoDB capacity (${inputs.tableMode})`,
            'WCU',
            [p.provisionedCapacity.write],
            {
              note: `writes: mean ${p.tableRates.meanWrite.toFixed(0)} WRU/s, peak ${p.tableRates.peakWrite.toFixed(0)} WRU/s (agents send within ${inputs.sendSpreadSeconds} s of each minute); reads: mean ${p.tableRates.meanRead.toFixed(0)} RRU/s; provisioned ${p.provisionedCapacity.write} WCU and ${p.provisionedCapacity.read} RCU at a ${(inputs.tableTargetUtilization * 100).toFixed(0)} % target (minimum ${inputs.tableMinCapacity}); the same load on-demand: ${usd((p.writeUnits.total / 1e6) * PRICES.dynamodbWriteRequestUnitsPerMillion.value)} writes + ${usd((p.readUnits.total / 1e6) * PRICES.dynamodbReadRequestUnitsPerMillion.value)} reads`,
            },
          ),
          plain(`${tag}: DynamoDB read units`, 'RRU/month', [p.readUnits.total], {
            note: `summaries ${(p.readUnits.summaries / 1e6).toFixed(0)}M (every minute re-reads the window), roll-ups ${(p.readUnits.rollups / 1e6).toFixed(0)}M, API ${(p.readUnits.api / 1e6).toFixed(0)}M, history ${(p.readUnits.history / 1e6).toFixed(2)}M; eventually consistent, 4 KB per unit per page`,
          }),
        );
      }
    }
    // The old layout, by its own formulas, with the inputs its last full run recorded.
    const es = {
      batchWindowSeconds: AGGREGATE_EVENT_SOURCE.maxBatchingWindowSeconds,
      batchSize: AGGREGATE_EVENT_SOURCE.batchSize,
      parallelizationFactor: AGGREGATE_EVENT_SOURCE.parallelizationFactor,
    };
    for (const [label, interval] of [
      [
        `old layout, one refresh line per client per ${DEFAULTS.refreshIntervalSeconds} s`,
        DEFAULTS.refreshIntervalSeconds,
      ],
      ['old layout, busy (a line per client per second)', 1],
    ] as const) {
      const o = projectFleet(oldLayoutInputs(HOSTS, ENDPOINTS_PER_HOST, interval, es));
      figures.push(
        plain(
          `${label}: monthly total (Kinesis + Lambda + DynamoDB writes)`,
          'USD',
          [o.monthly.total],
          {
            note: `old formulas (bench/old-layout-model.ts) fed the figures recorded by the full run of ${OLD_LAYOUT_RECORDED.at} (${OLD_LAYOUT_RECORDED.wireBytesPerLine} B/line, ${OLD_LAYOUT_RECORDED.aggregatorLinesPerSecond} lines/s, ${OLD_LAYOUT_RECORDED.writesPerClientBatch} writes/client/batch), not measured in this run: Kinesis ${usd(o.monthly.kinesisOnDemand)}, Lambda ${usd(o.monthly.lambda)}, DynamoDB writes ${usd(o.monthly.dynamodb)} (${o.dynamodbWriteUnitsPerSecond.toFixed(0)} WRU/s); reads and CloudWatch not modelled`,
          },
        ),
      );
    }
    const fl = {
      activeClients: HOSTS * ENDPOINTS_PER_HOST,
      hosts: HOSTS,
      retentionHours: DEFAULTS.retentionHours,
      windowSeconds: DEFAULTS.activeWindowSeconds,
    };
    const cw = projectFlowLogsToCloudWatch(fl);
    const s3 = projectFlowLogsToS3(fl);
    figures.push(
      plain('VPC Flow Logs → CloudWatch Logs, same clients', 'USD/month', [cw.monthly.total], {
        note: `${(cw.gbPerMonth / 1024).toFixed(1)} TB/month at the 1-minute interval: delivery ${usd(cw.monthly.delivery)}, storage (${DEFAULTS.retentionHours} h) ${usd(cw.monthly.storage)}, a Logs Insights query a minute over ${DEFAULTS.activeWindowSeconds} s ${usd(cw.monthly.activeSetQueries)}; no loopback or in-host traffic, no process or service names`,
      }),
      plain('VPC Flow Logs → S3, same clients', 'USD/month', [s3.monthly.total], {
        note: `delivery ${usd(s3.monthly.delivery)} (vended-log S3 tiers), storage (${DEFAULTS.retentionHours} h, gzip) ${usd(s3.monthly.storage)}, PUTs ${usd(s3.monthly.requests)}, an Athena query a minute over ${DEFAULTS.activeWindowSeconds} s ${usd(s3.monthly.activeSetQueries)}`,
      }),
    );
    // The prices and fixed inputs used, with their sources and dates.
    const listed: [string, Sourced][] = [
      ...Object.entries(PRICES),
      ...Object.entries(MODEL_INPUTS),
    ];
    for (const [name, p] of listed) {
      figures.push(
        plain(`price/input: ${name}`, p.unit, [p.value], {
          note: `${p.source}; written down ${p.asOf ?? PRICES_AS_OF}`,
        }),
      );
    }
    return figures;
  },
};
