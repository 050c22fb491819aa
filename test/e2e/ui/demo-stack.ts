/**
 * What the web view suites run against: `npm start -- --demo` as a child
 * process on free ports (the demo daemon and its clients on 127.0.0.2-5), and
 * headless Chromium from Debian driven by playwright-core.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** Debian's chromium package; .ci/run installs it. */
export const CHROMIUM = '/usr/bin/chromium';

/** Polls `check` every 100 ms until it holds, for at most `ms`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

async function freeTcpPorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = createServer();
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      return s;
    }),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(r));
  return port;
}

/** A running `npm start -- --demo`. */
export interface DemoStack {
  apiUrl: string;
  /** The stack's DynamoDB emulator. */
  dynamodbEndpoint: string;
  child: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

/** Starts `npm start -- --demo` (with `extraArgs`) and resolves once it says it is running. */
export async function startDemoStack(extraArgs: string[] = []): Promise<DemoStack> {
  const dir = mkdtempSync(join(tmpdir(), 'uw-ui-'));
  const [kinesis, dynamodb, api] = await freeTcpPorts(3);
  const demoPort = await freeUdpPort();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'local/start.ts',
      '--demo',
      ...['--kinesis-port', String(kinesis), '--dynamodb-port', String(dynamodb)],
      ...['--api-port', String(api), '--demo-port', String(demoPort)],
      ...['--agent-state-dir', join(dir, 'agent'), '--hook-socket', join(dir, 'hook.sock')],
      ...extraArgs,
    ],
    { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGINT');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until(
      'npm start to be ready',
      () => {
        if (child.exitCode !== null) throw new Error(`npm start exited:\n${out}`);
        return out.includes('Ctrl-C stops everything');
      },
      90_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    apiUrl: `http://127.0.0.1:${api}`,
    dynamodbEndpoint: `http://127.0.0.1:${dynamodb}`,
    child,
    output: () => out,
    stop,
  };
}

/** Headless Chromium (no sandbox: the suite runs as root). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}
