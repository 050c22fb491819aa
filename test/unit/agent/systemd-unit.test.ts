/**
 * The shipped systemd unit: its exposure as systemd itself measures it
 * (`systemd-analyze security --offline=yes`, the systemd package on Debian),
 * and the directives each agent source depends on.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const UNIT = join(import.meta.dirname, '../../../agent/packaging/udpwatch-agent.service');
const MAX_EXPOSURE = 2.5;

function analyze(args: string[]): string {
  try {
    return execFileSync('systemd-analyze', args, { encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        'systemd-analyze is missing: install the systemd package (Debian: apt-get install systemd; .ci/run does) to measure the agent unit',
      );
    }
    const e = err as { stdout?: string; stderr?: string };
    // `security` exits non-zero when a --threshold is passed and exceeded; we pass none.
    throw new Error(`systemd-analyze ${args.join(' ')} failed: ${e.stderr || e.stdout || err}`);
  }
}

/** Every value a directive is given in the unit, in order (repeated lines accumulate). */
function directive(name: string): string[] {
  return readFileSync(UNIT, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${name}=`))
    .map((l) => l.slice(name.length + 1).trim());
}

/** The system calls a filter group stands for, nested groups expanded. */
function expandGroup(group: string, seen = new Set<string>()): Set<string> {
  const calls = new Set<string>();
  if (seen.has(group)) return calls;
  seen.add(group);
  const out = analyze(['syscall-filter', '--no-pager', group]);
  for (const line of out.split('\n')) {
    const name = line.trim();
    if (!/^@?[a-z0-9_-]+$/.test(name) || name === group) continue;
    if (name.startsWith('@')) for (const c of expandGroup(name, seen)) calls.add(c);
    else calls.add(name);
  }
  return calls;
}

const words = (name: string) => directive(name).flatMap((v) => v.split(/\s+/).filter(Boolean));

describe('agent systemd unit', () => {
  it(`scores at most ${MAX_EXPOSURE} in systemd-analyze security`, () => {
    const out = analyze(['security', '--offline=yes', '--no-pager', UNIT]);
    const m = /Overall exposure level for udpwatch-agent\.service: (\d+\.\d)/.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(MAX_EXPOSURE);
    // The checks a regression would flip first (a dropped line, a capability added back).
    const items = JSON.parse(
      analyze(['security', '--offline=yes', '--json=short', '--no-pager', UNIT]),
    ) as { name: string; set: boolean; exposure: number | null }[];
    const passed = (name: string) => items.find((i) => i.name === name)?.set;
    for (const name of [
      'CapabilityBoundingSet=~CAP_SYS_ADMIN',
      'CapabilityBoundingSet=~CAP_SYS_(NICE|RESOURCE)',
      'AmbientCapabilities=',
      'SystemCallFilter=~@mount',
      'SystemCallFilter=~@resources',
      'ProtectKernelLogs=',
      'ProtectHostname=',
      'PrivateMounts=',
      'ProtectProc=',
      'UMask=',
    ]) {
      expect(passed(name), name).toBe(true);
    }
  });

  it('grants exactly the capabilities the sources need, as uid 0 for bpftrace', () => {
    expect(directive('User')).toEqual(['root']);
    expect(words('CapabilityBoundingSet').sort()).toEqual(
      ['CAP_BPF', 'CAP_DAC_READ_SEARCH', 'CAP_NET_ADMIN', 'CAP_PERFMON', 'CAP_SYS_PTRACE'].sort(),
    );
    // Each one has its reason next to it.
    const text = readFileSync(UNIT, 'utf8');
    for (const cap of words('CapabilityBoundingSet'))
      expect(text).toMatch(new RegExp(`^#\\s+${cap}\\s+\\S`, 'm'));
    expect(directive('LimitMEMLOCK')).toEqual(['infinity']);
    expect(directive('NoNewPrivileges')).toEqual(['yes']);
  });

  it('lets through the system calls and sockets the sources use', () => {
    const allow = directive('SystemCallFilter').filter((v) => !v.startsWith('~'));
    expect(allow.join(' ').split(/\s+/)).toEqual(
      expect.arrayContaining(['@system-service', 'bpf', 'perf_event_open']),
    );
    // What @system-service expands to here: the calls Node, bpftrace and conntrack make.
    const service = expandGroup('@system-service');
    for (const call of [
      'socket',
      'sendmsg',
      'recvmsg',
      'ioctl',
      'mmap',
      'execve',
      'readlinkat',
      'getdents64',
    ]) {
      expect(service.has(call), call).toBe(true);
    }
    // bpftrace's memlock raise is denied by ~@resources, and harmless under LimitMEMLOCK.
    expect(expandGroup('@resources').has('setrlimit')).toBe(true);
    expect(directive('SystemCallErrorNumber')).toEqual(['EPERM']);
    expect(words('RestrictAddressFamilies').sort()).toEqual(
      ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX'].sort(),
    );
    // Node's JIT needs writable-then-executable code pages.
    expect(directive('MemoryDenyWriteExecute')).toEqual([]);
    const allowed = words('IPAddressAllow');
    expect(directive('IPAddressDeny')).toEqual(['any']);
    expect(allowed).toEqual(
      expect.arrayContaining(['localhost', '169.254.169.254/32', '2000::/3']),
    );
    expect(allowed.filter((a) => /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(a))).toEqual(
      [],
    );
  });

  it('keeps the state and runtime directories writable and the host views the sources read', () => {
    expect(directive('StateDirectory')).toEqual(['udpwatch']);
    expect(directive('RuntimeDirectory')).toEqual(['udpwatch']);
    expect(words('ReadWritePaths').sort()).toEqual(['/run/udpwatch', '/var/lib/udpwatch']);
    expect(directive('ProtectSystem')).toEqual(['strict']);
    // /proc/net/* and /proc/<pid>/fd of every process: no ProcSubset=pid, hidepid passes ptrace.
    expect(directive('ProcSubset')).toEqual([]);
    expect(directive('ProtectProc')).toEqual(['invisible']);
    expect(directive('PrivateNetwork')).toEqual([]);
    expect(directive('PrivateUsers')).toEqual([]);
  });
});
