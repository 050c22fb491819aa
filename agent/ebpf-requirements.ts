/**
 * What the eBPF source needs of the host, and the one message that says
 * precisely what is missing and how to fix it. `ebpfProblem` is pure (facts
 * in, message out); `readEbpfFacts` gathers the facts.
 *
 * Measured with bpftrace 0.17: it refuses to run unless the effective uid is
 * 0. Left to find kernel BTF itself it walks BTF objects by id, which needs
 * CAP_SYS_ADMIN ("Unknown struct/union: 'struct sk_buff'" without it); given
 * the vmlinux BTF file by path (BPFTRACE_BTF, which the source sets) CAP_BPF
 * and CAP_PERFMON are enough.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export const TRACEFS = '/sys/kernel/tracing';
const DEBUGFS_TRACING = '/sys/kernel/debug/tracing';
export const KERNEL_BTF = '/sys/kernel/btf/vmlinux';
export const MOUNT_TRACEFS = `mount -t tracefs nodev ${TRACEFS}`;

/** Capability numbers (linux/capability.h). */
export const CAP = { SYS_ADMIN: 21, SYS_RESOURCE: 24, PERFMON: 38, BPF: 39 } as const;

/** What the host offers the eBPF source. */
export interface EbpfFacts {
  /** `bpftrace --version` output, or null when the command is missing. */
  bpftraceVersion: string | null;
  bpftraceCommand: string;
  euid: number;
  /** Effective capability set (CapEff of /proc/self/status). */
  capEff: bigint;
  /** A tracefs with the tracepoints is reachable (at /sys/kernel/tracing or under debugfs). */
  tracefs: boolean;
  /** Why mounting tracefs failed, when it was missing and a mount was tried. */
  tracefsMountError?: string;
  btf: boolean;
}

const has = (caps: bigint, cap: number) => ((caps >> BigInt(cap)) & 1n) === 1n;

/**
 * Capabilities the source lacks, by name. CAP_SYS_ADMIN stands in for both on
 * kernels before 5.8 (no CAP_BPF / CAP_PERFMON); CAP_SYS_RESOURCE only raises
 * memlock, a warning, not a need.
 */
export function missingCapabilities(capEff: bigint): string[] {
  if (has(capEff, CAP.SYS_ADMIN)) return [];
  const out: string[] = [];
  if (!has(capEff, CAP.BPF)) out.push('CAP_BPF');
  if (!has(capEff, CAP.PERFMON)) out.push('CAP_PERFMON');
  return out;
}

/** Why the eBPF source cannot run here, as one message naming the fix; null when it can. */
export function ebpfProblem(f: EbpfFacts): string | null {
  if (f.bpftraceVersion === null) {
    return `no ${f.bpftraceCommand} command on PATH: install bpftrace (Debian/Ubuntu: apt-get install bpftrace), or set sources.ebpf to false`;
  }
  if (f.euid !== 0) {
    return `${f.bpftraceVersion} runs only as uid 0 and the agent runs as uid ${f.euid}: run the agent as root (the systemd unit in agent/packaging does, bounded to the capabilities it lists)`;
  }
  const missing = missingCapabilities(f.capEff);
  if (missing.length > 0) {
    return `missing capability ${missing.join(', ')} (bpftrace needs CAP_BPF to load its programs and maps, CAP_PERFMON to attach them to tracepoints): add it to CapabilityBoundingSet of the agent's unit`;
  }
  if (!f.btf) {
    return `no kernel BTF at ${KERNEL_BTF} (kernel built without CONFIG_DEBUG_INFO_BTF): bpftrace cannot read packet headers; use a kernel with BTF or set sources.ebpf to false`;
  }
  if (!f.tracefs) {
    const why = f.tracefsMountError ? ` and mounting it failed (${f.tracefsMountError})` : '';
    return `tracefs is not mounted at ${TRACEFS}${why}: run \`${MOUNT_TRACEFS}\` (to keep it: add \`tracefs ${TRACEFS} tracefs defaults 0 0\` to /etc/fstab)`;
  }
  return null;
}

/** Whether tracepoints can be found: tracefs mounted where bpftrace looks. */
export function tracefsMounted(): boolean {
  return existsSync(`${TRACEFS}/events/net`) || existsSync(`${DEBUGFS_TRACING}/events/net`);
}

function effectiveCaps(): bigint {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'));
    return m ? BigInt(`0x${m[1]}`) : 0n;
  } catch {
    return 0n;
  }
}

function run(command: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 10_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') resolve({ ok: false, out: '' });
      else if (err) resolve({ ok: false, out: String(stderr || err.message).trim() });
      else resolve({ ok: true, out: String(stdout).trim() });
    });
  });
}

/** Gathers the facts; with `mountTracefs`, mounts a missing tracefs first (needs CAP_SYS_ADMIN). */
export async function readEbpfFacts(options: {
  bpftrace: string;
  mountTracefs: boolean;
}): Promise<EbpfFacts> {
  const version = await run(options.bpftrace, ['--version']);
  const facts: EbpfFacts = {
    bpftraceVersion: version.ok ? version.out : version.out ? `bpftrace (${version.out})` : null,
    bpftraceCommand: options.bpftrace,
    euid: process.geteuid?.() ?? -1,
    capEff: effectiveCaps(),
    tracefs: tracefsMounted(),
    btf: existsSync(KERNEL_BTF),
  };
  if (!facts.tracefs && options.mountTracefs && facts.euid === 0) {
    const mounted = await run('mount', ['-t', 'tracefs', 'nodev', TRACEFS]);
    facts.tracefs = tracefsMounted();
    if (!facts.tracefs) facts.tracefsMountError = mounted.out || 'no error, but no tracepoints';
  }
  return facts;
}
