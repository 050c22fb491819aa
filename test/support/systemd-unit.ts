/**
 * The shipped agent unit as data: its directives, and systemd's own
 * expansion of system call groups (systemd-analyze, the systemd package).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const AGENT_UNIT = join(import.meta.dirname, '../../agent/packaging/udpwatch-agent.service');

/** Runs systemd-analyze; a missing binary fails with the package to install. */
export function systemdAnalyze(args: string[]): string {
  try {
    return execFileSync('systemd-analyze', args, { encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        'systemd-analyze is missing: install the systemd package (Debian: apt-get install systemd; .ci/run does) to measure the agent unit',
      );
    }
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`systemd-analyze ${args.join(' ')} failed: ${e.stderr || e.stdout || err}`);
  }
}

/** Every value a directive is given in the unit, in order (repeated lines accumulate). */
export function directive(name: string, unit = AGENT_UNIT): string[] {
  return readFileSync(unit, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${name}=`))
    .map((l) => l.slice(name.length + 1).trim());
}

/** A directive's values split into words. */
export const words = (name: string, unit = AGENT_UNIT) =>
  directive(name, unit).flatMap((v) => v.split(/\s+/).filter(Boolean));

/** The system calls a filter group (or one call's name) stands for, nested groups expanded. */
export function expandGroup(group: string, seen = new Set<string>()): Set<string> {
  const calls = new Set<string>();
  if (!group.startsWith('@')) return new Set([group]);
  if (seen.has(group)) return calls;
  seen.add(group);
  const out = systemdAnalyze(['syscall-filter', '--no-pager', group]);
  for (const line of out.split('\n')) {
    const name = line.trim();
    if (!/^@?[a-z0-9_-]+$/.test(name) || name === group) continue;
    if (name.startsWith('@')) for (const c of expandGroup(name, seen)) calls.add(c);
    else calls.add(name);
  }
  return calls;
}

/** The calls the unit's SystemCallFilter lines allow: allow lists united, then `~` lists removed. */
export function allowedSyscalls(unit = AGENT_UNIT): Set<string> {
  const allowed = new Set<string>();
  const denied = new Set<string>();
  for (const value of directive('SystemCallFilter', unit)) {
    const deny = value.startsWith('~');
    for (const item of value.replace(/^~/, '').split(/\s+/).filter(Boolean)) {
      for (const call of expandGroup(item)) (deny ? denied : allowed).add(call);
    }
  }
  for (const call of denied) allowed.delete(call);
  return allowed;
}
