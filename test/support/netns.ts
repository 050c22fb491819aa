/**
 * Network namespaces for tests: hosts and routers joined by veth pairs, with
 * documentation-range addresses only, and a Unix-socket bridge so a process in
 * a namespace can reach a service on the root namespace's loopback without any
 * traffic leaving loopback.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs `ip` with arguments, throwing with its stderr on failure. */
export async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args);
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** Runs a command inside a namespace and returns stdout. */
export async function nsExec(ns: string, cmd: string, ...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', ['netns', 'exec', ns, cmd, ...args], {
      maxBuffer: 64 << 20,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`[${ns}] ${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** Starts a long-running process inside a namespace. */
export function nsSpawn(
  ns: string,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Whether this process may create network namespaces (root with CAP_SYS_ADMIN). */
export async function canUseNamespaces(): Promise<boolean> {
  const probe = `uwprobe${process.pid}`;
  try {
    await ip('netns', 'add', probe);
    await ip('netns', 'del', probe);
    return true;
  } catch {
    return false;
  }
}

/** A set of namespaces owned by one test file, deleted together. */
export class NamespaceLab {
  readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly servers: net.Server[] = [];
  private vethCount = 0;

  constructor(private readonly prefix: string) {}

  /** Creates a namespace with loopback up; the name gets the prefix and pid. */
  async add(name: string): Promise<string> {
    const ns = `${this.prefix}${process.pid}${name}`;
    await ip('netns', 'add', ns);
    this.namespaces.push(ns);
    await nsExec(ns, 'ip', 'link', 'set', 'lo', 'up');
    return ns;
  }

  /** Joins two namespaces with a veth pair and gives each side an address (CIDR). */
  async link(
    a: string,
    aAddr: string,
    b: string,
    bAddr: string,
  ): Promise<{ aIf: string; bIf: string }> {
    const n = this.vethCount++;
    const aIf = `v${process.pid % 100000}a${n}`;
    const bIf = `v${process.pid % 100000}b${n}`;
    await ip('link', 'add', aIf, 'netns', a, 'type', 'veth', 'peer', 'name', bIf, 'netns', b);
    await nsExec(a, 'ip', 'addr', 'add', aAddr, 'dev', aIf);
    await nsExec(b, 'ip', 'addr', 'add', bAddr, 'dev', bIf);
    await nsExec(a, 'ip', 'link', 'set', aIf, 'up');
    await nsExec(b, 'ip', 'link', 'set', bIf, 'up');
    return { aIf, bIf };
  }

  /** Tracks a child process so cleanup() kills it. */
  track(child: ChildProcess): ChildProcess {
    this.children.push(child);
    return child;
  }

  /**
   * Makes `127.0.0.1:<nsPort>` inside `ns` reach `127.0.0.1:<hostPort>` of the
   * root namespace, through a Unix socket (socat inside, a Node pipe outside).
   */
  async bridgeLoopback(ns: string, nsPort: number, hostPort: number): Promise<void> {
    const path = `/tmp/${ns}-${nsPort}.sock`;
    rmSync(path, { force: true });
    const server = net.createServer((inbound) => {
      const outbound = net.connect(hostPort, '127.0.0.1');
      inbound.pipe(outbound).pipe(inbound);
      const close = () => {
        inbound.destroy();
        outbound.destroy();
      };
      inbound.on('error', close);
      outbound.on('error', close);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    this.servers.push(server);
    this.track(
      nsSpawn(ns, 'socat', [
        `TCP-LISTEN:${nsPort},bind=127.0.0.1,reuseaddr,fork`,
        `UNIX-CONNECT:${path}`,
      ]),
    );
    // Wait until socat listens inside the namespace.
    for (let i = 0; i < 50; i++) {
      const out = await nsExec(ns, 'ss', '-Htln', `sport = :${nsPort}`);
      if (out.trim()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`bridge into ${ns}:${nsPort} did not come up`);
  }

  /** Kills tracked processes and deletes every namespace (veths go with them). */
  async cleanup(): Promise<void> {
    for (const c of this.children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const s of this.servers) s.close();
    for (const ns of this.namespaces.splice(0)) {
      await ip('netns', 'del', ns).catch(() => {});
    }
  }
}
