/**
 * The marks that a service-hour's roll-up is to be built: the summarize
 * function puts them, the roll-up function builds and deletes them.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { MINUTE_MS } from '../../contract/block.js';
import { ROLLUP_MINUTES, rollupDueKey, ttlFor } from '../../contract/table-keys.js';
import type { ReaderOptions } from './block-reader.js';

/**
 * Marks a service-hour's roll-up as due (again). A plain put: a newer mark
 * replaces an older one with a new arrival time and no shards done, so work
 * already under way for it starts over with the late block included.
 */
export async function markRollupDue(
  reader: ReaderOptions,
  service: string,
  hour: number,
  now: number,
  retentionHours: number,
): Promise<void> {
  await reader.doc.send(
    new PutCommand({
      TableName: reader.table,
      Item: {
        ...rollupDueKey(service, hour),
        service,
        hour,
        at: now,
        ttl: ttlFor((hour + 1) * ROLLUP_MINUTES * MINUTE_MS, retentionHours),
      },
    }),
  );
}
