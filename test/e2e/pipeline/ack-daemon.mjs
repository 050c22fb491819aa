/**
 * A UDP daemon for the pipeline tests: answers every datagram of n bytes with
 * floor(n / 2) + 1 bytes, so traffic in and out differ and a swapped direction
 * shows. Run under the dgram hook: `node --import <hook> ack-daemon.mjs <ip> <port>`.
 * Prints {"port":..,"pid":..} once listening.
 */
import dgram from 'node:dgram';

const host = process.argv[2] ?? '127.0.0.1';
const port = Number(process.argv[3] ?? 0);
const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
socket.on('message', (msg, rinfo) => {
  socket.send(Buffer.alloc(Math.floor(msg.length / 2) + 1, 0x61), rinfo.port, rinfo.address);
});
socket.on('error', (err) => {
  console.error(`ack-daemon: ${err.message}`);
  process.exit(1);
});
socket.bind(port, host, () => {
  process.stdout.write(`${JSON.stringify({ port: socket.address().port, pid: process.pid })}\n`);
});
process.on('SIGTERM', () => socket.close(() => process.exit(0)));
