/**
 * The demo's UDP daemon: echoes every datagram back to its sender.
 * Run under the dgram hook: `node --import ./agent/hook/register.mjs local/demo/echo-daemon.mjs 127.0.0.1 5300`.
 */
import dgram from 'node:dgram';

const host = process.argv[2] ?? '127.0.0.1';
const port = Number(process.argv[3] ?? 5300);
const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
socket.on('message', (msg, rinfo) => {
  socket.send(msg, rinfo.port, rinfo.address);
});
socket.on('error', (err) => {
  console.error(`echo-daemon: ${err.message}`);
  process.exit(1);
});
socket.bind(port, host, () => {
  const a = socket.address();
  console.log(JSON.stringify({ listening: `${a.address}:${a.port}`, pid: process.pid }));
});
process.on('SIGTERM', () => socket.close(() => process.exit(0)));
