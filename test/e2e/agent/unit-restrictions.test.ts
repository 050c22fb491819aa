/**
 * The agent's sources inside what the shipped unit grants, applied without
 * systemd as PID 1 (test/e2e/agent/fixtures/unit-sandbox.py): only the
 * unit's capability bounding set, no_new_privs, only the unit's system calls
 * (others EPERM), socket() only for its address families, LimitMEMLOCK. The
 * /proc source must still name the owner of another user's socket, conntrack
 * must be readable and bpftrace must attach and count every datagram.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CAP, ebpfProblem, readEbpfFacts } from '../../../agent/ebpf-requirements.js';
import { allowedSyscalls, words } from '../../support/systemd-unit.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const PACKETS = 25;
/** linux/capability.h numbers of the capabilities the unit may name. */
const CAP_NUMBERS: Record<string, number> = {
  CAP_DAC_READ_SEARCH: 2,
  CAP_NET_ADMIN: 12,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_ADMIN: CAP.SYS_ADMIN,
  CAP_SYS_RESOURCE: CAP.SYS_RESOURCE,
  CAP_PERFMON: CAP.PERFMON,
  CAP_BPF: CAP.BPF,
};
const FAMILIES: Record<string, number> = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16 };

async function whyNot(): Promise<string | null> {
  if (process.geteuid?.() !== 0) return 'needs root';
  const problem = ebpfProblem(await readEbpfFacts({ bpftrace: 'bpftrace', mountTracefs: true }));
  return problem ? `bpftrace cannot attach here: ${problem}` : null;
}
const skipReason = await whyNot();
if (skipReason) console.warn(`SKIPPING unit restrictions e2e: ${skipReason}`);

const dir = mkdtempSync(join(tmpdir(), 'uw-unit-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 90_000, encoding: 'utf8' }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A UDP receiver owned by nobody, on a loopback port; resolves to the port. */
function nobodyServer(): Promise<number> {
  const child = spawn('setpriv', [
    '--reuid=65534',
    '--regid=65534',
    '--clear-groups',
    process.execPath,
    '-e',
    "const s = require('node:dgram').createSocket('udp4'); s.bind(0, '127.0.0.1', () => console.log(s.address().port));",
  ]);
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('nobody server did not start')), 10_000);
    child.stdout!.once('data', (d) => {
      clearTimeout(timer);
      resolve(Number(String(d).trim()));
    });
  });
}

describe.skipIf(skipReason !== null)('agent sources under the unit restrictions', () => {
  it('see other users’ socket owners, read conntrack and count every datagram with eBPF', async () => {
    const caps = words('CapabilityBoundingSet').map((c) => {
      const n = CAP_NUMBERS[c];
      if (n === undefined)
        throw new Error(`unknown capability ${c} in the unit: add its number here`);
      return n;
    });
    const families = words('RestrictAddressFamilies').map((f) => FAMILIES[f]!);
    const spec = join(dir, 'spec.json');
    writeFileSync(spec, JSON.stringify({ caps, families, syscalls: [...allowedSyscalls()] }));
    const port = await nobodyServer();
    const result = await run('python3', [
      join(FIXTURES, 'unit-sandbox.py'),
      spec,
      '--',
      process.execPath,
      '--import',
      'tsx',
      join(FIXTURES, 'sources-probe.ts'),
      String(port),
      String(PACKETS),
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/unit-sandbox: \d+ system calls allowed/);
    const seen = JSON.parse(result.stdout.trim().split('\n').at(-1)!);
    // CAP_DAC_READ_SEARCH + CAP_SYS_PTRACE: the nobody process behind the socket.
    expect(seen.owner).toEqual({ pid: expect.any(Number), comm: 'node' });
    expect(seen.conntrack.available, JSON.stringify(seen.conntrack)).toBe(true);
    // CAP_BPF + CAP_PERFMON, bpf and perf_event_open, no CAP_SYS_ADMIN.
    expect(seen.ebpf, JSON.stringify(seen)).toEqual({
      state: 'live',
      reason: null,
      counted: PACKETS,
    });
  });

  it('refuses what the unit filters: @resources calls (priority, affinity) and other address families get EPERM', async () => {
    const spec = join(dir, 'spec-filter.json');
    const families = words('RestrictAddressFamilies').map((f) => FAMILIES[f]!);
    writeFileSync(spec, JSON.stringify({ caps: [], families, syscalls: [...allowedSyscalls()] }));
    const script = [
      'import os, socket',
      'def attempt(name, f):',
      '    try:',
      '        f(); print(name, "ok")',
      '    except OSError as e:',
      '        print(name, e.errno)',
      'attempt("nice", lambda: os.nice(1))',
      'attempt("affinity", lambda: os.sched_setaffinity(0, os.sched_getaffinity(0)))',
      'attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM))',
      'attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close())',
      'attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close())',
    ].join('\n');
    const result = await run('python3', [
      join(FIXTURES, 'unit-sandbox.py'),
      spec,
      '--',
      '/usr/bin/python3',
      '-c',
      script,
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual([
      'nice 1',
      'affinity 1',
      'packet 1',
      'udp ok',
      'netlink ok',
    ]);
  });

  it('the same probe without the unit’s capabilities loses exactly those sources (the sandbox bites)', async () => {
    const spec = join(dir, 'spec-nocaps.json');
    writeFileSync(
      spec,
      JSON.stringify({
        caps: [],
        families: Object.values(FAMILIES),
        syscalls: [...allowedSyscalls()],
      }),
    );
    const port = await nobodyServer();
    const result = await run('python3', [
      join(FIXTURES, 'unit-sandbox.py'),
      spec,
      '--',
      process.execPath,
      '--import',
      'tsx',
      join(FIXTURES, 'sources-probe.ts'),
      String(port),
      '1',
    ]);
    const seen = JSON.parse(result.stdout.trim().split('\n').at(-1)!);
    expect(seen.owner).toBeNull();
    expect(seen.ebpf.state).toBe('unavailable');
    expect(seen.ebpf.reason).toMatch(/missing capability CAP_BPF, CAP_PERFMON/);
  });
});
