import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import { afterEach, describe, expect, it } from 'vitest';
import { RESOURCE_NAMES } from '../../../contract/resources.js';
import { kinesisClient } from '../../../local/aws-clients.js';
import { exampleFlowLine } from '../../../local/start.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

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
    const run = start([
      '--kinesis-port',
      String(kinesisPort),
      '--dynamodb-port',
      String(dynamodbPort),
      '--api-port',
      String(apiPort),
    ]);
    await until(
      'the ready message',
      () => run.out.stdout.includes('Ctrl-C stops everything'),
      60_000,
    );
    expect(run.out.stdout).toContain(`HTTP API   http://127.0.0.1:${apiPort}`);
    expect(run.out.stdout).toContain(`Kinesis    http://127.0.0.1:${kinesisPort}`);
    expect(run.out.stdout).toContain(`DynamoDB   http://127.0.0.1:${dynamodbPort}`);

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

  it('a taken port exits 1 with an error naming the port and its flag', async () => {
    const [kinesisPort, dynamodbPort] = await freePorts(2);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const apiPort = (blocker.address() as { port: number }).port;
    try {
      const run = start([
        '--kinesis-port',
        String(kinesisPort),
        '--dynamodb-port',
        String(dynamodbPort),
        '--api-port',
        String(apiPort),
      ]);
      expect(await run.exited).toBe(1);
      expect(run.out.stderr).toContain(`API port 127.0.0.1:${apiPort} is already in use`);
      expect(run.out.stderr).toContain('--api-port');
    } finally {
      await new Promise((r) => blocker.close(r));
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
