/**
 * A minimal UDP echo daemon for the hook-overhead benchmark: binds
 * 127.0.0.1 on an ephemeral port, prints {"port":N} on stdout, and sends
 * every datagram back to its sender until stdin closes.
 */
import dgram from 'node:dgram';

const socket = dgram.createSocket('udp4');
socket.on('message', (msg, rinfo) => {
  socket.send(msg, rinfo.port, rinfo.address);
});
socket.on('error', (err) => {
  console.error(`echo-daemon: ${err.message}`);
  process.exit(1);
});
socket.bind(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: socket.address().port })}\n`);
});
// The parent ends the daemon by closing stdin (or killing it).
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
