/**
 * `npm run synth` (cdk synth --quiet through the CLI, as a user runs it) works
 * offline: no AWS credentials, every network request refused. The CLI runs
 * the app, bundles the three functions with esbuild and runs cdk-nag; a bad
 * context value fails it with a message naming the key.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRICS } from '../../../contract/resources.js';

/** The part of a synthesized resource these checks read. */
interface SynthesizedResource {
  Type: string;
  Properties: { MetricName?: string; Threshold?: number; KmsKeyId?: unknown };
}

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** The environment of a machine with no AWS credentials and no network. */
function offlineEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith('AWS_') || key.startsWith('CDK_')) delete env[key];
  }
  return {
    ...env,
    // Any HTTP(S) request goes to a closed loopback port and fails at once.
    HTTPS_PROXY: 'http://127.0.0.1:9',
    HTTP_PROXY: 'http://127.0.0.1:9',
    NO_PROXY: '',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
  };
}

/** Runs `npm run synth -- args` from the repository root. */
function synth(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'npm',
      ['run', 'synth', '--', ...args],
      { cwd: ROOT, env: offlineEnv(), timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let workdir: string;

beforeAll(() => {
  workdir = mkdtempSync(join(tmpdir(), 'udpwatch-synth-'));
});

afterAll(() => {
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

describe('npm run synth, offline', () => {
  it('synthesizes the stack with per-service alarms from -c', async () => {
    const out = join(workdir, 'ok');
    const result = await synth([
      '--output',
      out,
      '-c',
      'serviceAlarms={"dns":{"min":10,"max":50000}}',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const template = JSON.parse(readFileSync(join(out, 'Udpwatch.template.json'), 'utf8'));
    const alarms = Object.values<SynthesizedResource>(template.Resources).filter(
      (r) =>
        r.Type === 'AWS::CloudWatch::Alarm' && r.Properties.MetricName === METRICS.activeClients,
    );
    expect(alarms.map((a) => a.Properties.Threshold ?? -1).sort((a, b) => a - b)).toEqual([
      10, 50000,
    ]);
    // aggregate, query, summarize, rollup and the cursor key rotation.
    const bundles = readdirSync(out).filter((dir) => existsSync(join(out, dir, 'index.mjs')));
    expect(bundles).toHaveLength(5);
    // Every log group is encrypted with the stack's log key.
    const logGroups = Object.values<SynthesizedResource>(template.Resources).filter(
      (r) => r.Type === 'AWS::Logs::LogGroup',
    );
    expect(logGroups).toHaveLength(6);
    for (const g of logGroups) expect(g.Properties.KmsKeyId).toBeDefined();
  }, 240_000);

  it('fails on a bad context value with a message naming the key', async () => {
    const result = await synth([
      '--output',
      join(workdir, 'bad'),
      '-c',
      'serviceAlarms={"dns":{"min":"ten"}}',
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('context "serviceAlarms.dns.min"');
  }, 240_000);
});
