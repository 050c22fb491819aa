/**
 * Small helpers to run benchmark child processes that speak one JSON line on
 * stdout: a long-lived one that announces itself when ready, and a one-shot
 * one whose single line is its result.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A running child and the JSON line it printed when ready. */
export interface ReadyChild<T> {
  child: ChildProcess;
  ready: T;
  /** Ends the child (closing stdin, then SIGKILL if it lingers) and waits for it. */
  stop(): Promise<void>;
}

function firstJsonLine<T>(child: ChildProcess, what: string, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what}: no output within ${timeoutMs} ms; stderr: ${stderr.trim()}`));
    }, timeoutMs);
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line) as T);
      } catch {
        reject(
          new Error(`${what}: expected a JSON line, got ${JSON.stringify(line.slice(0, 200))}`),
        );
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`${what}: exited (${code ?? signal}) before output; stderr: ${stderr.trim()}`),
      );
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${what}: ${err.message}`));
    });
  });
}

/** Spawns a child that prints one JSON line once ready, and keeps it running. */
export async function spawnReady<T>(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ReadyChild<T>> {
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const what = `${command} ${args.join(' ')}`;
  const ready = await firstJsonLine<T>(child, what, options.timeoutMs ?? 15_000);
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), 3_000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.stdin?.end();
      child.kill('SIGTERM');
    });
  return { child, ready, stop };
}

/** Runs a child to completion and returns the last JSON line it printed. */
export function runForJson<T>(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<T> {
  const what = `${command} ${args.join(' ')}`;
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise<T>((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-2000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${what}: ${e.message}`));
    });
    // 'close' comes after stdout is fully read, unlike 'exit'.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0) {
        reject(new Error(`${what}: exited (${code ?? signal}); stderr: ${err.trim()}`));
        return;
      }
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(
          new Error(`${what}: expected a JSON line, got ${JSON.stringify(last.slice(0, 200))}`),
        );
      }
    });
  });
}
