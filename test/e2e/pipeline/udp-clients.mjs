/**
 * UDP clients for the pipeline tests: `node udp-clients.mjs '<json plan>'`.
 * The plan is a list of clients {target, port, sport?, sizes}; each binds its
 * own socket (sport 0 or absent: an ephemeral port), sends one datagram per
 * size and waits for its answer before the next, so nothing is in flight when
 * it ends. A socket on an ephemeral port stays open until the last client is
 * done, so those clients of one run never share a port; one on a port the
 * plan names closes when its client is done, so a later client may name it
 * again. Prints one JSON line: per client its local port, datagrams answered
 * and bytes received back.
 */
import dgram from 'node:dgram';

const plan = JSON.parse(process.argv[2] ?? '[]');
const results = [];
const sockets = [];
for (const client of plan) {
  const v6 = client.target.includes(':');
  const socket = dgram.createSocket(v6 ? 'udp6' : 'udp4');
  // A port already taken fails the run with its error, rather than waiting.
  await new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(client.sport ?? 0, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  let answered = 0;
  let bytesBack = 0;
  for (const [i, size] of client.sizes.entries()) {
    const answer = new Promise((resolve) => {
      const timer = setTimeout(() => resolve(-1), 3000);
      socket.once('message', (msg) => {
        clearTimeout(timer);
        resolve(msg.length);
      });
    });
    socket.send(Buffer.alloc(size, i % 251), client.port, client.target);
    const got = await answer;
    if (got >= 0) {
      answered++;
      bytesBack += got;
    }
  }
  results.push({ sport: socket.address().port, answered, bytesBack });
  if (client.sport) socket.close();
  else sockets.push(socket);
}
for (const socket of sockets) socket.close();
process.stdout.write(`${JSON.stringify(results)}\n`);
