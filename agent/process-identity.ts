/**
 * A name a person recognizes for the process that owns a socket: its systemd
 * unit (`dnsmasq.service`) or container (`docker-3f4e5a6b7c8d`) from
 * /proc/<pid>/cgroup, else for an interpreter (node, python, ruby, java, perl,
 * deno, bun) the script or module it runs, from /proc/<pid>/cmdline, else the
 * process name. Everything read is bounded and sanitized: a command line can
 * be megabytes long and hold any bytes.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** Bytes read of /proc/<pid>/cmdline and /proc/<pid>/cgroup: enough for every name used here. */
export const MAX_PROC_TEXT_BYTES = 4096;
/** Longest name this module returns. */
const MAX_NAME = 100;

/** Reads at most `max` bytes of a file as UTF-8 text; '' when it cannot be read. */
export function readBounded(path: string, max: number = MAX_PROC_TEXT_BYTES): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const buf = Buffer.alloc(max);
    let n = 0;
    while (n < max) {
      const got = readSync(fd, buf, n, max - n, null);
      if (got === 0) break;
      n += got;
    }
    return buf.toString('utf8', 0, n);
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}

/** Keeps a name printable: controls and spaces become `_`, bounded length; '' stays ''. */
export function cleanName(text: string): string {
  return text
    .replace(/[\s\u0000-\u001f\u007f-\u009f]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, MAX_NAME);
}

const CONTAINER_SCOPES: Array<[RegExp, string]> = [
  [/^docker-([0-9a-f]{12,64})\.scope$/, 'docker'],
  [/^cri-containerd-([0-9a-f]{12,64})\.scope$/, 'containerd'],
  [/^crio-([0-9a-f]{12,64})\.scope$/, 'crio'],
  [/^libpod-([0-9a-f]{12,64})\.scope$/, 'podman'],
];
const BARE_ID = /^[0-9a-f]{64}$/;

/** The cgroup path of the unified hierarchy (`0::`), else systemd's v1 one (`name=systemd`). */
export function cgroupPath(text: string): string | undefined {
  let v1: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('0::')) return line.slice(3);
    const m = /^\d+:name=systemd:(.*)$/.exec(line);
    if (m) v1 = m[1];
  }
  return v1;
}

/**
 * The unit or container a cgroup path names: the deepest `.service` (not a
 * user manager, `user@1000.service`) or container scope. A container wins over
 * the runtime's own service above it because it is deeper.
 */
export function nameFromCgroup(path: string): string | undefined {
  const parts = path.split('/').filter((p) => p.length > 0);
  for (let i = parts.length - 1; i >= 0; i--) {
    const p = parts[i]!;
    for (const [re, runtime] of CONTAINER_SCOPES) {
      const m = re.exec(p);
      if (m) return `${runtime}-${m[1]!.slice(0, 12)}`;
    }
    // cgroupfs-driver layout: /docker/<64 hex>, /kubepods/.../<64 hex>.
    if (BARE_ID.test(p) && i > 0) return `container-${p.slice(0, 12)}`;
    if (p.endsWith('.service') && !/^user@\d+\.service$/.test(p)) return p;
  }
  return undefined;
}

const INTERPRETER = /^(node|nodejs|python[\d.]*|ruby[\d.]*|java|perl[\d.]*|deno|bun)$/;
/** Options of each interpreter that take the next argument as their value. */
const VALUE_OPTIONS: Record<string, ReadonlySet<string>> = {
  node: new Set([
    '-r',
    '--require',
    '--import',
    '--loader',
    '--experimental-loader',
    '-C',
    '--conditions',
    '--title',
    '--env-file',
    '--input-type',
  ]),
  python: new Set(['-W', '-X', '-Q']),
  ruby: new Set(['-I', '-r', '-E', '-C']),
  perl: new Set(['-I', '-M', '-m']),
  java: new Set(['-cp', '-classpath', '--class-path', '-p', '--module-path', '--add-modules']),
  deno: new Set(['--config', '-c', '--import-map', '--allow-read', '--location']),
  bun: new Set(['--config', '-r', '--preload', '--cwd']),
};
/** Options after which no script follows (code on the command line). */
const INLINE_CODE = new Set(['-e', '--eval', '-p', '--print', '-c']);
/** File names too generic to tell services apart: the directory names the service. */
const GENERIC = /^(index|main|app|server|start|run|__main__)$/;

function family(interpreter: string): string {
  if (interpreter.startsWith('python')) return 'python';
  if (interpreter.startsWith('ruby')) return 'ruby';
  if (interpreter.startsWith('perl')) return 'perl';
  if (interpreter === 'nodejs') return 'node';
  return interpreter;
}

/** A script path as a name: its file name less the extension, or its directory's for index.js and friends. */
function scriptName(path: string): string {
  const parts = path.split('/').filter((p) => p.length > 0);
  const file = parts.at(-1) ?? '';
  const stem = file.replace(/\.(m?js|cjs|ts|mts|py|rb|pl|jar)$/, '');
  if (GENERIC.test(stem) && parts.length > 1) return parts.at(-2)!;
  return stem;
}

/**
 * The script or module an interpreter runs, from its arguments: `python3 -m
 * http.server` -> `http.server`, `node /srv/app/dns.mjs` -> `dns`, `java -jar
 * /opt/x/relay.jar` -> `relay`, `java com.example.Dns` -> `Dns`; undefined for
 * anything else (not an interpreter, inline code, a REPL).
 */
export function scriptFromArgs(args: readonly string[]): string | undefined {
  if (args.length === 0) return undefined;
  const interpreter = (args[0]!.split('/').at(-1) ?? '').toLowerCase();
  if (!INTERPRETER.test(interpreter)) return undefined;
  const kind = family(interpreter);
  const takesValue = VALUE_OPTIONS[kind] ?? new Set<string>();
  let i = 1;
  // deno run x.ts, bun run x.ts: the subcommand is not the script.
  if ((kind === 'deno' || kind === 'bun') && /^(run|serve|x)$/.test(args[1] ?? '')) i = 2;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    if (kind === 'python' && a === '-m') return cleanName(args[i + 1] ?? '') || undefined;
    if (kind === 'java' && (a === '-jar' || a === '--jar'))
      return cleanName(scriptName(args[i + 1] ?? '')) || undefined;
    if (kind === 'java' && (a === '-m' || a === '--module'))
      return cleanName((args[i + 1] ?? '').split('/')[0]!) || undefined;
    if (takesValue.has(a)) {
      i++;
      continue;
    }
    if (INLINE_CODE.has(a) && kind !== 'java') return undefined;
  }
  const script = args[i];
  if (script === undefined || script === '-' || script === '') return undefined;
  if (kind === 'java') return cleanName(script.split('.').at(-1)!) || undefined;
  return cleanName(scriptName(script)) || undefined;
}

/** Splits /proc/<pid>/cmdline text (NUL-separated, possibly cut short) into arguments. */
export function splitCmdline(raw: string): string[] {
  return raw.split('\0').filter((a) => a.length > 0);
}

/** The recognizable name of a process from its cgroup text, arguments and comm (see the top). */
export function processName(cgroupText: string, args: readonly string[], comm: string): string {
  const path = cgroupPath(cgroupText);
  const fromCgroup = path === undefined ? undefined : nameFromCgroup(path);
  if (fromCgroup) return cleanName(fromCgroup);
  return scriptFromArgs(args) ?? (cleanName(comm) || 'unknown');
}

/** Reads the recognizable name of one process under `procRoot`; undefined when it is gone. */
export function readProcessName(pid: number, procRoot = '/proc'): string | undefined {
  const rawComm = readBounded(`${procRoot}/${pid}/comm`, 64);
  if (rawComm === '') return undefined;
  const comm = rawComm.endsWith('\n') ? rawComm.slice(0, -1) : rawComm;
  const args = splitCmdline(readBounded(`${procRoot}/${pid}/cmdline`));
  return processName(readBounded(`${procRoot}/${pid}/cgroup`), args, comm);
}

/**
 * A cached readProcessName for processes that report before /proc listed
 * their socket (a hooked daemon's first seconds). Entries last `ttlMs`, so a
 * reused pid is named afresh; at most `max` are held.
 */
export function createPidNamer(
  opts: { procRoot?: string; ttlMs?: number; max?: number; now?: () => number } = {},
): (pid: number) => string | undefined {
  const ttl = opts.ttlMs ?? 60_000;
  const max = opts.max ?? 4096;
  const now = opts.now ?? Date.now;
  const cache = new Map<number, { name: string | undefined; at: number }>();
  return (pid) => {
    const t = now();
    const hit = cache.get(pid);
    if (hit && t - hit.at < ttl) return hit.name;
    const name = readProcessName(pid, opts.procRoot);
    if (cache.size >= max) cache.clear();
    cache.set(pid, { name, at: t });
    return name;
  };
}
