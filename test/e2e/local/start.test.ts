import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import { afterEach, describe, expect, it } from 'vitest';
import { startHookReceiver } from '../../../agent/hook-receiver.js';
import { RESOURCE_NAMES } from '../../../contract/resources.js';
import { kinesisClient } from '../../../local/aws-clients.js';
import { exampleFlowLine } from '../../../local/start.js';

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Agent state and hook socket of one run, away from a developer's own npm start. */
function agentDirs(): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'uw-start-'));
  dirs.push(dir);
  return ['--agent-state-dir', join(dir, 'agent'), '--hook-socket', join(dir, 'hook.sock')];
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(r));
  return port;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function freePorts(n: number): Promise<number[]> {
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

/** `--kinesis-port K --dynamodb-port D --api-port A` for npm start. */
function portFlags(
  kinesis: number | undefined,
  dynamodb: number | undefined,
  api: number | undefined,
): string[] {
  return [
    '--kinesis-port',
    String(kinesis),
    '--dynamodb-port',
    String(dynamodb),
    '--api-port',
    String(api),
  ];
}

/** Runs `npm start` (local/start.ts) with flags, collecting its output. */
function start(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'local/start.ts', ...args], {
    cwd: process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (c: Buffer) => {
    out.stdout += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    out.stderr += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out, exited };
}

async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('npm start', () => {
  it('runs the pipeline: a record put into Kinesis shows up in the HTTP API; SIGINT stops it cleanly', async () => {
    const [kinesisPort, dynamodbPort, apiPort] = await freePorts(3);
    const dirsFlags = agentDirs();
    const run = start([...portFlags(kinesisPort, dynamodbPort, apiPort), ...dirsFlags]);
    await until(
      'the ready message',
      () => run.out.stdout.includes('Ctrl-C stops everything'),
      60_000,
    );
    // Only this user's primary group may report on the local hook socket (root's in CI).
    const hookSocket = statSync(dirsFlags[3]!);
    expect(hookSocket.mode & 0o777).toBe(0o660);
    expect(hookSocket.gid).toBe(process.getgid!());
    expect(run.out.stdout).toContain(`HTTP API   http://127.0.0.1:${apiPort}`);
    expect(run.out.stdout).toContain(`Kinesis    http://127.0.0.1:${kinesisPort}`);
    expect(run.out.stdout).toContain(`DynamoDB   http://127.0.0.1:${dynamodbPort}`);
    expect(run.out.stdout).toMatch(
      /summaries {2}every 60 s, of each minute once its blocks are in/,
    );

    const kinesis = kinesisClient({ endpoint: `http://127.0.0.1:${kinesisPort}` });
    try {
      const line = { ...exampleFlowLine(Date.now()), service: 'uwl-start-test' };
      await kinesis.send(
        new PutRecordCommand({
          StreamName: RESOURCE_NAMES.stream,
          PartitionKey: 'cli-example',
          Data: Buffer.from(`${JSON.stringify(line)}\n`),
        }),
      );
    } finally {
      kinesis.destroy();
    }
    let body = '';
    await until(
      'the service in /v1/services',
      async () => {
        const res = await fetch(`http://127.0.0.1:${apiPort}/v1/services`);
        body = await res.text();
        return res.status === 200 && body.includes('uwl-start-test');
      },
      30_000,
    );
    expect(body).toContain('uwl-start-test');

    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(run.out.stdout).toContain('stopped');
    await expect(fetch(`http://127.0.0.1:${apiPort}/v1/services`)).rejects.toThrow();
  });

  it('--demo shows the demo clients through the CLI, fires a local alarm and stops every child', async () => {
    const [kinesisPort, dynamodbPort, apiPort] = await freePorts(3);
    const demoPort = await freeUdpPort();
    const run = start([
      '--demo',
      '--demo-port',
      String(demoPort),
      ...portFlags(kinesisPort, dynamodbPort, apiPort),
      '--alarms',
      '{"demo-echo":{"min":1000,"evaluationPeriods":1}}',
      '--alarm-period',
      '1',
      ...agentDirs(),
    ]);
    await until(
      'the ready message',
      () => run.out.stdout.includes('Ctrl-C stops everything'),
      60_000,
    );
    // Distinct: a pid may be named twice (the agent logs the hooked daemon it hears).
    const pids = [...new Set([...run.out.stdout.matchAll(/pid (\d+)/g)].map((m) => Number(m[1])))];
    expect(pids).toHaveLength(2); // the agent and the demo daemon

    // The demo's ten clients live on four loopback addresses.
    let clients: {
      ip: string;
      port: number;
      pktsIn: number;
      pktsOut: number;
      sources: string[];
    }[] = [];
    await until(
      'the demo clients in the API',
      async () => {
        const cli = spawn(
          process.execPath,
          [
            'bin/udpwatch.js',
            'clients',
            'demo-echo',
            '--json',
            '--api',
            `http://127.0.0.1:${apiPort}`,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let text = '';
        cli.stdout.on('data', (c: Buffer) => {
          text += c.toString();
        });
        const code = await new Promise((r) => cli.on('exit', r));
        if (code !== 0) return false;
        clients = JSON.parse(text).clients;
        return clients.length >= 10;
      },
      45_000,
    );
    expect(new Set(clients.map((c) => c.ip))).toEqual(
      new Set(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']),
    );
    for (const c of clients) {
      expect(c.sources).toContain('hook');
      expect(c.pktsIn).toBeGreaterThan(0);
    }
    await until(
      'the alarm',
      () => run.out.stdout.includes('ALARM  demo-echo ActiveClients'),
      20_000,
    );

    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });

  it('a taken demo port exits 1 and names --demo-port', async () => {
    const [kinesisPort, dynamodbPort, apiPort] = await freePorts(3);
    const taken = createSocket('udp4');
    await new Promise<void>((r) => taken.bind(0, '127.0.0.1', r));
    try {
      const run = start([
        '--demo',
        '--demo-port',
        String(taken.address().port),
        ...portFlags(kinesisPort, dynamodbPort, apiPort),
        ...agentDirs(),
      ]);
      expect(await run.exited).toBe(1);
      expect(run.out.stderr).toContain(`UDP port ${taken.address().port} is taken`);
      expect(run.out.stderr).toContain('--demo-port');
    } finally {
      taken.close();
    }
  });

  it('a taken port exits 1 with an error naming the port and its flag', async () => {
    const [kinesisPort, dynamodbPort] = await freePorts(2);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const apiPort = (blocker.address() as { port: number }).port;
    try {
      const run = start([...portFlags(kinesisPort, dynamodbPort, apiPort)]);
      expect(await run.exited).toBe(1);
      expect(run.out.stderr).toContain(`API port 127.0.0.1:${apiPort} is already in use`);
      expect(run.out.stderr).toContain('--api-port');
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('a hook socket another npm start (or agent) holds exits 1 naming --hook-socket, and leaves it alone', async () => {
    const [kinesisPort, dynamodbPort, apiPort] = await freePorts(3);
    const flags = agentDirs();
    const hookSocket = flags[3]!;
    const holder = await startHookReceiver(hookSocket, { group: String(process.getgid!()) });
    try {
      const inode = statSync(hookSocket).ino;
      const run = start([...portFlags(kinesisPort, dynamodbPort, apiPort), ...flags]);
      expect(await run.exited).toBe(1);
      expect(run.out.stderr).toContain(
        `not starting: hook socket ${hookSocket} is in use: another agent listens on it`,
      );
      expect(run.out.stderr).toContain('--hook-socket');
      expect(statSync(hookSocket).ino).toBe(inode);
    } finally {
      await holder.close();
    }
  });

  it('--help prints usage and a bad flag exits 2', async () => {
    const help = start(['--help']);
    expect(await help.exited).toBe(0);
    expect(help.out.stdout).toContain('Usage: npm start');
    const bad = start(['--api-port', 'x']);
    expect(await bad.exited).toBe(2);
    expect(bad.out.stderr).toContain('--api-port must be a port number');
  });
});
