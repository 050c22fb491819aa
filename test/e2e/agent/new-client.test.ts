import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockEndpoint } from '../../../contract/block.js';
import { type Emulators, startEmulators } from '../../../local/emulators.js';
import {
  type Client,
  type Daemon,
  openClient,
  REPO,
  startHookedDaemon,
  waitFor,
} from './daemon-fixture.js';
import { endpointsOf, readStream } from './stream-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'uwa-new-'));
let emulators: Emulators;
let agent: ChildProcess | undefined;
let daemon: Daemon | undefined;
let client: Client | undefined;

beforeAll(async () => {
  emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0, shardCount: 1 });
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  agent?.kill('SIGKILL');
  await emulators?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('udpwatch-agent run, a new client of a hooked daemon', () => {
  it("is shipped at once in an early block part, not with the minute's main part", async () => {
    const hookSocket = join(dir, 'hook.sock');
    const config = join(dir, 'agent.json');
    writeFileSync(
      config,
      JSON.stringify({ sources: { hook: true, conntrack: false, proc: false } }),
    );
    agent = spawn(
      process.execPath,
      [
        'bin/udpwatch-agent.js',
        'run',
        '--stream',
        emulators.streamName,
        '--endpoint',
        emulators.kinesisEndpoint,
        '--state-dir',
        join(dir, 'state'),
        '--hook-socket',
        hookSocket,
        '--interval',
        '60',
        '--config',
        config,
      ],
      { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    agent.stderr!.on('data', (d) => {
      log += d;
    });
    expect(await waitFor(() => log.includes('started:'), 30_000)).toBe(true);
    daemon = await startHookedDaemon(hookSocket, 60_000);
    // The hook connects to the agent on its first send; a first client makes it.
    const warmup = await openClient(4);
    await warmup.echo(daemon.v4, [10]);
    expect(await waitFor(() => log.includes('reports'), 10_000)).toBe(true);
    warmup.close();

    client = await openClient(4);
    expect(await client.echo(daemon.v4, [120])).toBe(1);
    let endpoints: BlockEndpoint[] = [];
    let blocks = 0;
    const shipped = await waitFor(async () => {
      const records = await readStream(emulators.kinesis, emulators.streamName);
      blocks = records.filter((r) => r.block).length;
      endpoints = endpointsOf(records).filter((e) => e.port === client!.port);
      return endpoints.length > 0;
    }, 15_000);
    expect(shipped).toBe(true);
    expect(endpoints).toEqual([
      expect.objectContaining({
        source: 'hook',
        pktsIn: 1,
        bytesIn: 120,
        pktsOut: 1,
        bytesOut: 120,
      }),
    ]);
    // With a 60 s cycle a minute's main part waits over a minute after the minute ends
    // (grace of a cycle, plus the send offset): what arrived is the early parts of the
    // warm-up client and of this one, the default burst of two.
    expect(blocks).toBe(2);
  });
});
