/**
 * Open-loop UDP sender for the eBPF count-accuracy benchmark: as fast as the
 * machine sustains, from <sockets> client sockets to a sink socket of its own
 * on 127.0.0.1:<port>, for <seconds>.
 *
 *   node udp-blast.mjs <port> <seconds> <sockets> <payloadBytes>
 *
 * Prints {"sent":N,"failed":F,"received":R,"ms":T}: datagrams the kernel took
 * (sends without an error event), refused sends, and datagrams the sink read.
 * A socket with more than 256 sends queued in userspace waits, so memory stays bounded.
 */
import dgram from 'node:dgram';

const [portArg, secondsArg, socketsArg, sizeArg] = process.argv.slice(2);
const port = Number(portArg);
const seconds = Number(secondsArg);
const socketCount = Number(socketsArg);
const size = Number(sizeArg);
if (
  !(port > 0 && seconds > 0 && seconds <= 60 && socketCount > 0 && socketCount <= 64 && size > 0)
) {
  console.error('usage: udp-blast.mjs <port> <seconds 0..60> <sockets 1..64> <payloadBytes>');
  process.exit(2);
}

const MAX_QUEUED = 256;
const BATCH = 512;
const payload = Buffer.alloc(size, 0x62);
const sink = dgram.createSocket('udp4');
let received = 0;
sink.on('message', () => {
  received++;
});
await new Promise((resolve) => sink.bind(port, '127.0.0.1', resolve));
let failed = 0;
const senders = Array.from({ length: socketCount }, () => {
  const s = dgram.createSocket('udp4');
  s.on('error', () => {
    failed++;
  });
  return s;
});
await Promise.all(senders.map((s) => new Promise((resolve) => s.bind(0, '127.0.0.1', resolve))));
// Connected: no address lookup per send.
await Promise.all(
  senders.map((s) => new Promise((resolve) => s.connect(port, '127.0.0.1', resolve))),
);

let sending = true;
let attempted = 0;
/** Sends a batch per socket whose queue has room, then yields so the sink and timers run. */
function pump() {
  if (!sending) return;
  for (const s of senders) {
    if (s.getSendQueueCount() > MAX_QUEUED) continue;
    for (let k = 0; k < BATCH; k++) s.send(payload);
    attempted += BATCH;
  }
  setImmediate(pump);
}
const t0 = performance.now();
pump();
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
sending = false;
const ms = performance.now() - t0;
// Let the queued sends complete and the sink read what is queued.
const until = Date.now() + 2000;
const queued = () => senders.reduce((n, s) => n + s.getSendQueueCount(), 0);
while (queued() > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
await new Promise((resolve) => setTimeout(resolve, 300));
const sent = attempted - failed - queued();
process.stdout.write(`${JSON.stringify({ sent, failed, received, ms })}\n`);
for (const s of senders) s.close();
sink.close();
process.exit(0);
