/**
 * The shipped systemd unit: its exposure as systemd itself measures it
 * (`systemd-analyze security --offline=yes`, the systemd package on Debian),
 * and the directives each agent source depends on.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  allowedSyscalls,
  systemdAnalyze as analyze,
  directive,
  expandGroup,
  AGENT_UNIT as UNIT,
  words,
} from '../../support/systemd-unit.js';

const MAX_EXPOSURE = 2.5;

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
    // The unit's effective list: ~@resources removes priorities and affinity,
    // rlimits stay reachable through prlimit64 (bpftrace's memlock raise).
    const calls = allowedSyscalls();
    for (const call of ['bpf', 'perf_event_open', 'prlimit64', 'socket']) {
      expect(calls.has(call), call).toBe(true);
    }
    for (const call of [
      'setpriority',
      'sched_setaffinity',
      'mount',
      'ptrace',
      'init_module',
      'reboot',
    ]) {
      expect(calls.has(call), call).toBe(false);
    }
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
