/** A block endpoint for checkpoint tests: client `i` of a DNS server, hook-observed. */
import type { BlockEndpoint } from '../../contract/block.js';

/** Endpoint `i` (address, port and counters follow from it), with `over` on top. */
export function pendingEndpoint(i: number, over: Partial<BlockEndpoint> = {}): BlockEndpoint {
  return {
    ip: `192.0.2.${i % 250}`,
    port: 40_000 + i,
    localIp: '0.0.0.0',
    localPort: 53,
    pktsIn: i + 1,
    bytesIn: (i + 1) * 40,
    pktsOut: i,
    bytesOut: i * 90,
    firstSecond: 3,
    lastSecond: 41,
    source: 'hook',
    sampleRate: 1,
    ...over,
  };
}
