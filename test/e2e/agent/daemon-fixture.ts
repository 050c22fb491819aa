/**
 * Test fixtures for the agent's end-to-end suites: a hooked UDP echo daemon
 * in a child process, and UDP clients that wait for every echo.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const HOOK = './agent/hook/register.mjs';
const SERVER = fileURLToPath(new URL('./fixtures/echo-server.mjs', import.meta.url));

export interface Daemon {
  child: ChildProcess;
  v4: number;
  v6: number;
  stop(): Promise<void>;
}

/** Starts the echo server under the hook, reporting to `socketPath`; `env` adds hook settings. */
export async function startHookedDaemon(
  socketPath: string,
  intervalMs = 100,
  env: Record<string, string> = {},
): Promise<Daemon> {
  const child = spawn(process.execPath, ['--import', HOOK, SERVER], {
    cwd: REPO,
    env: {
      ...process.env,
      UDPWATCH_HOOK_SOCKET: socketPath,
      UDPWATCH_HOOK_INTERVAL_MS: String(intervalMs),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ports = await new Promise<{ v4: number; v6: number }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('echo daemon did not start in 10 s')), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(0, nl)));
      }
    });
    child.once('exit', (code) => reject(new Error(`echo daemon exited with ${code}`)));
  });
  return {
    child,
    ...ports,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}

/** A client socket bound to its own port. */
export interface Client {
  socket: dgram.Socket;
  address: string;
  port: number;
  /** Sends each payload and waits for its echo; resolves with the number of echoes. */
  echo(serverPort: number, sizes: number[]): Promise<number>;
  close(): void;
}

/** Opens a client on 127.0.0.1 (family 4) or ::1 (family 6). */
export async function openClient(family: 4 | 6): Promise<Client> {
  const address = family === 4 ? '127.0.0.1' : '::1';
  const socket = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
  await new Promise<void>((r) => socket.bind(0, address, () => r()));
  const port = socket.address().port;
  const echo = async (serverPort: number, sizes: number[]): Promise<number> => {
    let got = 0;
    for (const size of sizes) {
      const ok = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          socket.off('message', onMessage);
          resolve(false);
        }, 2_000);
        const onMessage = (msg: Buffer) => {
          if (msg.length !== size) return;
          clearTimeout(timer);
          socket.off('message', onMessage);
          resolve(true);
        };
        socket.on('message', onMessage);
        socket.send(Buffer.alloc(size, 0x61), serverPort, address);
      });
      if (ok) got++;
    }
    return got;
  };
  return { socket, address, port, echo, close: () => socket.close() };
}

/** Polls `check` every 50 ms until it is true or `timeoutMs` passes. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

/** A running `udpwatch-agent run` process and what it printed to stderr so far. */
export interface AgentProcess {
  child: ChildProcess;
  stderr: () => string;
}

/** Where an agent process ships to and keeps its state. */
export interface AgentRunOptions {
  stream: string;
  endpoint: string;
  stateDir: string;
  hookSocket: string;
  configPath: string;
  /** More environment for the agent (test-only switches). */
  env?: Record<string, string>;
}

/** Starts `udpwatch-agent run` with a 0.2 s interval and no AWS credentials of the host. */
export function startAgentProcess(o: AgentRunOptions): AgentProcess {
  const child = spawn(
    process.execPath,
    [
      'bin/udpwatch-agent.js',
      'run',
      '--stream',
      o.stream,
      '--endpoint',
      o.endpoint,
      '--state-dir',
      o.stateDir,
      '--hook-socket',
      o.hookSocket,
      '--interval',
      '0.2',
      '--config',
      o.configPath,
    ],
    {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_PROFILE: '', ...o.env },
    },
  );
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d;
  });
  return { child, stderr: () => err };
}

/** Resolves with a child's exit code once it has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** A client sending one datagram every `everyMs` until stopped; counts sends (with times) and echoes. */
export interface Traffic {
  port: number;
  sentAt: number[];
  echoes: () => number;
  stop(): Promise<void>;
}

export async function startTraffic(serverPort: number, everyMs = 5): Promise<Traffic> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  let echoes = 0;
  socket.on('message', () => {
    echoes++;
  });
  const sentAt: number[] = [];
  const payload = Buffer.alloc(32, 0x62);
  const timer = setInterval(() => {
    socket.send(payload, serverPort, '127.0.0.1');
    sentAt.push(Date.now());
  }, everyMs);
  return {
    port: socket.address().port,
    sentAt,
    echoes: () => echoes,
    stop: async () => {
      clearInterval(timer);
      // The last echoes come back within a few ms on loopback.
      await waitFor(() => echoes >= sentAt.length, 2_000);
      socket.close();
    },
  };
}
