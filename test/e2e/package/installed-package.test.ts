/**
 * The package as a host gets it: `npm pack` (which builds dist/ at prepack),
 * then a global install of the tarball with production dependencies only into
 * a prefix of our own, and the installed commands run from that prefix's bin.
 */
import { execFile, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_MALLOC_ENV,
  AGENT_NODE_FLAGS,
  AGENT_SHEBANG,
} from '../../../agent/process-settings.js';
import type { Snapshot } from '../../../agent/snapshot.js';
import { nodeSupportNotice } from '../../../contract/node-support.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'uwpkg-'));
const prefix = join(dir, 'prefix');
const installed = join(prefix, 'lib', 'node_modules', 'udpwatch');
const bin = (name: string) => join(prefix, 'bin', name);

/**
 * The environment of a host's shell: this node on PATH (the bins start with
 * `#!/usr/bin/env node`), none of the npm_* variables of a surrounding `npm test`,
 * and not the variable the test runner sets to quiet the AWS SDK.
 */
const hostEnv: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([k]) => !k.startsWith('npm_') && k !== 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED',
  ),
);
hostEnv.PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;

/** Every file under `root`, relative to it. */
function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** Package directories (`name` or `@scope/name`) anywhere in a node_modules tree. */
function installedPackages(root: string): Set<string> {
  const names = new Set<string>();
  const walk = (modules: string) => {
    let entries: string[];
    try {
      entries = readdirSync(modules);
    } catch {
      return;
    }
    for (const entry of entries) {
      const scoped = entry.startsWith('@')
        ? readdirSync(join(modules, entry)).map((n) => `${entry}/${n}`)
        : [entry];
      for (const name of scoped) {
        names.add(name);
        walk(join(modules, name, 'node_modules'));
      }
    }
  };
  walk(root);
  return names;
}

beforeAll(async () => {
  await run('npm', ['pack', '--pack-destination', dir, '--silent'], {
    cwd: REPO,
    env: hostEnv,
  });
  const tarballs = readdirSync(dir).filter((f) => f.endsWith('.tgz'));
  expect(tarballs).toHaveLength(1);
  await run(
    'npm',
    [
      'install',
      '--global',
      '--omit=dev',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--prefix',
      prefix,
      join(dir, tarballs[0]!),
    ],
    { cwd: dir, env: hostEnv },
  );
}, 90_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the installed package', () => {
  it('ships the built programs, the web view, the eBPF program, the dgram hook and the systemd unit, and no sources', () => {
    const shipped = filesUnder(installed).filter((f) => !f.startsWith('node_modules/'));
    // npm adds these on its own when they exist.
    const always = /^(package\.json|README(\.md)?|LICENSE(\.txt)?)$/i;
    expect(shipped.filter((f) => !always.test(f)).sort()).toEqual([
      'agent/ebpf/udp-flows.bt',
      'agent/hook/register.d.mts',
      'agent/hook/register.mjs',
      'agent/packaging/udpwatch-agent.service',
      'dist/udpwatch-agent.js',
      'dist/udpwatch.js',
      'dist/ui/index.html',
    ]);
  });

  it('installs no build or development tools', () => {
    const packages = installedPackages(join(installed, 'node_modules'));
    expect(packages.has('zod')).toBe(true); // the tree is there
    for (const dev of ['tsx', 'esbuild', 'aws-cdk-lib', 'aws-cdk', 'typescript', 'vitest']) {
      expect(packages.has(dev), dev).toBe(false);
    }
    expect([...packages].filter((p) => p.startsWith('@esbuild/'))).toEqual([]);
  });

  it('starts the agent with its V8 settings, the CLI with none', () => {
    const firstLine = (f: string) => readFileSync(join(installed, f), 'utf8').split('\n')[0];
    // A node whose V8 no longer knew one of them would refuse to start the agent (--help below).
    expect(firstLine('dist/udpwatch-agent.js')).toBe(AGENT_SHEBANG);
    expect(firstLine('dist/udpwatch.js')).toBe('#!/usr/bin/env node');
  });

  it("hands the agent's first line's malloc settings and V8 flags to the node it starts", async () => {
    // The same first line over a script that prints what its process got.
    const script = join(dir, 'settings-probe.js');
    writeFileSync(
      script,
      `${AGENT_SHEBANG}\nconst e = process.env;\nconsole.log(JSON.stringify({ flags: process.execArgv, env: { MALLOC_MMAP_THRESHOLD_: e.MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_: e.MALLOC_TRIM_THRESHOLD_ } }));\n`,
    );
    chmodSync(script, 0o755);
    const { stdout } = await run(script, [], { env: hostEnv });
    expect(JSON.parse(stdout)).toEqual({ flags: [...AGENT_NODE_FLAGS], env: AGENT_MALLOC_ENV });
  });

  it('runs `udpwatch --help` and `udpwatch-agent --help` from the bin directory', async () => {
    const cli = await run(bin('udpwatch'), ['--help'], { env: hostEnv });
    expect(cli.stdout).toMatch(/^udpwatch: .*\n\nUsage: udpwatch <command>/);
    const agent = await run(bin('udpwatch-agent'), ['--help'], { env: hostEnv });
    expect(agent.stdout).toMatch(/^udpwatch-agent: .*\n\nUsage:\n {2}udpwatch-agent run/);
    expect(cli.stderr + agent.stderr).toBe('');
  });

  it('serves the shipped web view with `udpwatch ui` and forwards its API calls', async () => {
    // An API nobody listens on: the page is still served, its API calls answer 502 with why.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));
    const child = spawn(
      bin('udpwatch'),
      ['ui', '--port', '0', '--api', `http://127.0.0.1:${port}`],
      {
        env: hostEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      let out = '';
      child.stdout!.setEncoding('utf8');
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout!.on('data', (chunk: string) => {
          out += chunk;
          const m = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`udpwatch ui exited ${code}: ${out}`)));
      });
      const page = await fetch(url);
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('<title>udpwatch</title>');
      expect(html).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
      const api = await fetch(`${url}v1/services`);
      expect(api.status).toBe(502);
      expect(((await api.json()) as { detail: string }).detail).toContain(
        `127.0.0.1:${port}/v1/services: ECONNREFUSED`,
      );
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('lists a UDP socket this test opened in `udpwatch-agent snapshot --json`', async () => {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    try {
      const { port } = socket.address();
      const { stdout, stderr } = await run(bin('udpwatch-agent'), ['snapshot', '--json'], {
        env: hostEnv,
      });
      const snapshot = JSON.parse(stdout) as Snapshot;
      const mine = snapshot.sockets.filter((s) => s.localPort === port);
      expect(mine).toMatchObject([
        { family: 4, localIp: '127.0.0.1', state: 'UNCONN', pid: process.pid },
      ]);
      expect(stderr).toBe('');
    } finally {
      socket.close();
    }
  });

  it('resolves the dgram hook by its documented paths: --import of the file and the package subpath', async () => {
    // From a directory whose node_modules holds the package, as in a daemon's project.
    const { stdout } = await run(
      process.execPath,
      [
        '--import',
        join(installed, 'agent/hook/register.mjs'),
        '--input-type=module',
        '-e',
        "import { hookStats } from 'udpwatch/agent/hook/register.mjs'; console.log(JSON.stringify(hookStats()));",
      ],
      { cwd: join(prefix, 'lib'), env: { ...hostEnv, UDPWATCH_HOOK_SOCKET: join(dir, 'h.sock') } },
    );
    expect(JSON.parse(stdout)).toMatchObject({ socketPath: join(dir, 'h.sock'), droppedFlows: 0 });
  });

  it('starts `udpwatch-agent run` without the AWS SDK notice, with one line of its own on Node < 22', async () => {
    // A Kinesis endpoint nobody listens on: the agent creates its client, starts and spools.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));
    const child = spawn(
      bin('udpwatch-agent'),
      [
        'run',
        '--stream',
        'udpwatch-pkg-test',
        '--endpoint',
        `http://127.0.0.1:${port}`,
        '--state-dir',
        join(dir, 'state'),
        '--hook-socket',
        join(dir, 'agent.sock'),
        '--interval',
        '0.2',
      ],
      { env: hostEnv, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr!.setEncoding('utf8');
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // Past start-up and the first failed send: every client the agent makes exists.
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (chunk: string) => {
        err += chunk;
        if (/PutRecords failed/.test(err)) resolve();
      });
      exited.then((code) => reject(new Error(`agent exited ${code} before sending:\n${err}`)));
    }).finally(() => child.kill('SIGTERM'));
    expect(await exited).toBe(0);
    expect(err).toMatch(/udpwatch-agent: started: agent /);
    expect(err).not.toMatch(/NodeVersionSupportWarning|AWS SDK for JavaScript|Warning:/);
    const ours = nodeSupportNotice(process.version);
    const noticeLines = err.split('\n').filter((l) => l.includes('end-of-life'));
    expect(noticeLines).toEqual(ours === null ? [] : [expect.stringContaining(ours)]);
  });
});
