/**
 * Creates many tracked UDP flows for the conntrack benchmark; run it inside
 * a network namespace whose nftables ruleset makes conntrack track traffic.
 *
 *   node conntrack-flows.mjs <listenIp> <port> <flows>
 *
 * Binds a listener on listenIp:port that answers each datagram, then sends
 * one datagram from each of <flows> fresh source sockets (all kept open until
 * the last has its answer, so no source port is reused), then prints
 * {"pid":N,"flows":count,"answered":M} and keeps the listener open until
 * stdin closes. The listener's pid lets the agent read this namespace's
 * /proc/<pid>/net/nf_conntrack from outside.
 */
import dgram from 'node:dgram';

const [ip, portArg, flowsArg] = process.argv.slice(2);
const port = Number(portArg);
const flows = Number(flowsArg);
if (!ip || !(port > 0) || !(flows > 0 && flows <= 50_000)) {
  console.error('usage: conntrack-flows.mjs <listenIp> <port> <flows 1..50000>');
  process.exit(2);
}

const server = dgram.createSocket('udp4');
server.on('message', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address));
await new Promise((resolve) => server.bind(port, ip, resolve));

const payload = Buffer.from('udpwatch-bench');
let answered = 0;
const clients = [];
/** One flow: a fresh client socket sends one datagram and waits for the answer (or 1 s). */
async function one() {
  const client = dgram.createSocket('udp4');
  clients.push(client);
  await new Promise((resolve) => client.bind(0, ip, resolve));
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    client.once('message', () => {
      answered++;
      clearTimeout(timer);
      resolve();
    });
    client.send(payload, port, ip);
  });
}
const parallel = 64;
let next = 0;
await Promise.all(
  Array.from({ length: parallel }, async () => {
    while (next < flows) {
      next++;
      await one();
    }
  }),
);
for (const client of clients) client.close();
process.stdout.write(`${JSON.stringify({ pid: process.pid, flows, answered })}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
