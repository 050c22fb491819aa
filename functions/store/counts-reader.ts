/** Reads a service's hours of per-minute counts (contract/minute-counts.ts). */
import { TABLE } from '../../contract/resources.js';
import { countsPartition, countsSortKey } from '../../contract/table-keys.js';
import { queryAll, type RawItem, type ReadCost, type ReaderOptions } from './block-reader.js';

/** The counts items of hours `a..b` (epoch hours) of one service, oldest first: one Query. */
export function readCountHours(
  options: ReaderOptions,
  service: string,
  a: number,
  b: number,
  cost: ReadCost,
): Promise<RawItem[]> {
  return queryAll(
    options,
    {
      KeyConditionExpression: '#pk = :pk AND #sk BETWEEN :a AND :b',
      ExpressionAttributeNames: { '#pk': TABLE.partitionKey.name, '#sk': TABLE.sortKey.name },
      ExpressionAttributeValues: {
        ':pk': countsPartition(service),
        ':a': countsSortKey(a),
        ':b': countsSortKey(b),
      },
    },
    cost,
  );
}
