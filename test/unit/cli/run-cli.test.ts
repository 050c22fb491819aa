/**
 * runCli's exit codes and messages for answers the real query handler never
 * gives (API Gateway's own refusals, broken bodies), served by a loopback
 * HTTP server, and for configuration problems caught before any request.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../cli/run-cli.js';

function capture() {
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
  return { stdout, stderr, out: () => out, err: () => err };
}

let server: Server;
let base: string;
const answers = new Map<string, { status: number; type: string; body: string }>([
  ['/v1/agents', { status: 403, type: 'application/json', body: '{"message":"Forbidden"}' }],
  [
    '/v1/services',
    {
      status: 200,
      type: 'application/json',
      body: '{"window": 300, "since": 1, "now": 2, "services": "nope"}',
    },
  ],
  ['/v1/services/dns/count', { status: 200, type: 'text/html', body: '<html>proxy login</html>' }],
  ['/v1/services/dns/clients', { status: 502, type: 'text/plain', body: '' }],
]);

beforeAll(async () => {
  server = createServer((req, res) => {
    const a = answers.get((req.url ?? '').split('?')[0]!) ?? {
      status: 404,
      type: 'text/plain',
      body: 'no',
    };
    res.writeHead(a.status, { 'content-type': a.type });
    res.end(a.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function run(argv: string[], env: Record<string, string> = {}) {
  const io = capture();
  const code = await runCli(argv, { stdout: io.stdout, stderr: io.stderr, env });
  return { code, out: io.out(), err: io.err() };
}

describe('runCli', () => {
  it('prints help with exit 0', async () => {
    const r = await run(['count', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: udpwatch count <service>/);
  });

  it('an API Gateway refusal without a problem document exits 4 with its message', async () => {
    const r = await run(['agents', '--api', base]);
    expect(r.code).toBe(4);
    expect(r.err).toBe('udpwatch: the API answered 403 Forbidden: Forbidden\n');
  });

  it('a 2xx body that does not match the schema exits 5 naming the field', async () => {
    const r = await run(['services'], { UDPWATCH_API: base });
    expect(r.code).toBe(5);
    expect(r.err).toMatch(
      /^udpwatch: unexpected answer from http:\/\/127\.0\.0\.1:\d+\/v1\/services: services: /,
    );
  });

  it('a 2xx body that is not JSON exits 5', async () => {
    const r = await run(['count', 'dns', '--api', base]);
    expect(r.code).toBe(5);
    expect(r.err).toContain('not JSON: "<html>proxy login</html>"');
  });

  it('a 5xx without a body exits 5 with its status', async () => {
    const r = await run(['clients', 'dns', '--api', base]);
    expect(r.code).toBe(5);
    expect(r.err).toBe('udpwatch: the API answered 502 Bad Gateway: (empty body)\n');
  });

  it('an https API of unknown region asks for --region before sending anything', async () => {
    const r = await run(['services', '--api', 'https://udp.example.com']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      'cannot tell the AWS region of udp.example.com: pass --region or set AWS_REGION',
    );
  });
});
