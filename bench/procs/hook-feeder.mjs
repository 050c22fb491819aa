/**
 * Plays a hooked daemon with many clients for the agent-cost benchmark:
 * connects to the agent's hook socket and, once a second, writes hook
 * protocol messages (10,000 rows at most each) with a row per flow, every flow busy in every window
 * (the agent's worst case per flow).
 *
 *   node hook-feeder.mjs <hookSocket> <flows> <seconds>
 *
 * Prints {"messages":N} when done.
 */
import net from 'node:net';

const [socketPath, flowsArg, secondsArg] = process.argv.slice(2);
const flows = Number(flowsArg);
const seconds = Number(secondsArg);
if (!socketPath || !(flows >= 0) || !(seconds > 0)) {
  console.error('usage: hook-feeder.mjs <hookSocket> <flows> <seconds>');
  process.exit(2);
}

// Clients spread over many networks and ports, like a public service sees them.
const remotes = Array.from({ length: flows }, (_, i) => [
  `${[198, 203, 100, 45, 81, 91, 185, 37][i % 8]}.${(i >> 8) & 255}.${(i * 7) & 255}.${1 + (i % 254)}`,
  1024 + ((i * 7919) % 64_000),
]);
const conn = net.createConnection({ path: socketPath });
await new Promise((resolve, reject) => {
  conn.once('connect', resolve);
  conn.once('error', reject);
});
let messages = 0;
const send = () => {
  const now = Date.now();
  const rows = remotes.map(([ip, port], i) => {
    const pkts = 1 + ((i * 13 + messages) % 9);
    return [
      '10.0.17.42',
      27015,
      ip,
      port,
      pkts,
      pkts * 90,
      pkts,
      pkts * 600,
      now - 900,
      now - (i % 900),
    ];
  });
  // A message holds at most MAX_HOOK_ROWS (10,000) rows, as the hook sends them.
  for (let at = 0; at < rows.length || at === 0; at += 10_000) {
    const message = {
      v: 1,
      pid: process.pid,
      process: 'srcds_linux',
      at: now,
      flows: rows.slice(at, at + 10_000),
      overflowPackets: 0,
      droppedFlows: 0,
      droppedPackets: 0,
    };
    conn.write(`${JSON.stringify(message)}\n`);
  }
  messages++;
};
send();
const timer = setInterval(send, 1000);
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
clearInterval(timer);
conn.end();
process.stdout.write(`${JSON.stringify({ messages })}\n`);
