/**
 * The scale model of the block store: from part sizes and handler speeds
 * measured earlier in the same run, what a fleet needs (Kinesis records and
 * shards, Lambda time, DynamoDB write and read units, storage, CloudWatch)
 * and what it costs a month at on-demand list prices, applying AWS's billing
 * rules (bench/prices.ts): a DynamoDB write is one unit per started 1 KB of
 * item, a failed conditional write costs the same; a Query sums its items'
 * sizes per page of at most 1 MB, rounds up to 4 KB, eventually consistent
 * reads cost half; a Kinesis on-demand record is billed rounded up to 1 KB,
 * a provisioned stream by the shard-hour plus a PUT payload unit per started
 * 25 KB of a record. A provisioned table is billed by the capacity unit-hour:
 * auto scaling holds the per-minute mean at its target utilization, and the
 * capacity must also carry the agents' writes at their peak within the minute
 * (they arrive in the first `sendSpreadSeconds` of it). Lambda time is the larger of the measured wall time and
 * the measured CPU time stretched by the CPU share of the function's memory.
 * Pure arithmetic, so it is tested line by line.
 */
import { MODEL_INPUTS, PRICES } from './prices.js';

/** One stored part as measured: its encoded bytes and the whole item's DynamoDB size. */
export interface PartSize {
  /** Index into BlockFleetInputs.serviceMix. */
  service: number;
  endpoints: number;
  dataBytes: number;
  itemBytes: number;
}

/** What the model needs to know about the fleet and about udpwatch. */
export interface BlockFleetInputs {
  hosts: number;
  /** Active endpoints per host in a minute. */
  endpointsPerHost: number;
  /** Share of a host's endpoints per service (sums to 1); every host runs every service. */
  serviceMix: readonly number[];
  /** Measured: the main parts one agent seals for one minute of its endpoints. */
  mainParts: readonly PartSize[];
  /** Seconds between two main parts of one service (the seal interval, 60 by default). */
  sealSeconds: number;
  /** Measured: one early part (the few new endpoints of one service). */
  earlyPart: PartSize;
  /** Assumed: endpoints never reported before, per agent-minute. */
  churnPerAgentMinute: number;
  /** Early-part token bucket per agent: burst, and seconds per refilled token. */
  earlyBurst: number;
  earlyRefillSeconds: number;
  /** The agent's heartbeat (v1 line, one a minute): record bytes and the agent item's size. */
  heartbeatRecordBytes: number;
  heartbeatItemBytes: number;
  /** Assumed: share of records the event source delivers again (retries re-put identical items). */
  redeliveredShare: number;
  /** Assumed: share of main parts stored after their minute was summarized (late marks). */
  lateShare: number;
  /** Summary item size (one per service-minute). */
  summaryItemBytes: number;
  /** Largest size of a service's hour of per-minute counts (updated once per summary). */
  countsItemBytes: number;
  /** Minutes the active window spans (the summarizer reads that many minutes of blocks). */
  windowMinutes: number;
  retentionHours: number;
  blockShards: number;
  /** Largest encoded part (a roll-up is split into parts of at most this). */
  maxPartBytes: number;
  batchSize: number;
  batchWindowSeconds: number;
  parallelizationFactor: number;
  /** The stream's capacity mode; a provisioned stream has `provisionedShards` shards. */
  streamMode: 'provisioned' | 'on-demand';
  provisionedShards: number;
  /** The table's capacity mode (infra/config.ts) and, when provisioned, its auto scaling. */
  tableMode: 'provisioned' | 'on-demand';
  tableTargetUtilization: number;
  tableMinCapacity: number;
  /** Seconds of each minute over which agents spread their sends (contract/block.ts). */
  sendSpreadSeconds: number;
  /** Memory of the functions (infra/functions.ts), GB. */
  aggregateMemoryGb: number;
  summarizeMemoryGb: number;
  queryMemoryGb: number;
  /** Measured: endpoint-minutes one aggregate invocation stores per second (wall time). */
  aggregateEndpointMinutesPerSecond: number;
  /** Measured: endpoint-minutes the aggregate stores per CPU second (one full core). */
  aggregateCpuEndpointMinutesPerSecond: number;
  /** Measured: wall time of an aggregate invocation beyond its endpoints (ms). */
  aggregateFixedMs: number;
  /** Measured: endpoint-minutes one core decodes and merges per second (summaries, roll-ups, queries). */
  mergeEndpointMinutesPerSecond: number;
  /** Measured: endpoints one core encodes per second (roll-up parts are encoded when built). */
  encodeEndpointsPerSecond: number;
  /**
   * What a summarize run reads: 'warm-cache' = the one newly complete minute
   * (earlier minutes of the window are cached), except after a cold start,
   * which reads the whole window, and a late mark re-reads only its minute;
   * 'whole-window' = the window every run and every re-summary.
   */
  summarizeReads: 'warm-cache' | 'whole-window';
  /** Assumed: summarize cold starts (cache lost) per hour, with 'warm-cache'. */
  summarizeColdStartsPerHour: number;
  /** Assumed API load: queries a minute that read one whole service's window of blocks. */
  apiWindowQueriesPerMinute: number;
  /** Assumed: history requests a minute (a service card opened: its last hour of counts). */
  historyQueriesPerMinute: number;
  /** Assumed: DescribeAlarms calls a minute (GET /v1/alarms, cached 30 s per query instance). */
  alarmReadsPerMinute: number;
  /** Operational alarms of the stack, and alarms per service (assumed). */
  operationalAlarms: number;
  alarmsPerService: number;
  /** Custom metrics beyond the per-service ones (BadRecords, BlockConflicts, AgentsReporting, ...). */
  operationalMetrics: number;
}

/** Billed units and money, per month. */
export interface BlockFleetProjection {
  perAgentMinute: {
    mainParts: number;
    earlySends: number;
    earlyParts: number;
    records: number;
    kinesisBilledKb: number;
    wireBytes: number;
    mainWriteUnits: number;
    earlyWriteUnits: number;
  };
  recordsPerSecond: number;
  wireBytesPerSecond: number;
  /** Shards the stream runs with (provisioned: as configured; on-demand: its floor or need). */
  shards: number;
  /** Shards the write load needs (1,000 records/s and 1 MiB/s each). */
  shardsNeeded: number;
  /** A provisioned stream with fewer shards than needed throttles the agents. */
  streamOverCapacity: boolean;
  batchIntervalSeconds: number;
  aggregateInvocationsPerSecond: number;
  aggregateSecondsPerInvocation: number;
  aggregateConcurrency: number;
  /** Wall seconds of one warm summarize run, or of every run with 'whole-window' (must stay under 60). */
  summarizeSecondsPerRun: number;
  /** Wall seconds of a run that reads the whole window (a cold start). */
  summarizeColdSecondsPerRun: number;
  /** Wall seconds of the hourly roll-up build (reads and merges the hour, encodes the parts). */
  rollupSecondsPerHour: number;
  /** Wall seconds of the biggest (service, shard) roll-up job, which one roll-up run must finish. */
  rollupLongestShardSeconds: number;
  /**
   * Seconds a provisioned table needs to serve the hour's roll-up reads from
   * the capacity the other reads leave (0 when on-demand).
   */
  rollupReadSecondsPerHour: number;
  /** GB-seconds a month per function. */
  gbSeconds: { aggregate: number; summarize: number; rollups: number; query: number };
  writeUnits: {
    main: number;
    early: number;
    heartbeats: number;
    services: number;
    lateMarks: number;
    redelivered: number;
    summaries: number;
    counts: number;
    rollups: number;
    total: number;
  };
  /** Early parts' write units over all DynamoDB write units. */
  earlyShareOfWrites: number;
  readUnits: { summaries: number; rollups: number; api: number; history: number; total: number };
  /** Mean and peak (within the minute) write units per second, and mean read units per second. */
  tableRates: { meanWrite: number; peakWrite: number; meanRead: number };
  /** Capacity units a provisioned table runs with (0 when on-demand). */
  provisionedCapacity: { write: number; read: number };
  storageGb: number;
  cloudWatch: { logGb: number; metrics: number; alarms: number; alarmReads: number };
  monthly: {
    kinesis: number;
    lambda: number;
    dynamodbWrites: number;
    dynamodbReads: number;
    dynamodbStorage: number;
    cloudWatch: number;
    total: number;
  };
}

const HOURS_PER_MONTH = MODEL_INPUTS.hoursPerMonth.value;
const MINUTES_PER_MONTH = HOURS_PER_MONTH * 60;
const SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600;
const GB = 1024 ** 3;
const KB = 1024;
const QUERY_PAGE_BYTES = 1024 * 1024;
/** Lambda gives one full vCPU at 1,769 MB, in proportion below. */
const LAMBDA_MB_PER_VCPU = 1769;

/** DynamoDB write request units of one item write: one per started 1 KB, at least one. */
export function writeUnits(itemBytes: number): number {
  return Math.max(1, Math.ceil(itemBytes / KB));
}

/** Kinesis on-demand billed KB of one record: rounded up to 1 KB. */
export function kinesisBilledKb(recordBytes: number): number {
  return Math.max(1, Math.ceil(recordBytes / KB));
}

/**
 * Read request units of a Query returning `bytes` of items: pages of at most
 * 1 MB, each page's sum rounded up to 4 KB (at least one unit), halved when
 * eventually consistent.
 */
export function queryReadUnits(bytes: number, eventuallyConsistent = true): number {
  const pages = Math.max(1, Math.ceil(bytes / QUERY_PAGE_BYTES));
  let units = 0;
  for (let p = 0; p < pages; p++) {
    const pageBytes = Math.min(QUERY_PAGE_BYTES, bytes - p * QUERY_PAGE_BYTES);
    units += Math.max(1, Math.ceil(pageBytes / (4 * KB)));
  }
  return eventuallyConsistent ? units / 2 : units;
}

/** Write units of `bytes` of data stored as parts of at most `maxPartBytes`, each with `overheadBytes` of key and attributes. */
export function splitWriteUnits(
  bytes: number,
  maxPartBytes: number,
  overheadBytes: number,
): number {
  if (bytes <= 0) return 0;
  const full = Math.floor(bytes / maxPartBytes);
  const rest = bytes - full * maxPartBytes;
  return (
    full * writeUnits(maxPartBytes + overheadBytes) +
    (rest > 0 ? writeUnits(rest + overheadBytes) : 0)
  );
}

/**
 * Early sends per agent-minute: one per new client while tokens last, so at
 * most the refill rate in the long run (the burst only shapes a spike). An
 * upper bound: a send may carry several new clients.
 */
export function earlySendsPerMinute(churnPerMinute: number, refillSeconds: number): number {
  return Math.min(churnPerMinute, 60 / refillSeconds);
}

/** Expected distinct services among `k` (Poisson mean) new clients drawn from `mix`. */
export function expectedDistinctServices(k: number, mix: readonly number[]): number {
  return mix.reduce((sum, p) => sum + (1 - Math.exp(-k * p)), 0);
}

/** Kinesis shards a write load needs: 1,000 records/s and 1 MiB/s per shard, at least one. */
export function shardsNeeded(recordsPerSecond: number, bytesPerSecond: number): number {
  return Math.max(
    1,
    Math.ceil(recordsPerSecond / MODEL_INPUTS.kinesisShardRecordsPerSecond.value),
    Math.ceil(bytesPerSecond / MODEL_INPUTS.kinesisShardBytesPerSecond.value),
  );
}

/** Kinesis shards an on-demand stream runs with: its floor, or what records/s and bytes/s need. */
export function onDemandShards(recordsPerSecond: number, bytesPerSecond: number): number {
  return Math.max(
    MODEL_INPUTS.kinesisOnDemandMinShards.value,
    shardsNeeded(recordsPerSecond, bytesPerSecond),
  );
}

/** PUT payload units of one record on a provisioned stream: one per started 25 KB. */
export function putPayloadUnits(recordBytes: number): number {
  return Math.max(1, Math.ceil(recordBytes / (25 * KB)));
}

/** Seconds a CPU-bound task of `coreSeconds` takes in a Lambda of `memoryGb`. */
export function lambdaSeconds(coreSeconds: number, memoryGb: number): number {
  return coreSeconds / Math.min(1, (memoryGb * 1024) / LAMBDA_MB_PER_VCPU);
}

/**
 * Capacity units a provisioned table settles at under target tracking: the
 * mean over the target utilization, at least the agents' in-minute peak and
 * the auto scaling minimum. Reads are eventually consistent, so one read
 * capacity unit serves one read request unit a second.
 */
export function provisionedTableCapacity(
  meanWrite: number,
  peakWrite: number,
  meanRead: number,
  i: Pick<BlockFleetInputs, 'tableTargetUtilization' | 'tableMinCapacity'>,
): { write: number; read: number } {
  return {
    write: Math.max(
      i.tableMinCapacity,
      Math.ceil(meanWrite / i.tableTargetUtilization),
      Math.ceil(peakWrite),
    ),
    read: Math.max(i.tableMinCapacity, Math.ceil(meanRead / i.tableTargetUtilization)),
  };
}

/** Projects billed units and monthly cost of the block store for a fleet. */
export function projectBlocks(i: BlockFleetInputs): BlockFleetProjection {
  const services = i.serviceMix.length;
  const sealsPerMinute = 60 / i.sealSeconds;
  // --- per agent-minute ---
  const mainParts = i.mainParts.length * sealsPerMinute;
  const mainWriteUnits =
    i.mainParts.reduce((s, p) => s + writeUnits(p.itemBytes), 0) * sealsPerMinute;
  const mainKb = i.mainParts.reduce((s, p) => s + kinesisBilledKb(p.dataBytes), 0) * sealsPerMinute;
  const mainBytes = i.mainParts.reduce((s, p) => s + p.dataBytes, 0) * sealsPerMinute;
  const mainItemBytes = i.mainParts.reduce((s, p) => s + p.itemBytes, 0) * sealsPerMinute;
  const earlySends = earlySendsPerMinute(i.churnPerAgentMinute, i.earlyRefillSeconds);
  const newPerSend = earlySends > 0 ? i.churnPerAgentMinute / earlySends : 0;
  const earlyParts =
    earlySends * (earlySends > 0 ? expectedDistinctServices(newPerSend, i.serviceMix) : 0);
  const earlyWriteUnits = earlyParts * writeUnits(i.earlyPart.itemBytes);
  const records = mainParts + earlyParts + 1;
  const kinesisKb =
    mainKb +
    earlyParts * kinesisBilledKb(i.earlyPart.dataBytes) +
    kinesisBilledKb(i.heartbeatRecordBytes);
  const payloadUnits =
    i.mainParts.reduce((s, p) => s + putPayloadUnits(p.dataBytes), 0) * sealsPerMinute +
    earlyParts * putPayloadUnits(i.earlyPart.dataBytes) +
    putPayloadUnits(i.heartbeatRecordBytes);
  const wireBytes = mainBytes + earlyParts * i.earlyPart.dataBytes + i.heartbeatRecordBytes;

  // --- Kinesis and the aggregate function ---
  const recordsPerSecond = (i.hosts * records) / 60;
  const wireBytesPerSecond = (i.hosts * wireBytes) / 60;
  const needed = shardsNeeded(recordsPerSecond, wireBytesPerSecond);
  const provisioned = i.streamMode === 'provisioned';
  const shards = provisioned
    ? i.provisionedShards
    : onDemandShards(recordsPerSecond, wireBytesPerSecond);
  const pollers = shards * i.parallelizationFactor;
  const fillSeconds = (i.batchSize * pollers) / recordsPerSecond;
  const batchIntervalSeconds = Math.min(i.batchWindowSeconds, fillSeconds);
  const aggregateInvocationsPerSecond = (pollers / batchIntervalSeconds) * (1 + i.redeliveredShare);
  const endpointMinutesPerSecond =
    (i.hosts * (i.endpointsPerHost * sealsPerMinute + earlyParts * i.earlyPart.endpoints)) / 60;
  // Wall time as measured, unless the CPU work, at the memory's CPU share, takes longer.
  const perInvocation = endpointMinutesPerSecond / aggregateInvocationsPerSecond;
  const aggregateSecondsPerInvocation =
    i.aggregateFixedMs / 1000 +
    Math.max(
      perInvocation / i.aggregateEndpointMinutesPerSecond,
      lambdaSeconds(perInvocation / i.aggregateCpuEndpointMinutesPerSecond, i.aggregateMemoryGb),
    );
  const aggregateConcurrency = aggregateInvocationsPerSecond * aggregateSecondsPerInvocation;

  // --- DynamoDB writes, per month ---
  const agentMinutes = i.hosts * MINUTES_PER_MONTH;
  const main = mainWriteUnits * agentMinutes;
  const early = earlyWriteUnits * agentMinutes;
  // The agent item: one conditional put per heartbeat, applied or not.
  const heartbeats = writeUnits(i.heartbeatItemBytes) * agentMinutes;
  // Each aggregate instance refreshes each service it sees at most once a minute.
  const servicesWrites = pollers * services * MINUTES_PER_MONTH;
  const lateMarks = i.lateShare * mainParts * agentMinutes;
  // A redelivered record re-puts the same items: the condition passes (same hash) or fails, both cost.
  const redelivered = i.redeliveredShare * (main + early + heartbeats);
  // A service-minute is summarized again when any of its agents' parts came late.
  const resummaryShare = 1 - (1 - i.lateShare) ** ((i.hosts * i.mainParts.length) / services);
  const summaryRuns = services * MINUTES_PER_MONTH * (1 + resummaryShare);
  const summaries = summaryRuns * writeUnits(i.summaryItemBytes);
  // Each summary also sets its minute in the service's hour of counts (an UpdateItem of the whole item's size).
  const counts = summaryRuns * writeUnits(i.countsItemBytes);
  // Roll-ups: an hour's distinct endpoints per (service, shard), at the main parts' bytes per endpoint.
  const mainEndpoints = i.mainParts.reduce((s, p) => s + p.endpoints, 0);
  const bytesPerEndpoint = mainBytes / sealsPerMinute / mainEndpoints;
  const overheadBytes = (mainItemBytes - mainBytes) / mainParts;
  const hourEndpointsPerHost = i.endpointsPerHost + i.churnPerAgentMinute * 59;
  let rollupUnitsPerHour = 0;
  for (const p of i.serviceMix) {
    const bytes = (i.hosts / i.blockShards) * hourEndpointsPerHost * p * bytesPerEndpoint;
    rollupUnitsPerHour += i.blockShards * splitWriteUnits(bytes, i.maxPartBytes, overheadBytes);
  }
  // Each service-hour's roll-up mark: put by the summarizer, a shard recorded per shard, deleted.
  const rollupMarkUnits = services * (1 + i.blockShards + 1);
  const rollups = (rollupUnitsPerHour + rollupMarkUnits) * HOURS_PER_MONTH;
  const writeTotal =
    main +
    early +
    heartbeats +
    servicesWrites +
    lateMarks +
    redelivered +
    summaries +
    counts +
    rollups;

  // --- DynamoDB reads, per month (eventually consistent Queries on exact keys) ---
  // Bytes of one (service, minute, shard) partition: every agent's main and early parts of the service.
  const earlyItemBytesPerAgentMinute = earlyParts * i.earlyPart.itemBytes;
  const shardBytes = (service: number): number => {
    const mainOf = i.mainParts
      .filter((p) => p.service === service)
      .reduce((s, p) => s + p.itemBytes, 0);
    const share = i.serviceMix[service]!;
    return (
      ((mainOf * sealsPerMinute + earlyItemBytesPerAgentMinute * share) * i.hosts) / i.blockShards
    );
  };
  const minuteReadUnits = i.serviceMix.map((_, s) => i.blockShards * queryReadUnits(shardBytes(s)));
  const minuteReadUnitsAll = minuteReadUnits.reduce((s, u) => s + u, 0);
  const windowReadUnitsAll = minuteReadUnitsAll * i.windowMinutes;
  // Minutes of blocks a run reads on average: warm runs one, cold ones (and every run without the cache) the window.
  const coldShare =
    i.summarizeReads === 'whole-window' ? 1 : Math.min(1, i.summarizeColdStartsPerHour / 60);
  const minutesPerRun = coldShare * i.windowMinutes + (1 - coldShare) * 1;
  // A late minute is summarized again: from the cache plus its own minute re-read, or from its whole window.
  const minutesPerResummary = i.summarizeReads === 'whole-window' ? i.windowMinutes : 1;
  const minutesReadPerMinute = minutesPerRun + resummaryShare * minutesPerResummary;
  const summariesRead = minuteReadUnitsAll * MINUTES_PER_MONTH * minutesReadPerMinute;
  const rollupsRead = (windowReadUnitsAll / i.windowMinutes) * 60 * HOURS_PER_MONTH;
  const biggest = Math.max(...minuteReadUnits);
  const apiRead = i.apiWindowQueriesPerMinute * biggest * i.windowMinutes * MINUTES_PER_MONTH;
  // A history request: one Query of the two hours holding the last hour.
  const historyRead =
    i.historyQueriesPerMinute * queryReadUnits(2 * i.countsItemBytes) * MINUTES_PER_MONTH;
  const readTotal = summariesRead + rollupsRead + apiRead + historyRead;

  // --- Lambda: aggregate (wall time measured), summarize and query (CPU-bound merges) ---
  const fleetEndpointMinutes =
    i.hosts * i.endpointsPerHost * sealsPerMinute + i.hosts * earlyParts * i.earlyPart.endpoints;
  const mergeSeconds = (endpointMinutes: number, memoryGb: number) =>
    lambdaSeconds(endpointMinutes / i.mergeEndpointMinutesPerSecond, memoryGb);
  const summarizeColdSecondsPerRun = mergeSeconds(
    fleetEndpointMinutes * i.windowMinutes,
    i.summarizeMemoryGb,
  );
  const summarizeSecondsPerRun =
    i.summarizeReads === 'whole-window'
      ? summarizeColdSecondsPerRun
      : mergeSeconds(fleetEndpointMinutes, i.summarizeMemoryGb);
  const meanSummarizeSeconds = mergeSeconds(
    fleetEndpointMinutes * minutesReadPerMinute,
    i.summarizeMemoryGb,
  );
  // Roll-up parts of 20,000 endpoints fit the byte limit as cut by count (the blocks bench: 246 to 300 KB), so each is compressed once.
  const hourEndpoints = i.hosts * hourEndpointsPerHost;
  const rollupSecondsPerHour =
    mergeSeconds(fleetEndpointMinutes * 60, i.summarizeMemoryGb) +
    lambdaSeconds(hourEndpoints / i.encodeEndpointsPerSecond, i.summarizeMemoryGb);
  const biggestShare = Math.max(...i.serviceMix);
  const rollupLongestShardSeconds = (rollupSecondsPerHour * biggestShare) / i.blockShards;
  const querySeconds = mergeSeconds(
    fleetEndpointMinutes * biggestShare * i.windowMinutes,
    i.queryMemoryGb,
  );
  const aggregateInvocations = aggregateInvocationsPerSecond * SECONDS_PER_MONTH;
  const summarizeInvocations = MINUTES_PER_MONTH;
  const queryInvocations = i.apiWindowQueriesPerMinute * MINUTES_PER_MONTH;
  const gb = {
    aggregate: aggregateInvocations * aggregateSecondsPerInvocation * i.aggregateMemoryGb,
    summarize: summarizeInvocations * meanSummarizeSeconds * i.summarizeMemoryGb,
    rollups: HOURS_PER_MONTH * rollupSecondsPerHour * i.summarizeMemoryGb,
    query: queryInvocations * querySeconds * i.queryMemoryGb,
  };
  const gbSeconds = gb.aggregate + gb.summarize + gb.rollups + gb.query;
  const invocations = aggregateInvocations + summarizeInvocations + queryInvocations;
  const lambda =
    (invocations / 1e6) * PRICES.lambdaRequestsPerMillion.value +
    gbSeconds * PRICES.lambdaArmGbSecond.value;

  // --- Kinesis: provisioned shard-hours and PUT payload units, or on-demand stream-hours and GB ---
  const kinesis = provisioned
    ? PRICES.kinesisShardHour.value * shards * HOURS_PER_MONTH +
      ((payloadUnits * agentMinutes) / 1e6) * PRICES.kinesisPutPayloadUnitsPerMillion.value
    : PRICES.kinesisOnDemandStreamHour.value * HOURS_PER_MONTH +
      ((kinesisKb * KB * agentMinutes) / GB) * PRICES.kinesisOnDemandGbIn.value +
      ((wireBytes * agentMinutes) / GB) * PRICES.kinesisOnDemandGbOut.value;

  // --- DynamoDB storage over the retention ---
  const retainedMinutes = i.retentionHours * 60;
  const perAgentMinuteStored =
    mainItemBytes +
    mainParts * MODEL_INPUTS.dynamodbItemOverheadBytes.value +
    earlyParts * (i.earlyPart.itemBytes + MODEL_INPUTS.dynamodbItemOverheadBytes.value);
  const storageGb =
    (i.hosts * retainedMinutes * perAgentMinuteStored +
      rollupUnitsPerHour * KB * i.retentionHours +
      services *
        retainedMinutes *
        (i.summaryItemBytes + MODEL_INPUTS.dynamodbItemOverheadBytes.value) +
      services *
        (i.retentionHours + 1) *
        (i.countsItemBytes + MODEL_INPUTS.dynamodbItemOverheadBytes.value)) /
    GB;

  // --- CloudWatch: Lambda logs and EMF documents, custom metrics, alarms ---
  const emfDocs = aggregateInvocations + summarizeInvocations * (services + 1);
  const logGb =
    (invocations * MODEL_INPUTS.lambdaPlatformLogBytesPerInvocation.value +
      emfDocs * MODEL_INPUTS.emfDocumentBytes.value) /
    GB;
  const metrics = 2 * services + i.operationalMetrics;
  const alarms = i.operationalAlarms + i.alarmsPerService * services;
  const alarmReads = i.alarmReadsPerMinute * MINUTES_PER_MONTH;
  const cloudWatch =
    logGb * (PRICES.cloudWatchLogsIngestionGb.value + PRICES.cloudWatchLogsStorageGbMonth.value) +
    metrics * PRICES.cloudWatchCustomMetricMonth.value +
    alarms * PRICES.cloudWatchAlarmMonth.value +
    (alarmReads / 1000) * PRICES.cloudWatchApiRequestsPerThousand.value;

  // --- DynamoDB capacity: on-demand per request unit, provisioned per capacity unit-hour ---
  const meanWrite = writeTotal / SECONDS_PER_MONTH;
  const agentWrites = main + early + heartbeats + redelivered;
  const peakWrite =
    ((agentWrites * 60) / i.sendSpreadSeconds + (writeTotal - agentWrites)) / SECONDS_PER_MONTH;
  const meanRead = readTotal / SECONDS_PER_MONTH;
  const tableProvisioned = i.tableMode === 'provisioned';
  const provisionedCapacity = tableProvisioned
    ? provisionedTableCapacity(meanWrite, peakWrite, meanRead, i)
    : { write: 0, read: 0 };
  const dynamodbWrites = tableProvisioned
    ? provisionedCapacity.write * HOURS_PER_MONTH * PRICES.dynamodbWriteCapacityUnitHour.value
    : (writeTotal / 1e6) * PRICES.dynamodbWriteRequestUnitsPerMillion.value;
  const dynamodbReads = tableProvisioned
    ? provisionedCapacity.read * HOURS_PER_MONTH * PRICES.dynamodbReadCapacityUnitHour.value
    : (readTotal / 1e6) * PRICES.dynamodbReadRequestUnitsPerMillion.value;
  const dynamodbStorage = storageGb * PRICES.dynamodbStorageGbMonth.value;
  return {
    perAgentMinute: {
      mainParts,
      earlySends,
      earlyParts,
      records,
      kinesisBilledKb: kinesisKb,
      wireBytes,
      mainWriteUnits,
      earlyWriteUnits,
    },
    recordsPerSecond,
    wireBytesPerSecond,
    shards,
    shardsNeeded: needed,
    streamOverCapacity: provisioned && shards < needed,
    batchIntervalSeconds,
    aggregateInvocationsPerSecond,
    aggregateSecondsPerInvocation,
    aggregateConcurrency,
    summarizeSecondsPerRun,
    summarizeColdSecondsPerRun,
    rollupSecondsPerHour,
    rollupLongestShardSeconds,
    rollupReadSecondsPerHour: tableProvisioned
      ? rollupsRead /
        HOURS_PER_MONTH /
        Math.max(
          1e-9,
          provisionedCapacity.read - (summariesRead + apiRead + historyRead) / SECONDS_PER_MONTH,
        )
      : 0,
    gbSeconds: gb,
    writeUnits: {
      main,
      early,
      heartbeats,
      services: servicesWrites,
      lateMarks,
      redelivered,
      summaries,
      counts,
      rollups,
      total: writeTotal,
    },
    earlyShareOfWrites: early / writeTotal,
    readUnits: {
      summaries: summariesRead,
      rollups: rollupsRead,
      api: apiRead,
      history: historyRead,
      total: readTotal,
    },
    tableRates: { meanWrite, peakWrite, meanRead },
    provisionedCapacity,
    storageGb,
    cloudWatch: { logGb, metrics, alarms, alarmReads },
    monthly: {
      kinesis,
      lambda,
      dynamodbWrites,
      dynamodbReads,
      dynamodbStorage,
      cloudWatch,
      total: kinesis + lambda + dynamodbWrites + dynamodbReads + dynamodbStorage + cloudWatch,
    },
  };
}
