/**
 * Service names of real processes, read through /proc the way the agent
 * does: a daemon in a systemd-like cgroup v2 directory made here is named
 * after that unit, python3 and node scripts after the script, one process
 * with two ports gets the port added, and a configured name still wins.
 *
 * The script daemons run in a cgroup made here without a unit name, so the
 * test's own cgroup (a CI runner's service, say) cannot name them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlowTable } from '../../../agent/flow-table.js';
import type { ListeningSocket } from '../../../agent/observation.js';
import { createProcSource } from '../../../agent/proc-source.js';
import { createPidNamer } from '../../../agent/process-identity.js';
import { createServiceNamer } from '../../../agent/service-names.js';

const UNIT = `udpwatch-test-dns-${process.pid}.service`;
const PLAIN = `udpwatch-test-scripts-${process.pid}`;

/** The cgroup v2 mount point, from /proc/self/mounts (/sys/fs/cgroup, or .../unified on hybrid hosts). */
function cgroup2Root(): string | undefined {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, where, type] = line.split(' ');
    if (type === 'cgroup2' && where) return where;
  }
  return undefined;
}

/** Why a cgroup v2 directory cannot be made and joined here, or null when it can. */
async function cgroupProblem(root: string | undefined): Promise<string | null> {
  if (!root) return 'no cgroup2 file system is mounted (see /proc/self/mounts)';
  const probe = join(root, `udpwatch-probe-${process.pid}`);
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    mkdirSync(probe);
    writeFileSync(join(probe, 'cgroup.procs'), String(sleeper.pid));
    return null;
  } catch (err) {
    return `cannot create and join a cgroup under ${root}: ${(err as Error).message} (run as root with a writable cgroup2 mount)`;
  } finally {
    await new Promise<void>((resolve) => {
      sleeper.once('exit', () => resolve());
      sleeper.kill('SIGKILL');
    });
    try {
      rmdirSync(probe);
    } catch {
      // not created
    }
  }
}

const root = cgroup2Root();
const dir = mkdtempSync(join(tmpdir(), 'uw-names-'));
const children: ChildProcess[] = [];
const made: string[] = [];
let listeners: ListeningSocket[] = [];
const ports: Record<string, number[]> = {};

/** Starts a daemon that prints its bound ports as JSON, in the given cgroup directory. */
async function daemon(
  key: string,
  cmd: string,
  args: string[],
  cgroup: string,
): Promise<ChildProcess> {
  const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${key}: no ports in 10 s`)), 10_000);
    createInterface({ input: child.stdout! }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    child.once('exit', (code) => reject(new Error(`${key} exited ${code}`)));
  });
  ports[key] = JSON.parse(line) as number[];
  writeFileSync(join(cgroup, 'cgroup.procs'), String(child.pid));
  return child;
}

const PY = `
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(json.dumps([s.getsockname()[1]]), flush=True)
time.sleep(120)
`;
const NODE = (n: number) => `
import dgram from 'node:dgram';
const bound = [];
for (let i = 0; i < ${n}; i++) {
  const s = dgram.createSocket('udp4');
  await new Promise((r) => s.bind(0, '127.0.0.1', r));
  bound.push(s.address().port);
}
process.stdout.write(JSON.stringify(bound) + '\\n');
setTimeout(() => {}, 120_000);
`;

describe('service names of real processes', () => {
  beforeAll(async () => {
    const problem = await cgroupProblem(root);
    // Failing, not skipping: a CI host that cannot do this must say so.
    if (problem) throw new Error(`service-name e2e needs cgroup v2: ${problem}`);
    const unit = join(root!, UNIT);
    const plain = join(root!, PLAIN);
    for (const d of [unit, plain]) {
      mkdirSync(d);
      made.push(d);
    }
    writeFileSync(join(dir, 'udpwatch_probe_resolver.py'), PY);
    writeFileSync(join(dir, 'udpwatch-probe-dns.mjs'), NODE(1));
    writeFileSync(join(dir, 'udpwatch-probe-relay.mjs'), NODE(2));
    writeFileSync(join(dir, 'unit.py'), PY);
    await daemon('unit', 'python3', [join(dir, 'unit.py')], unit);
    await daemon('python', 'python3', [join(dir, 'udpwatch_probe_resolver.py')], plain);
    await daemon('node', process.execPath, [join(dir, 'udpwatch-probe-dns.mjs')], plain);
    await daemon('relay', process.execPath, [join(dir, 'udpwatch-probe-relay.mjs')], plain);
    const proc = createProcSource();
    await proc.poll();
    const all = Object.values(ports).flat();
    listeners = proc.listeners().filter((l) => all.includes(l.localPort));
  }, 30_000);

  afterAll(async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    for (const d of made) {
      try {
        rmdirSync(d);
      } catch (err) {
        console.warn(`could not remove ${d}: ${(err as Error).message}`);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const nameOf = (table: FlowTable, port: number) => {
    const l = listeners.find((x) => x.localPort === port);
    expect(l, `port ${port} listed by /proc`).toBeDefined();
    return table.serviceOf(l!);
  };

  it('names each daemon as a person knows it, the port only where one owner has two', () => {
    const table = new FlowTable({ serviceFor: createServiceNamer([]), maxFlows: 100 });
    table.setListeners(listeners);
    expect(listeners).toHaveLength(5);
    expect(nameOf(table, ports.unit![0]!)).toBe(UNIT);
    expect(nameOf(table, ports.python![0]!)).toBe('udpwatch_probe_resolver');
    expect(nameOf(table, ports.node![0]!)).toBe('udpwatch-probe-dns');
    const [a, b] = ports.relay!;
    expect([nameOf(table, a!), nameOf(table, b!)]).toEqual([
      `udpwatch-probe-relay:${a}`,
      `udpwatch-probe-relay:${b}`,
    ]);
    // Named alike by pid alone, as a hooked daemon's first report is.
    expect(createPidNamer()(children[0]!.pid!)).toBe(UNIT);
    expect(createPidNamer()(children[3]!.pid!)).toBe('udpwatch-probe-relay');
    // The owner is on each listener too, with its process name unchanged.
    const unit = listeners.find((l) => l.localPort === ports.unit![0])!;
    expect(unit).toMatchObject({ process: 'python3', pid: children[0]!.pid, name: UNIT });
  });

  it('lets a configured name win over every default', () => {
    const table = new FlowTable({
      serviceFor: createServiceNamer([
        { name: 'resolver', port: ports.unit![0]! },
        { name: 'relays', process: 'node' },
      ]),
      maxFlows: 100,
    });
    table.setListeners(listeners);
    expect(nameOf(table, ports.unit![0]!)).toBe('resolver');
    expect(nameOf(table, ports.relay![1]!)).toBe('relays');
    expect(nameOf(table, ports.python![0]!)).toBe('udpwatch_probe_resolver');
  });
});
