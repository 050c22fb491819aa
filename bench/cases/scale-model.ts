/**
 * Scale model: projects Kinesis shards, Lambda concurrency, DynamoDB writes
 * and monthly cost for 1,000 hosts × 1,000 active clients, from the per-flow
 * costs measured earlier in this run (or documented defaults, named in the
 * note, when those cases did not run), next to VPC Flow Logs delivered to
 * CloudWatch Logs for the same clients. Prices: bench/prices.ts.
 */
import { packRecords } from '../../agent/record-packer.js';
import { PARTITION_BUCKETS } from '../../contract/partitioning.js';
import { AGGREGATE_EVENT_SOURCE, DEFAULTS } from '../../contract/resources.js';
import { ACTIVITY_BUCKET_MS } from '../../contract/table-keys.js';
import { type BenchCase, compared, type Figure, plain } from '../harness.js';
import { type MeasurementName, measurement, recordMeasurement } from '../measured.js';
import { PRICES_AS_OF } from '../prices.js';
import { type FleetInputs, projectFleet, projectFlowLogs } from '../scale-model.js';
import { syntheticFlowLines } from '../synthetic-flows.js';

const HOSTS = 1_000;
const CLIENTS_PER_HOST = 1_000;

/**
 * Used when the measuring case did not run: figures of a full run on a
 * 2-core machine, to be replaced by measurement whenever possible.
 */
const FALLBACK: Record<MeasurementName, number> = {
  wireBytesPerLine: 40,
  aggregatorLinesPerSecond: 500,
  writesPerClientBatch: 3,
  agentCpuMsPerSecondPer1000Flows: 15,
};

/**
 * Write request units of one client per batch: the endpoint, IP and host
 * items, each under 1 KB. Index entries (keys only, sorted by activity
 * bucket) are not rewritten by an update that keeps the bucket.
 */
const WRITE_UNITS_PER_CLIENT_BATCH = 3;
/**
 * Index write units when a client's items enter a new activity bucket: the
 * endpoint item (1 index), the IP item (2 indexes) and the host item (1
 * index), each entry deleted and put again: 2 × 4.
 */
const INDEX_WRITE_UNITS_PER_BUCKET_CHANGE = 2 * 4;

function wireBytesPerLine(): { value: number; from: string } {
  const m = measurement('wireBytesPerLine');
  if (m !== undefined) return { value: m, from: 'packing case' };
  // Cheap to measure here: one agent window of 1,000 lines.
  const lines = syntheticFlowLines({ count: CLIENTS_PER_HOST, seed: 3 });
  let seq = 0;
  const records = packRecords(lines, { agentId: 'i-0a1b2c3d4e5f60718', nextSeq: () => seq++ });
  return {
    value: records.reduce((s, r) => s + r.data.length, 0) / lines.length,
    from: 'measured here',
  };
}

function input(name: MeasurementName): { value: number; from: string } {
  const m = measurement(name);
  return m !== undefined
    ? { value: m, from: 'measured' }
    : { value: FALLBACK[name], from: 'default' };
}

const usd = (n: number) => `$${n.toLocaleString('en-US', { maximumFractionDigits: 0 })}`;

export const scaleModel: BenchCase = {
  id: 'scale-model',
  title: 'fleet projection: 1,000 hosts × 1,000 active clients',
  async run({ log }) {
    const bytes = wireBytesPerLine();
    const lps = input('aggregatorLinesPerSecond');
    const writes = input('writesPerClientBatch');
    const cpu = input('agentCpuMsPerSecondPer1000Flows');
    recordMeasurement('wireBytesPerLine', bytes.value);
    const sources = `inputs: ${bytes.value.toFixed(1)} B/line (${bytes.from}), ${lps.value.toFixed(0)} lines/s per invocation (${lps.from}), ${writes.value.toFixed(2)} writes/client/batch (${writes.from}); prices of ${PRICES_AS_OF}, bench/prices.ts`;
    log(sources);
    const figures: Figure[] = [];
    const flowLogs = projectFlowLogs(HOSTS * CLIENTS_PER_HOST);
    const scenarios = [
      { label: 'busy (every client sends every second)', lineIntervalSeconds: 1 },
      {
        label: `quiet (one refresh line per ${DEFAULTS.refreshIntervalSeconds} s)`,
        lineIntervalSeconds: DEFAULTS.refreshIntervalSeconds,
      },
      // Agents tuned for cost: counts of a busy client at most every 150 s,
      // half the active window, so a steady client never drops out of it.
      { label: 'busy, agents at reportIntervalSeconds 150', lineIntervalSeconds: 150 },
    ];
    for (const s of scenarios) {
      const inputs: FleetInputs = {
        hosts: HOSTS,
        clientsPerHost: CLIENTS_PER_HOST,
        lineIntervalSeconds: s.lineIntervalSeconds,
        agentIntervalSeconds: 1,
        partitionBuckets: PARTITION_BUCKETS,
        wireBytesPerLine: bytes.value,
        batchWindowSeconds: AGGREGATE_EVENT_SOURCE.maxBatchingWindowSeconds,
        batchSize: AGGREGATE_EVENT_SOURCE.batchSize,
        parallelizationFactor: AGGREGATE_EVENT_SOURCE.parallelizationFactor,
        writesPerClientBatch: writes.value,
        writeUnitsPerClientBatch: WRITE_UNITS_PER_CLIENT_BATCH,
        indexWriteUnitsPerBucketChange: INDEX_WRITE_UNITS_PER_BUCKET_CHANGE,
        activityBucketSeconds: ACTIVITY_BUCKET_MS / 1000,
        aggregatorLinesPerSecond: lps.value,
      };
      const p = projectFleet(inputs);
      const m = p.monthly;
      const tag = s.label;
      figures.push(
        plain(`${tag}: flow lines into Kinesis`, 'lines/s', [p.linesPerSecond], {
          note: `${(p.bytesPerSecond / 1e6).toFixed(1)} MB/s in ${p.recordsPerSecond.toFixed(0)} records/s of ${p.recordBytes.toFixed(0)} B`,
        }),
        plain(`${tag}: Kinesis shards needed`, 'shards', [p.shards], {
          note: 'max of records/s ÷ 1,000 and bytes/s ÷ 1 MiB, no headroom',
        }),
        plain(
          `${tag}: aggregate Lambda concurrency needed`,
          'instances',
          [p.lambdaConcurrencyNeeded],
          {
            goal: `≤ ${p.lambdaConcurrencyLimit} (shards × parallelization)`,
            note: `${p.lambdaBacklog ? 'BACKLOG: more than the event source runs at once; ' : ''}${p.lambdaInvocationsPerSecond.toFixed(1)} invocations/s, a batch per partition key every ${p.batchIntervalSeconds.toFixed(1)} s, at the measured lines/s per invocation (pessimistic: dynalite answers slower than DynamoDB)`,
          },
        ),
        compared(
          `${tag}: DynamoDB write requests`,
          'writes/s',
          [p.dynamodbWritesPerSecond],
          'one write per line',
          [p.linesPerSecond],
          'lower',
          {
            note: `${p.dynamodbWriteUnitsPerSecond.toFixed(0)} write units/s with index writes`,
          },
        ),
        plain(`${tag}: monthly cost, Kinesis on-demand`, 'USD', [m.kinesisOnDemand], {
          note: `provisioned instead: ${usd(m.kinesisProvisioned)}`,
        }),
        plain(`${tag}: monthly cost, aggregate Lambda`, 'USD', [m.lambda]),
        plain(`${tag}: monthly cost, DynamoDB on-demand writes`, 'USD', [m.dynamodb]),
        compared(
          `${tag}: monthly cost, udpwatch total`,
          'USD',
          [m.total],
          'VPC Flow Logs → CloudWatch Logs',
          [flowLogs.monthly.total],
          'lower',
          {
            note: `${sources}; agent CPU on the hosts (${cpu.from}): about ${((cpu.value * CLIENTS_PER_HOST) / 1000 / 10).toFixed(1)}% of a core per host, not on the AWS bill`,
          },
        ),
      );
    }
    figures.push(
      plain(
        'VPC Flow Logs → CloudWatch Logs, same clients',
        'USD/month',
        [flowLogs.monthly.total],
        {
          note: `${(flowLogs.gbPerMonth / 1024).toFixed(1)} TB/month at the 1-minute interval: delivery ${usd(flowLogs.monthly.delivery)}, storage ${usd(flowLogs.monthly.storage)}, a Logs Insights query a minute over 5 min for the active set ${usd(flowLogs.monthly.activeSetQueries)}; flow logs do not see loopback or in-host traffic and carry no process or service names`,
        },
      ),
    );
    return figures;
  },
};
