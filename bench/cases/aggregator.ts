/**
 * Aggregator: endpoint-minutes per second per invocation of the real
 * aggregate handler (middy, Powertools, the document client) storing sealed
 * blocks in dynalite in another process, as a ratio against raw PutItems of
 * the same items at the same concurrency (what storing costs at the least);
 * the fixed cost of an invocation; and what a replayed batch writes.
 *
 * A batch is one minute of `agents` agents of 1,000 endpoints each: their
 * main parts (one per service), as v2 records.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Block } from '../../contract/block.js';
import { AGENT_BLOCK_QUALITY, encodeBlock } from '../../contract/block-codec.js';
import { DEFAULTS } from '../../contract/resources.js';
import { lambdaContext } from '../../local/lambda-context.js';
import { blockItem } from '../block-item.js';
import { type BenchCase, compared, plain } from '../harness.js';
import { recordMeasurement } from '../measured.js';
import {
  countOf,
  documentClient,
  kinesisEvent,
  prepareHandlerEnvironment,
  startStoreChild,
} from '../store-harness.js';
import { syntheticHostMinute } from '../synthetic-flows.js';
import { sealHostMinute } from './blocks.js';

const ENDPOINTS_PER_AGENT = 1_000;
/** The handler's writes in flight (functions/aggregate/aggregate.ts default). */
const IN_FLIGHT = 16;

/** Every agent's main parts of one minute, each agent with its own id. */
function minuteParts(agents: number, minute: number, seq: number): Block[] {
  const out: Block[] = [];
  for (let a = 0; a < agents; a++) {
    const agentId = `i-0bench0aggr${String(a).padStart(6, '0')}`;
    const h = syntheticHostMinute({ endpoints: ENDPOINTS_PER_AGENT, minute, seed: 500 + a });
    out.push(...sealHostMinute(h, seq, minute).map((b) => ({ ...b, agentId })));
  }
  return out;
}

export const aggregator: BenchCase = {
  id: 'aggregator',
  title: 'aggregate handler: endpoint-minutes per second vs raw PutItem, replay cost',
  async run({ quick, log }) {
    prepareHandlerEnvironment();
    const agents = quick ? 10 : 50;
    const roundCount = quick ? 2 : 5;
    const store = await startStoreChild();
    try {
      const { createAggregateHandler } = await import('../../functions/aggregate/handler.js');
      const config = {
        table: store.endpoints.tableName,
        activeWindowSeconds: DEFAULTS.activeWindowSeconds,
        retentionHours: DEFAULTS.retentionHours,
        dynamodbEndpoint: store.endpoints.dynamodbEndpoint,
      };
      const handler = createAggregateHandler(config);
      const doc = documentClient(store.endpoints.dynamodbEndpoint);
      const arn = `arn:aws:kinesis:us-east-1:000000000000:stream/${store.endpoints.streamName}`;
      const endpointMinutes = agents * ENDPOINTS_PER_AGENT;
      // The current minute, so no block is late (a late one also puts a late mark); rounds differ by seq.
      const minute = Math.floor(Date.now() / 60_000);
      let seq = 1;
      const nextSeq = () => {
        seq += 10;
        return seq;
      };
      const eventOf = (parts: readonly Block[]) =>
        kinesisEvent(
          parts.map((p) => ({
            partitionKey: p.agentId,
            data: encodeBlock(p, AGENT_BLOCK_QUALITY),
          })),
          arn,
        );
      const invoke = async (event: ReturnType<typeof eventOf>) => {
        await store.counts(); // reset
        // This process's CPU (dynalite runs in another) and resident memory, sampled while the handler awaits.
        const rssBefore = process.memoryUsage.rss();
        let rssPeak = rssBefore;
        const sampler = setInterval(() => {
          rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
        }, 2);
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        // A fresh context per invocation, as Lambda gives: its deadline starts now.
        const ctx = lambdaContext({ functionName: 'aggregate', region: 'us-east-1' });
        const result = await handler(event, ctx);
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        clearInterval(sampler);
        rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
        if (result && result.batchItemFailures.length > 0) {
          throw new Error(`aggregate reported ${result.batchItemFailures.length} failed records`);
        }
        const cpuMs = (cpu.user + cpu.system) / 1000;
        return { ms, cpuMs, rssBefore, rssPeak, counts: await store.counts() };
      };
      /** The same items put directly, IN_FLIGHT at a time, with the handler's condition. */
      const rawPut = async (parts: readonly Block[]) => {
        const items = parts.map((p) =>
          blockItem(p, encodeBlock(p, AGENT_BLOCK_QUALITY), DEFAULTS.retentionHours),
        );
        const t0 = performance.now();
        let next = 0;
        const worker = async () => {
          while (next < items.length) {
            const Item = items[next++]!;
            await doc.send(
              new PutCommand({
                TableName: config.table,
                Item: { ...Item, pk: `RAW#${Item.pk}` },
                ConditionExpression: 'attribute_not_exists(pk) OR h = :h',
                ExpressionAttributeValues: { ':h': Item.h },
              }),
            );
          }
        };
        await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
        return performance.now() - t0;
      };

      // Warm-up, and the fixed cost of an invocation: one small part.
      await invoke(eventOf(minuteParts(1, minute, nextSeq())));
      const tiny = syntheticHostMinute({ endpoints: 2, minute, seed: 9 });
      const tinyPart = sealHostMinute(tiny, 1, minute)[0]!;
      const fixed: number[] = [];
      for (let r = 0; r < 3; r++) {
        fixed.push((await invoke(eventOf([{ ...tinyPart, seq: nextSeq() }]))).ms);
      }
      const rates: number[] = [];
      const cpuRates: number[] = [];
      const rssGrowthMb: number[] = [];
      let rssPeakMb = 0;
      const rawRates: number[] = [];
      let last = minuteParts(agents, minute, nextSeq());
      let lastEvent = eventOf(last);
      let puts = 0;
      for (let r = 0; r < roundCount; r++) {
        if (r > 0) {
          last = minuteParts(agents, minute, nextSeq());
          lastEvent = eventOf(last);
        }
        // Alternate which goes first, so both see the same machine.
        const rawFirst = r % 2 === 1;
        const rawMs = rawFirst ? await rawPut(last) : undefined;
        const res = await invoke(lastEvent);
        const raw = rawMs ?? (await rawPut(last));
        rates.push(endpointMinutes / (res.ms / 1000));
        cpuRates.push(endpointMinutes / (res.cpuMs / 1000));
        rssGrowthMb.push((res.rssPeak - res.rssBefore) / 2 ** 20);
        rssPeakMb = Math.max(rssPeakMb, res.rssPeak / 2 ** 20);
        rawRates.push(endpointMinutes / (raw / 1000));
        puts = countOf(res.counts, 'PutItem');
        log(
          `round ${r + 1}: ${last.length} parts in ${res.ms.toFixed(0)} ms (raw ${raw.toFixed(0)} ms), ${JSON.stringify(res.counts)}`,
        );
      }
      const replay = await invoke(lastEvent);
      log(`replay: ${replay.ms.toFixed(0)} ms, ${JSON.stringify(replay.counts)}`);
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
      recordMeasurement('aggregateEndpointMinutesPerSecond', median(rates));
      recordMeasurement('aggregateFixedMs', median(fixed));
      recordMeasurement('aggregateCpuEndpointMinutesPerSecond', median(cpuRates));
      recordMeasurement('aggregateMemory', {
        records: last.length,
        rssGrowthMbPerRecord: Math.max(...rssGrowthMb) / last.length,
        rssPeakMb,
      });
      return [
        compared(
          'endpoint-minutes stored per second per invocation',
          'endpoint-min/s',
          rates,
          `raw PutItem of the same items, ${IN_FLIGHT} in flight`,
          rawRates,
          'higher',
          {
            note: `${agents} agents x ${ENDPOINTS_PER_AGENT.toLocaleString('en-US')} endpoints = ${last.length} v2 records per invocation; dynalite in another process`,
          },
        ),
        plain(
          'endpoint-minutes stored per CPU second (handler process)',
          'endpoint-min/s',
          cpuRates,
          {
            note: 'user + system CPU of the process running the handler during the invocation; the scale model stretches this by the Lambda CPU share of its memory',
          },
        ),
        plain(
          `resident memory growth during an invocation of ${last.length} records`,
          'MB',
          rssGrowthMb,
          {
            note: `peak RSS of the whole bench process ${rssPeakMb.toFixed(0)} MB (includes the bench harness and its data); growth is what the batch itself took`,
          },
        ),
        plain('invocation with one small part', 'ms', fixed, {
          note: 'decode + validate + one PutItem + service refresh + EMF',
        }),
        plain('store requests per block part', 'requests', [puts / last.length], {
          note: 'PutItem per part, plus the service-list refreshes (at most once a minute per service per instance)',
        }),
        plain(
          'replayed batch: PutItems per part',
          'requests',
          [countOf(replay.counts, 'PutItem') / last.length],
          {
            note: `${countOf(replay.counts, 'PutItem:conditionFailed')} failed their condition; identical content re-puts (h = :h passes) and costs its write units again`,
          },
        ),
      ];
    } finally {
      await store.stop();
    }
  },
};
