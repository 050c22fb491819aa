/**
 * The local table is the deployed one: the contract's keys and no index; and
 * a table left on disk by the indexed layout is refused, not silently used.
 */
import { CreateTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE } from '../../../contract/resources.js';
import { createTable, type Emulators, startEmulators } from '../../../local/emulators.js';

let emu: Emulators;
beforeAll(async () => {
  emu = await startEmulators();
});
afterAll(async () => {
  await emu?.stop();
});

describe('local emulators', () => {
  it('create the table with exactly the contract keys and no secondary index', async () => {
    const { Table } = await emu.dynamodb.send(
      new DescribeTableCommand({ TableName: emu.tableName }),
    );
    expect(Table?.KeySchema).toEqual([
      { AttributeName: TABLE.partitionKey.name, KeyType: 'HASH' },
      { AttributeName: TABLE.sortKey.name, KeyType: 'RANGE' },
    ]);
    expect(Table?.GlobalSecondaryIndexes ?? []).toEqual([]);
    expect(Table?.LocalSecondaryIndexes ?? []).toEqual([]);
    // Creating it again (a restart on --data-dir) is fine.
    await expect(createTable(emu.dynamodb, emu.tableName)).resolves.toBeUndefined();
  });

  it('refuse an existing table that still has the old layout indexes', async () => {
    const name = 'old-layout';
    await emu.dynamodb.send(
      new CreateTableCommand({
        TableName: name,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
          { AttributeName: 'gpk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: 'activity',
            KeySchema: [{ AttributeName: 'gpk', KeyType: 'HASH' }],
            Projection: { ProjectionType: 'KEYS_ONLY' },
          },
        ],
      }),
    );
    await expect(createTable(emu.dynamodb, name)).rejects.toThrow(
      /table old-layout has secondary indexes \(activity\).*older udpwatch layout/,
    );
  });
});
