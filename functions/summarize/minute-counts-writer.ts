/**
 * Keeps a summary's active counts in its service's hour of counts
 * (contract/minute-counts.ts), so the last hour is one small read.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { countsAttribute, countsValue } from '../../contract/minute-counts.js';
import { TABLE } from '../../contract/resources.js';
import type { SummaryItem } from '../../contract/summary.js';
import { countsKey, hourOf, ROLLUP_MINUTES, ttlFor } from '../../contract/table-keys.js';
import type { ReaderOptions } from '../store/block-reader.js';

const MINUTE_MS = 60_000;

/**
 * Sets the summary's minute in its hour's counts item (created by the first
 * minute). An UpdateItem of one attribute: a re-summary (late block) sets the
 * same minute again, so the item always holds the latest summary's counts.
 * Returns the write units consumed.
 */
export async function putMinuteCounts(
  writer: ReaderOptions,
  summary: Pick<SummaryItem, 'service' | 'minute' | 'activeClients' | 'activeClientIps'>,
  retentionHours: number,
): Promise<number> {
  const hour = hourOf(summary.minute);
  const out = await writer.doc.send(
    new UpdateCommand({
      TableName: writer.table,
      Key: countsKey(summary.service, hour),
      UpdateExpression: 'SET #m = :m, #service = :service, #hour = :hour, #ttl = :ttl',
      ExpressionAttributeNames: {
        '#m': countsAttribute(summary.minute),
        '#service': 'service',
        '#hour': 'hour',
        '#ttl': TABLE.ttlAttribute,
      },
      ExpressionAttributeValues: {
        ':m': countsValue(summary.activeClients, summary.activeClientIps),
        ':service': summary.service,
        ':hour': hour,
        // Kept as long as the hour's last minute: retention after the hour's end.
        ':ttl': ttlFor((hour + 1) * ROLLUP_MINUTES * MINUTE_MS, retentionHours),
      },
      ReturnConsumedCapacity: 'TOTAL',
    }),
  );
  return out.ConsumedCapacity?.CapacityUnits ?? 0;
}
