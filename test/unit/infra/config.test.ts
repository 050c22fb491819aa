/**
 * Context validation: values from cdk.json (JSON types) and from `-c`
 * (strings) both parse, defaults fill in, and a bad value fails with a
 * message that names the key.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../contract/resources.js';
import {
  ConfigError,
  parseConfig,
  provisionedTableCapacity,
  STREAM_DEFAULTS,
  TABLE_CAPACITY_DEFAULTS,
} from '../../../infra/config.js';

/** The message parseConfig throws for `context`. */
function errorOf(context: Record<string, unknown>): string {
  try {
    parseConfig(context);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig', () => {
  it('fills in production defaults from an empty context', () => {
    const config = parseConfig({});
    expect(config).toMatchObject({
      stackName: 'Udpwatch',
      namePrefix: '',
      production: true,
      streamRetentionHours: 24,
      logRetentionDays: 30,
      activeWindowSeconds: DEFAULTS.activeWindowSeconds,
      retentionHours: DEFAULTS.retentionHours,
      serviceAlarms: {},
      minAgentsReporting: 1,
      agentInstanceProfile: false,
    });
    // A provisioned stream of 2 shards, not on-demand (the cheap default, docs/deploy.md).
    expect(config.streamMode).toBe('provisioned');
    expect(config.shardCount).toBe(STREAM_DEFAULTS.shardCount);
    expect(STREAM_DEFAULTS.shardCount).toBe(2);
  });

  it('switches the stream to on-demand with streamMode, with no shard count', () => {
    const config = parseConfig({ streamMode: 'on-demand' });
    expect(config.streamMode).toBe('on-demand');
    expect(config.shardCount).toBeUndefined();
    expect(parseConfig({ streamMode: 'provisioned', shardCount: 6 }).shardCount).toBe(6);
  });

  it('provisions the table under auto scaling by default, with ceilings that -c can raise', () => {
    const config = parseConfig({});
    expect(config.tableMode).toBe('provisioned');
    expect(provisionedTableCapacity(config)).toEqual({
      maxWriteCapacity: TABLE_CAPACITY_DEFAULTS.maxWriteCapacity,
      maxReadCapacity: TABLE_CAPACITY_DEFAULTS.maxReadCapacity,
    });
    const raised = parseConfig({ tableMaxWriteCapacity: '12000', tableMaxReadCapacity: 800 });
    expect(provisionedTableCapacity(raised)).toEqual({
      maxWriteCapacity: 12_000,
      maxReadCapacity: 800,
    });
    expect(provisionedTableCapacity(parseConfig({ tableMode: 'on-demand' }))).toBeUndefined();
  });

  it('refuses ceilings below the minimum, for an on-demand table, and an unknown table mode', () => {
    expect(errorOf({ tableMaxWriteCapacity: '2' })).toContain('context "tableMaxWriteCapacity"');
    const both = errorOf({ tableMode: 'on-demand', tableMaxReadCapacity: '50' });
    expect(both).toContain('context "tableMaxReadCapacity": 50 given with tableMode=on-demand');
    expect(errorOf({ tableMode: 'ondemand' })).toContain(
      'context "tableMode": expected provisioned or on-demand',
    );
  });

  it('refuses shards for an on-demand stream and an unknown stream mode, naming the key', () => {
    const both = errorOf({ streamMode: 'on-demand', shardCount: '4' });
    expect(both).toContain('context "shardCount": 4 shards given with streamMode=on-demand');
    expect(both).toContain('drop shardCount or use streamMode=provisioned');
    const unknown = errorOf({ streamMode: 'ondemand' });
    expect(unknown).toContain('context "streamMode": expected provisioned or on-demand');
  });

  it('accepts the string forms that `cdk -c key=value` passes', () => {
    const config = parseConfig({
      serviceAlarms: '{"dns":{"min":10,"max":50000},"ntp":{"maxIps":"900"}}',
      shardCount: '4',
      production: 'false',
      agentInstanceProfile: 'true',
      logRetentionDays: '90',
    });
    expect(config.serviceAlarms).toEqual({ dns: { min: 10, max: 50000 }, ntp: { maxIps: 900 } });
    expect(config.shardCount).toBe(4);
    expect(config.production).toBe(false);
    expect(config.agentInstanceProfile).toBe(true);
    expect(config.logRetentionDays).toBe(90);
  });

  it('accepts serviceAlarms as an object, as cdk.json holds it', () => {
    const config = parseConfig({ serviceAlarms: { dns: { min: 1, treatMissingData: 'ignore' } } });
    expect(config.serviceAlarms.dns).toEqual({ min: 1, treatMissingData: 'ignore' });
  });

  it('ignores context keys it does not own (CDK feature flags)', () => {
    expect(parseConfig({ '@aws-cdk/core:newStyleStackSynthesis': true }).stackName).toBe(
      'Udpwatch',
    );
  });

  it('names the key and the problem of every bad value', () => {
    const message = errorOf({
      serviceAlarms: { dns: { min: 'ten' }, ntp: {}, 'bad/name': { min: 1 } },
      shardCount: '0',
      logRetentionDays: 31,
      production: 'yes',
    });
    expect(message).toContain('context "serviceAlarms.dns.min"');
    expect(message).toMatch(/context "serviceAlarms\.ntp": give at least one of min, max/);
    expect(message).toContain('context "serviceAlarms.bad/name"');
    expect(message).toContain('context "shardCount"');
    expect(message).toMatch(/context "logRetentionDays": must be one of 1, 3, 5, 7, 14, 30/);
    expect(message).toMatch(/context "production": expected true or false/);
  });

  it('rejects bounds that contradict each other and unknown bound names', () => {
    expect(errorOf({ serviceAlarms: { dns: { min: 10, max: 5 } } })).toContain(
      'min must not exceed max',
    );
    expect(errorOf({ serviceAlarms: { dns: { minimum: 10 } } })).toMatch(
      /serviceAlarms\.dns.*minimum/s,
    );
  });

  it('explains serviceAlarms that are not JSON, with an example', () => {
    const message = errorOf({ serviceAlarms: '{dns:{min:10}}' });
    expect(message).toMatch(/context "serviceAlarms": not valid JSON .*\{"dns":\{"min":10/);
  });

  it('rejects a malformed alarm e-mail', () => {
    expect(errorOf({ alarmEmail: 'not-an-address' })).toContain('context "alarmEmail"');
  });

  it('fails on a key the block layout removed instead of silently ignoring it', () => {
    const message = errorOf({ batchingWindowSeconds: '30' });
    expect(message).toMatch(/context "batchingWindowSeconds": removed: .*no longer a cost setting/);
    expect(() => parseConfig({})).not.toThrow();
  });
});
