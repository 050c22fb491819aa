/**
 * Aggregator: flow lines per second per invocation of the real aggregate
 * handler (middy, Powertools, the DynamoDB document client) against dynalite
 * in another process, with every store request counted by a proxy; DynamoDB
 * write requests per active client-hour against the naive one write per line;
 * and what the idempotence scheme costs when a batch is replayed.
 *
 * A batch is what one 5-second event-source window holds for one agent whose
 * clients each send every second: five agent cycles, each packed by the
 * agent's packer into one record per partition bucket.
 */

import type { UnsequencedFlowLine } from '../../agent/record-packer.js';
import { packRecords } from '../../agent/record-packer.js';
import { AGGREGATE_EVENT_SOURCE } from '../../contract/resources.js';
import { lambdaContext } from '../../local/lambda-context.js';
import { type BenchCase, compared, plain } from '../harness.js';
import { recordMeasurement } from '../measured.js';
import {
  countOf,
  kinesisEvent,
  prepareHandlerEnvironment,
  startStoreChild,
} from '../store-harness.js';
import { syntheticFlowLines } from '../synthetic-flows.js';

const AGENT = 'i-0bench0aggregator01';

/** Distinct services among the lines. */
function servicesIn(lines: readonly UnsequencedFlowLine[]): number {
  return new Set(lines.map((l) => l.service)).size;
}

/**
 * One batch window: `cycles` agent cycles of every client. A flow keeps its
 * firstSeen for its life in the agent's table; lastSeen moves each cycle.
 */
function batchLines(
  clients: readonly UnsequencedFlowLine[],
  cycles: number,
  start: number,
  firstSeen: number,
) {
  const out: UnsequencedFlowLine[][] = [];
  for (let c = 0; c < cycles; c++) {
    const at = start + c * 1000;
    out.push(clients.map((l) => ({ ...l, firstSeen, lastSeen: at - (l.lastSeen % 500) })));
  }
  return out;
}

export const aggregator: BenchCase = {
  id: 'aggregator',
  title: 'aggregate handler throughput, writes per client-hour, idempotence cost',
  async run({ quick, log }) {
    prepareHandlerEnvironment();
    const clientCount = quick ? 400 : 1_000;
    const roundCount = quick ? 2 : 5;
    const cycles = AGGREGATE_EVENT_SOURCE.maxBatchingWindowSeconds;
    const store = await startStoreChild();
    try {
      const { createAggregateHandler } = await import('../../functions/aggregate/handler.js');
      const handler = createAggregateHandler({
        table: store.endpoints.tableName,
        activeWindowSeconds: 300,
        retentionHours: 24,
        dynamodbEndpoint: store.endpoints.dynamodbEndpoint,
      });
      const arn = `arn:aws:kinesis:us-east-1:000000000000:stream/${store.endpoints.streamName}`;
      const clients = syntheticFlowLines({ count: clientCount, seed: 11, agentId: AGENT });
      let seq = 1;
      let clock = Date.now() - 600_000;
      const firstSeen = clock - 1_000;
      const nextEvent = () => {
        const records = batchLines(clients, cycles, clock, firstSeen).flatMap((lines) =>
          packRecords(lines, { agentId: AGENT, nextSeq: () => seq++ }),
        );
        clock += cycles * 1000;
        return kinesisEvent(records, arn);
      };
      const invoke = async (event: ReturnType<typeof nextEvent>) => {
        await store.counts(); // reset
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const result = await handler(
          event,
          lambdaContext({ functionName: 'aggregate', region: 'us-east-1' }),
        );
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        if (result && result.batchItemFailures.length > 0) {
          throw new Error(`aggregate reported ${result.batchItemFailures.length} failed records`);
        }
        return { ms, cpuMs: (cpu.user + cpu.system) / 1000, counts: await store.counts() };
      };

      const lines = clientCount * cycles;
      const first = await invoke(nextEvent()); // creates the items
      log(`first batch (new items): ${first.ms.toFixed(0)} ms, ${JSON.stringify(first.counts)}`);
      const rates: number[] = [];
      const roundMs: number[] = [];
      const cpuPerK: number[] = [];
      const writesPerClient: number[] = [];
      let lastEvent = nextEvent();
      for (let r = 0; r < roundCount; r++) {
        if (r > 0) lastEvent = nextEvent();
        const res = await invoke(lastEvent);
        rates.push(lines / (res.ms / 1000));
        roundMs.push(res.ms);
        cpuPerK.push((res.cpuMs / lines) * 1000);
        writesPerClient.push(countOf(res.counts, 'UpdateItem', 'PutItem') / clientCount);
        log(
          `round ${r + 1}: ${lines} lines in ${res.ms.toFixed(0)} ms, ${JSON.stringify(res.counts)}`,
        );
      }
      // Replay the last batch, as Lambda does after a timeout or a partial failure.
      const replay = await invoke(lastEvent);
      log(`replay: ${replay.ms.toFixed(0)} ms, ${JSON.stringify(replay.counts)}`);
      const replayWrites = countOf(replay.counts, 'UpdateItem', 'PutItem');
      const replayFailed = countOf(
        replay.counts,
        'UpdateItem:conditionFailed',
        'PutItem:conditionFailed',
      );
      const replayReads = countOf(replay.counts, 'GetItem', 'BatchGetItem');

      const medianWrites = [...writesPerClient].sort((a, b) => a - b)[writesPerClient.length >> 1]!;
      recordMeasurement('writesPerClientBatch', medianWrites);
      const sortedRates = [...rates].sort((a, b) => a - b);
      recordMeasurement('aggregatorLinesPerSecond', sortedRates[sortedRates.length >> 1]!);

      // A client that sends every second appears in one batch per window.
      const batchesPerHour = 3600 / cycles;
      const perHour = writesPerClient.map((w) => w * batchesPerHour);
      const naivePerHour = writesPerClient.map(() => 3600);
      // A quiet client is reported once per refresh interval (60 s): one batch a minute.
      const quietPerHour = writesPerClient.map((w) => w * 60);
      return [
        plain('flow lines per second per invocation', 'lines/s', rates, {
          note: `${lines.toLocaleString('en-US')} lines (${clientCount} clients × ${cycles} cycles, existing items) per invocation; dynalite in another process; 16 writes in flight`,
        }),
        plain('handler CPU per 1,000 flow lines', 'ms', cpuPerK, {
          note: 'decode + validate + fold + SDK marshalling; the store runs in another process',
        }),
        plain('item write requests per client per batch', 'writes', writesPerClient, {
          note: 'endpoint + IP + host items, plus the service and agent items shared by all clients',
        }),
        compared(
          'DynamoDB write requests per active client-hour (busy: 1 line/s)',
          'writes',
          perHour,
          'naive: one write per line',
          naivePerHour,
          'lower',
          {
            note: `one write per item per ${cycles} s batch; the naive scheme keeps only one item per client`,
          },
        ),
        compared(
          'DynamoDB write requests per active client-hour (quiet: refresh line every 60 s)',
          'writes',
          quietPerHour,
          'naive: one write per line',
          quietPerHour.map(() => 60),
          'lower',
          {
            note: 'three views per client (endpoint, IP, host) cost three writes per line the naive scheme does not have',
          },
        ),
        plain('idempotence: extra writes per batch in normal operation', 'writes', [0], {
          note: 'the watermark condition rides on the same UpdateItem (no marker items, no transactions)',
        }),
        plain(
          'idempotence: replayed batch, write requests per client',
          'writes',
          [replayWrites / clientCount],
          {
            note: `${replayFailed} of ${replayWrites} writes failed their condition, then ${replayReads} reads; a failed conditional write still consumes write capacity`,
          },
        ),
        plain(
          'idempotence: replayed writes that applied again',
          'writes',
          [replayWrites - replayFailed],
          {
            goal: `0 client items (≤ ${servicesIn(clients)} service items, whose lastSeen update is idempotent)`,
            note: 'a client item write that succeeds on a replay would count its packets twice',
          },
        ),
        compared('replayed batch wall time', 'ms', [replay.ms], 'first delivery', roundMs, 'lower'),
      ];
    } finally {
      await store.stop();
    }
  },
};
