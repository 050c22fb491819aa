/**
 * Many quiet but active UDP flows for the eBPF per-flow benchmark: <flows>
 * client sockets on 127.0.0.1 each send one datagram a second (spread over
 * the second) to a sink of its own on 127.0.0.1:<port>.
 *
 *   node udp-flows.mjs <port> <flows>
 *
 * Prints {"ready":true,"flows":N} once every socket is bound and sending,
 * and runs until stdin closes.
 */
import dgram from 'node:dgram';

const [portArg, flowsArg] = process.argv.slice(2);
const port = Number(portArg);
const flows = Number(flowsArg);
if (!(port > 0 && flows > 0 && flows <= 15_000)) {
  console.error('usage: udp-flows.mjs <port> <flows 1..15000>');
  process.exit(2);
}

const sink = dgram.createSocket('udp4');
sink.on('message', () => {});
await new Promise((resolve) => sink.bind(port, '127.0.0.1', resolve));
const clients = [];
for (let i = 0; i < flows; i++) {
  const c = dgram.createSocket('udp4');
  c.on('error', () => {});
  await new Promise((resolve) => c.bind(0, '127.0.0.1', resolve));
  clients.push(c);
}
const payload = Buffer.from('udpwatch-bench-flow');
// 20 slices a second: each sends from its share of the clients.
const SLICES = 20;
let slice = 0;
const timer = setInterval(() => {
  for (let i = slice; i < clients.length; i += SLICES) clients[i].send(payload, port, '127.0.0.1');
  slice = (slice + 1) % SLICES;
}, 1000 / SLICES);
process.stdout.write(`${JSON.stringify({ ready: true, flows: clients.length })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  clearInterval(timer);
  process.exit(0);
});
