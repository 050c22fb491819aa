/**
 * Holds many UDP sockets open for the socket-discovery benchmark.
 *
 *   node socket-holder.mjs <count>
 *
 * Opens <count> sockets on loopback: three in four IPv4, one in four IPv6,
 * every fifth one connected to a peer (so it has a remote address), then
 * prints {"pid":N,"sockets":count} and holds them until stdin closes.
 */
import dgram from 'node:dgram';

const count = Number(process.argv[2]);
if (!(count > 0 && count <= 20_000)) {
  console.error('usage: socket-holder.mjs <count 1..20000>');
  process.exit(2);
}

const bind = (socket, address) =>
  new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });

const sockets = [];
const anchor4 = dgram.createSocket('udp4');
const anchor6 = dgram.createSocket({ type: 'udp6', ipv6Only: true });
await bind(anchor4, '127.0.0.1');
await bind(anchor6, '::1');
sockets.push(anchor4, anchor6);
for (let i = sockets.length; i < count; i++) {
  const v6 = i % 4 === 3;
  const socket = dgram.createSocket(v6 ? { type: 'udp6', ipv6Only: true } : 'udp4');
  await bind(socket, v6 ? '::1' : '127.0.0.1');
  if (i % 5 === 0) {
    const peer = v6 ? anchor6 : anchor4;
    await new Promise((resolve) => socket.connect(peer.address().port, resolve));
  }
  sockets.push(socket);
}
process.stdout.write(`${JSON.stringify({ pid: process.pid, sockets: sockets.length })}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
