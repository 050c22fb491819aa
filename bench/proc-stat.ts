/**
 * What the benchmarks read of a process in /proc: CPU time and resident
 * memory, and bpftrace children of this process.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Fields after the parenthesised comm of /proc/<pid>/stat (field 3 is index 0). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat (clock ticks of 10 ms). */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  // utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * User-mode CPU seconds of a process: without the softirq packet processing the kernel
 * charges to whichever process it interrupts.
 */
export function userSeconds(pid: number): number {
  return Number(statFields(pid)[11]) / 100;
}

/** Resident memory of a process in MiB (VmRSS of /proc/<pid>/status). */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(m[1]) / 1024;
}

/** Pids of this process's children whose comm is `comm`. */
export function childrenNamed(comm: string, parent: number = process.pid): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (name === comm && Number(statFields(Number(entry))[1]) === parent) out.push(Number(entry));
    } catch {
      // Exited while listing.
    }
  }
  return out;
}

/** Kernel run time and runs summed over a process's BPF programs (fdinfo; counted only while kernel.bpf_stats_enabled is 1). */
export function bpfProgramRuns(pid: number): { runTimeNs: number; runs: number; maxRuns: number } {
  let runTimeNs = 0;
  let runs = 0;
  let maxRuns = 0;
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    if (!info.includes('prog_type:')) continue;
    const time = /^run_time_ns:\s+(\d+)$/m.exec(info);
    const count = /^run_cnt:\s+(\d+)$/m.exec(info);
    if (!time || !count) continue;
    runTimeNs += Number(time[1]);
    runs += Number(count[1]);
    maxRuns = Math.max(maxRuns, Number(count[1]));
  }
  return { runTimeNs, runs, maxRuns };
}
