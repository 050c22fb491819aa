import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { REPLAY_HELP } from '../../../cli/replay-failures-command.js';
import { runCli } from '../../../cli/run-cli.js';

async function run(args: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => {
    out += d;
  });
  stderr.on('data', (d) => {
    err += d;
  });
  const code = await runCli(args, { stdout, stderr, env: {} });
  return { code, out, err };
}

describe('udpwatch replay-failures', () => {
  it('prints its help, and the tool help lists it', async () => {
    expect(await run(['replay-failures', '--help'])).toMatchObject({
      code: 0,
      out: `${REPLAY_HELP}\n`,
    });
    expect((await run(['--help'])).out).toMatch(
      /replay-failures --queue-url <url> +Put the records/,
    );
  });

  it('names the flag at fault, exit 2', async () => {
    const missing = await run(['replay-failures']);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--queue-url is required/);
    expect(missing.err).toMatch(/udpwatch replay-failures --help/);
    const notUrl = await run(['replay-failures', '--queue-url', 'queue']);
    expect(notUrl.code).toBe(2);
    expect(notUrl.err).toMatch(/--queue-url: "queue" is not a URL/);
    const max = await run([
      'replay-failures',
      '--queue-url',
      'https://sqs.eu-west-1.amazonaws.com/1/q',
      '--max-messages',
      '0',
    ]);
    expect(max.code).toBe(2);
    expect(max.err).toMatch(/--max-messages must be a whole number from 1 to 10000, got "0"/);
    const unknown = await run(['replay-failures', '--queue', 'x']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/--queue/);
    const noRegion = await run(['replay-failures', '--queue-url', 'https://queue.example/1/q']);
    expect(noRegion.code).toBe(2);
    expect(noRegion.err).toMatch(/cannot tell the AWS region of queue\.example/);
  });

  it('a queue that cannot be read: exit 3, nothing deleted', async () => {
    const res = await run([
      'replay-failures',
      '--queue-url',
      'http://127.0.0.1:9/q',
      '--stream',
      's',
    ]);
    expect(res.code).toBe(3);
    expect(res.err).toMatch(
      /cannot read the on-failure queue http:\/\/127\.0\.0\.1:9\/q: .*nothing was deleted/,
    );
  });
});
