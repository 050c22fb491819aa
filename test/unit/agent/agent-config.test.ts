import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AgentConfigSchema,
  ConfigError,
  ebpfDrainSeconds,
  loadAgentConfig,
  parseServicesEnv,
} from '../../../agent/agent-config.js';
import { createServiceNamer } from '../../../agent/service-names.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('agent config', () => {
  it('merges file < env < flags and fills defaults', () => {
    const path = file(
      'ok.json',
      JSON.stringify({ stream: 'from-file', maxFlows: 10, services: [{ name: 'dns', port: 53 }] }),
    );
    const c = loadAgentConfig({
      configFile: path,
      env: { UDPWATCH_STREAM: 'from-env', UDPWATCH_INTERVAL: '0.5' },
      overrides: { intervalSeconds: 2 },
    });
    expect(c.stream).toBe('from-env');
    expect(c.maxFlows).toBe(10);
    expect(c.intervalSeconds).toBe(2);
    expect(c.defaultTimeoutSeconds).toBe(300);
    expect(c.heartbeatSeconds).toBe(60);
    expect(c.sealIntervalSeconds).toBe(60);
    expect(c.earlyParts).toEqual({ burst: 2, refillSeconds: 30 });
    expect(c.services).toEqual([{ name: 'dns', port: 53 }]);
  });

  it('takes an eBPF drain interval of at most 5 s, unset by default', () => {
    expect(loadAgentConfig({ env: {} }).ebpf.drainSeconds).toBeUndefined();
    const ok = file('drain.json', JSON.stringify({ ebpf: { drainSeconds: 5 } }));
    expect(loadAgentConfig({ configFile: ok, env: {} }).ebpf.drainSeconds).toBe(5);
    // Past 5 s a tuple's 24-bit packet count could overflow (docs/ebpf.md).
    const long = file('drain-long.json', JSON.stringify({ ebpf: { drainSeconds: 6 } }));
    expect(() => loadAgentConfig({ configFile: long, env: {} })).toThrow(/drainSeconds/);
  });

  it('drains eBPF every fifth interval, at most every 5 s, unless drainSeconds is set', () => {
    const at = (input: object) => ebpfDrainSeconds(AgentConfigSchema.parse(input));
    expect(at({})).toBe(5);
    expect(at({ intervalSeconds: 0.2 })).toBe(1);
    expect(at({ intervalSeconds: 0.5 })).toBe(2.5);
    expect(at({ intervalSeconds: 30 })).toBe(5);
    expect(at({ intervalSeconds: 0.2, ebpf: { drainSeconds: 0.2 } })).toBe(0.2);
    expect(at({ ebpf: { drainSeconds: 1 } })).toBe(1);
  });

  it('names the bad field and where it came from', () => {
    const bad = file('bad.json', JSON.stringify({ services: [{ name: 'x', port: 70000 }] }));
    expect(() => loadAgentConfig({ configFile: bad, env: {} })).toThrow(
      new RegExp(`config ${bad}: services\\.0\\.port`),
    );
    const unknown = file('unknown.json', JSON.stringify({ maxFlow: 1 }));
    expect(() => loadAgentConfig({ configFile: unknown, env: {} })).toThrow(/maxFlow/);
    expect(() => loadAgentConfig({ configFile: file('syntax.json', '{'), env: {} })).toThrow(
      /not valid JSON/,
    );
    expect(() => loadAgentConfig({ env: { UDPWATCH_MAX_FLOWS: 'lots' } })).toThrow(
      /UDPWATCH_MAX_FLOWS: "lots" is not a number/,
    );
    expect(() => loadAgentConfig({ env: { UDPWATCH_INTERVAL: '0' } })).toThrow(
      /environment: intervalSeconds/,
    );
    expect(() => loadAgentConfig({ configFile: join(dir, 'missing.json'), env: {} })).toThrow(
      ConfigError,
    );
  });

  it('reads service rules from UDPWATCH_SERVICES', () => {
    expect(parseServicesEnv('53=dns, process:named=dns2,5000/echod=echo')).toEqual([
      { name: 'dns', port: 53 },
      { name: 'dns2', process: 'named' },
      { name: 'echo', port: 5000, process: 'echod' },
    ]);
    expect(() => parseServicesEnv('dns')).toThrow(/UDPWATCH_SERVICES: "dns" is not/);
  });

  it('names services by the first matching rule, else <process>:<port>', () => {
    const name = createServiceNamer(
      [
        { name: 'echo-special', port: 7, process: 'echod', timeoutSeconds: 5 },
        { name: 'echo', port: 7 },
        { name: 'named', process: 'named', sampleRate: 4 },
      ],
      300,
    );
    expect(name(7, 'echod')).toEqual({ service: 'echo-special', timeoutSeconds: 5, sampleRate: 1 });
    expect(name(7, 'other').service).toBe('echo');
    expect(name(53, 'named')).toEqual({ service: 'named', timeoutSeconds: 300, sampleRate: 4 });
    expect(name(9999, 'tokio-runtime w').service).toBe('tokio-runtime_w:9999');
    expect(name(9999, undefined).service).toBe('unknown:9999');
  });
});
