/**
 * Runs the host agent and, in demo mode, a hooked demo daemon as child
 * processes of `npm start`, so the whole pipeline is one process tree that
 * stops together.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AGENT_NODE_FLAGS, agentEnv } from '../agent/process-settings.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The hook a Node daemon preloads with `--import`. */
export const HOOK_PATH = join(REPO, 'agent', 'hook', 'register.mjs');
const AGENT_BIN = join(REPO, 'bin', 'udpwatch-agent.js');
const DEMO_DAEMON = join(REPO, 'local', 'demo', 'echo-daemon.mjs');

/** A child process the local pipeline started, with a way to stop it. */
export interface LocalChild {
  pid: number | undefined;
  stop(): Promise<void>;
}

function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** One line reader per output stream of a child; forwarding and waiting both listen to them. */
function lineReaders(child: ChildProcess, onLine: (line: string) => void): Interface[] {
  return [child.stdout, child.stderr]
    .filter((s) => s !== null)
    .map((s) => createInterface({ input: s! }).on('line', onLine));
}

export interface LocalAgentOptions {
  kinesisEndpoint: string;
  streamName: string;
  /** Where the agent keeps its id, seq reservation and spool. */
  stateDir: string;
  hookSocket: string;
  /** Service rules for the agent's config file. */
  services?: { name: string; port?: number; process?: string; timeoutSeconds?: number }[];
  intervalSeconds?: number;
  /**
   * How often pending deltas are sealed (default 1 s): locally a block costs
   * nothing, and clients show up within a second, not at the minute's end.
   */
  sealIntervalSeconds?: number;
  onLine?: (line: string) => void;
}

/** Starts `udpwatch-agent run` against the local Kinesis endpoint. */
export async function startLocalAgent(options: LocalAgentOptions): Promise<LocalChild> {
  mkdirSync(options.stateDir, { recursive: true });
  // Only this user writes the hook socket's directory; the agent refuses one others could write.
  mkdirSync(dirname(options.hookSocket), { recursive: true, mode: 0o750 });
  const configFile = join(options.stateDir, 'local-agent.json');
  writeFileSync(
    configFile,
    `${JSON.stringify(
      {
        services: options.services ?? [],
        heartbeatSeconds: 10,
        sealIntervalSeconds: options.sealIntervalSeconds ?? 1,
        // Sealed every second here, so eBPF drains as often (the default, 5 s, saves CPU
        // where parts are sealed a minute at a time).
        ebpf: { drainSeconds: 1 },
        // Daemons of this user's primary group may report (root's in CI): the
        // socket is 0660 for it, as the systemd unit's is for udpwatch-hook.
        hookSocketGroup: String(process.getgid?.() ?? 0),
      },
      null,
      2,
    )}\n`,
  );
  const child = spawn(
    process.execPath,
    [
      ...AGENT_NODE_FLAGS,
      AGENT_BIN,
      'run',
      '--endpoint',
      options.kinesisEndpoint,
      '--stream',
      options.streamName,
      '--state-dir',
      options.stateDir,
      '--hook-socket',
      options.hookSocket,
      '--config',
      configFile,
      '--interval',
      String(options.intervalSeconds ?? 1),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: agentEnv() },
  );
  const readers = lineReaders(child, options.onLine ?? (() => {}));
  await waitForLine(child, readers, /started:/, 30_000, 'udpwatch-agent');
  return { pid: child.pid, stop: () => stopChild(child) };
}

/** Starts the demo echo daemon under the dgram hook. */
export async function startDemoDaemon(options: {
  host: string;
  port: number;
  hookSocket: string;
  onLine?: (line: string) => void;
}): Promise<LocalChild> {
  const child = spawn(
    process.execPath,
    ['--import', HOOK_PATH, DEMO_DAEMON, options.host, String(options.port)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, UDPWATCH_HOOK_SOCKET: options.hookSocket },
    },
  );
  const readers = lineReaders(child, options.onLine ?? (() => {}));
  await waitForLine(child, readers, /"listening"/, 10_000, 'demo daemon');
  return { pid: child.pid, stop: () => stopChild(child) };
}

/** Resolves when a line matching `pattern` comes out of `readers`; fails (killing the child) on exit or timeout. */
function waitForLine(
  child: ChildProcess,
  readers: readonly Interface[],
  pattern: RegExp,
  timeoutMs: number,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const tail: string[] = [];
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      if (pattern.test(line)) done();
    };
    for (const r of readers) r.on('line', onLine);
    const onExit = (code: number | null) =>
      fail(new Error(`${what} exited (code ${code}) before it was ready:\n${tail.join('\n')}`));
    const timer = setTimeout(
      () => fail(new Error(`${what} was not ready after ${timeoutMs} ms:\n${tail.join('\n')}`)),
      timeoutMs,
    );
    child.once('exit', onExit);
    function cleanup() {
      clearTimeout(timer);
      child.off('exit', onExit);
      for (const r of readers) r.off('line', onLine);
    }
    function done() {
      cleanup();
      resolve();
    }
    function fail(err: Error) {
      cleanup();
      child.kill('SIGKILL');
      reject(err);
    }
  });
}
