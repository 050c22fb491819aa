/**
 * A busy hooked daemon's hook protocol lines, for the benchmarks that feed
 * the agent's reader, table and sealer in process. Client i is the same as in
 * bench/procs/hook-feeder.mjs (a plain .mjs child, which keeps its own copy).
 */

/** Rows per hook message, as a hook sends them. */
export const ROWS_PER_MESSAGE = 10_000;

/** Client i: spread over many networks and ports, like a public service sees them. */
export function busyClient(i: number): [ip: string, port: number] {
  return [
    `${[198, 203, 100, 45, 81, 91, 185, 37][i % 8]}.${(i >> 8) & 255}.${(i * 7) & 255}.${1 + (i % 254)}`,
    1024 + ((i * 7919) % 64_000),
  ];
}

/**
 * One hook message for clients [from, to) at `at`, every one busy in window
 * `window` (packets vary with it, so counters move between windows).
 */
export function busyHookLine(at: number, from: number, to: number, window = 0): string {
  const flows = [];
  for (let i = from; i < to; i++) {
    const [ip, port] = busyClient(i);
    const pkts = 1 + ((i * 13 + window) % 9);
    flows.push([
      '10.0.17.42',
      27015,
      ip,
      port,
      pkts,
      pkts * 90,
      pkts,
      pkts * 600,
      at - 900,
      at - 1,
    ]);
  }
  return JSON.stringify({
    v: 1,
    pid: 4242,
    process: 'srcds_linux',
    at,
    flows,
    overflowPackets: 0,
    droppedFlows: 0,
    droppedPackets: 0,
  });
}

/** One window's hook lines for `flows` clients, ROWS_PER_MESSAGE rows each. */
export function busyHookLines(flows: number, at: number, window: number): string[] {
  const lines: string[] = [];
  for (let from = 0; from < flows; from += ROWS_PER_MESSAGE)
    lines.push(busyHookLine(at, from, Math.min(flows, from + ROWS_PER_MESSAGE), window));
  return lines;
}
