/**
 * The ingest stream's capacity follows the validated config: a provisioned
 * stream of the default shards unless streamMode=on-demand.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../infra/config.js';
import { IngestStream } from '../../../infra/ingest-stream.js';

/** The synthesized stream of an ingest stream built from `context`. */
function streamOf(context: Record<string, unknown>): Record<string, unknown> {
  const config = parseConfig(context);
  const stack = new Stack(new App(), 'S');
  new IngestStream(stack, 'Ingest', {
    namePrefix: '',
    shardCount: config.shardCount,
    retentionHours: config.streamRetentionHours,
    production: config.production,
  });
  const streams = Object.values(Template.fromStack(stack).findResources('AWS::Kinesis::Stream'));
  expect(streams).toHaveLength(1);
  return (streams[0] as { Properties: Record<string, unknown> }).Properties;
}

describe('IngestStream capacity', () => {
  it('is provisioned with 2 shards by default', () => {
    expect(streamOf({})).toMatchObject({
      StreamModeDetails: { StreamMode: 'PROVISIONED' },
      ShardCount: 2,
    });
  });

  it('takes the shardCount context', () => {
    expect(streamOf({ shardCount: '5' })).toMatchObject({ ShardCount: 5 });
  });

  it('is on-demand with streamMode=on-demand, with no shard count', () => {
    const p = streamOf({ streamMode: 'on-demand' });
    expect(p.StreamModeDetails).toEqual({ StreamMode: 'ON_DEMAND' });
    expect(p.ShardCount).toBeUndefined();
  });
});
