/**
 * Closed-loop UDP load generator for the hook-overhead benchmark.
 *
 *   node udp-load.mjs <port> <payloadBytes> <seconds> [sockets] [window]
 *
 * Each of `sockets` client sockets (a distinct flow each) keeps `window`
 * datagrams in flight to 127.0.0.1:<port> and sends a new one per echo.
 * After a short warm-up it counts echoes for <seconds> and prints
 * {"echoed":N,"ms":T,"heard":H} on stdout (H: every echo, warm-up included). A socket that hears nothing for 100 ms
 * refills its window, so a lost datagram cannot stall the loop.
 */
import dgram from 'node:dgram';

const [portArg, sizeArg, secondsArg, socketsArg = '8', windowArg = '16'] = process.argv.slice(2);
const port = Number(portArg);
const size = Number(sizeArg);
const seconds = Number(secondsArg);
const socketCount = Number(socketsArg);
const window = Number(windowArg);
if (!(port > 0 && size > 0 && seconds > 0 && socketCount > 0 && window > 0)) {
  console.error('usage: udp-load.mjs <port> <payloadBytes> <seconds> [sockets] [window]');
  process.exit(2);
}

const WARMUP_MS = 300;
const payload = Buffer.alloc(size, 0x61);
let counting = false;
let echoed = 0;
const clients = [];

for (let i = 0; i < socketCount; i++) {
  const socket = dgram.createSocket('udp4');
  const client = { socket, heard: 0 };
  socket.on('message', () => {
    client.heard++;
    if (counting) echoed++;
    socket.send(payload, port, '127.0.0.1');
  });
  socket.on('error', () => {});
  clients.push(client);
}

const fill = (client) => {
  for (let k = 0; k < window; k++) client.socket.send(payload, port, '127.0.0.1');
};

await Promise.all(
  clients.map((c) => new Promise((resolve) => c.socket.bind(0, '127.0.0.1', resolve))),
);
for (const c of clients) fill(c);

const lastHeard = clients.map(() => 0);
const guard = setInterval(() => {
  clients.forEach((c, i) => {
    if (c.heard === lastHeard[i]) fill(c);
    lastHeard[i] = c.heard;
  });
}, 100);

await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
counting = true;
const t0 = performance.now();
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
counting = false;
const ms = performance.now() - t0;
clearInterval(guard);
const heard = clients.reduce((sum, c) => sum + c.heard, 0);
process.stdout.write(`${JSON.stringify({ echoed, ms, heard })}\n`);
for (const c of clients) c.socket.close();
process.exit(0);
