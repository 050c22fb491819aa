/**
 * kinesalite and dynalite in a process of their own for the store
 * benchmarks, so the process under measurement runs only the handler, with a
 * counting proxy in front of dynalite: it forwards every request and counts
 * them by DynamoDB operation (X-Amz-Target), and ConditionalCheckFailed
 * answers apart.
 *
 *   node --import tsx store-emulators.ts
 *
 * Prints {"dynamodbEndpoint":..,"kinesisEndpoint":..,"tableName":..,"streamName":..}
 * (dynamodbEndpoint is the proxy). GET <proxy>/__counts returns the counts
 * and resets them. Runs until stdin closes.
 */
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startEmulators } from '../../local/emulators.js';

const emulators = await startEmulators({ kinesisPort: 0, dynamodbPort: 0 });
const target = new URL(emulators.dynamodbEndpoint);
let counts: Record<string, number> = {};

const proxy = createServer((req, res) => {
  if (req.url === '/__counts') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(counts));
    counts = {};
    return;
  }
  const op = String(req.headers['x-amz-target'] ?? 'unknown')
    .split('.')
    .pop()!;
  counts[op] = (counts[op] ?? 0) + 1;
  const upstream = request(
    {
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
    },
    (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        const body = Buffer.concat(chunks);
        if (answer.statusCode === 400 && body.includes('ConditionalCheckFailed')) {
          counts[`${op}:conditionFailed`] = (counts[`${op}:conditionFailed`] ?? 0) + 1;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.end(body);
      });
    },
  );
  upstream.on('error', (err) => {
    res.writeHead(502);
    res.end(String(err));
  });
  req.pipe(upstream);
});
await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const port = (proxy.address() as AddressInfo).port;

process.stdout.write(
  `${JSON.stringify({
    dynamodbEndpoint: `http://127.0.0.1:${port}`,
    kinesisEndpoint: emulators.kinesisEndpoint,
    tableName: emulators.tableName,
    streamName: emulators.streamName,
  })}\n`,
);
process.stdin.resume();
process.stdin.on('end', async () => {
  proxy.close();
  await emulators.stop();
  process.exit(0);
});
