/**
 * Deleting a mark only if nobody re-put it since it was read: the late marks
 * and the roll-up marks are re-put (with a new arrival time) by whoever finds
 * more work for them, and that newer work must not be deleted with the old.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import type { RawItem, ReaderOptions } from './block-reader.js';

/** Whether an error is DynamoDB's "the condition did not hold". */
export function isConditionFailure(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err instanceof Error && err.name === 'ConditionalCheckFailedException')
  );
}

/**
 * Deletes `item` unless it changed since it was read: every scalar attribute
 * must still be as read (the arrival time `at` among them), so a mark re-put
 * meanwhile stays for the next run. Returns whether it was deleted.
 */
export async function deleteUnlessChanged(reader: ReaderOptions, item: RawItem): Promise<boolean> {
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  const terms: string[] = [];
  let i = 0;
  for (const [name, value] of Object.entries(item)) {
    if (name === 'pk' || name === 'sk') continue;
    if (typeof value !== 'number' && typeof value !== 'string' && typeof value !== 'boolean')
      continue;
    names[`#a${i}`] = name;
    values[`:v${i}`] = value;
    terms.push(`#a${i} = :v${i}`);
    i++;
  }
  try {
    await reader.doc.send(
      new DeleteCommand({
        TableName: reader.table,
        Key: { pk: item.pk, sk: item.sk },
        ...(terms.length
          ? {
              ConditionExpression: terms.join(' AND '),
              ExpressionAttributeNames: names,
              ExpressionAttributeValues: values,
            }
          : {}),
      }),
    );
    return true;
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    return false;
  }
}
