/**
 * How the agent's V8 heap is bounded. Every cycle the agent parses each
 * flow's hook row, observation and delta, which die within the cycle; with
 * V8's defaults that garbage, not the flows, decides the resident size: the
 * young generation grows to 2 x 16 MiB and the old one to up to 4 times its
 * live size before a full collection (measured: 3 KiB of RSS per flow at
 * 100,000 flows against 0.6 KiB of live heap). A 4 MiB semi-space and a
 * 30 % old-generation growth keep the heap nearer what the flows hold, for
 * more frequent collections: a middle setting, since tighter ones (2 MiB,
 * 20 %) reach 1 KiB per flow at twice the collection CPU (the agent-cost
 * benchmark measures both, see docs/performance.md).
 */
import { setFlagsFromString } from 'node:v8';

/**
 * Node flags the agent's process must be started with: V8 sizes the young
 * generation when the heap is made, so this cannot be set from inside. The
 * systemd unit (agent/packaging) says the same in NODE_OPTIONS; local mode and
 * the benchmark pass these.
 */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=4'] as const;

/** The old generation may grow this many percent over the live heap before the next full collection. */
export const AGENT_HEAP_GROWING_PERCENT = 30;

/** Bounds the old generation's growth; V8 reads this at every collection, so it applies from now on. */
export function tuneAgentHeap(): void {
  setFlagsFromString(`--heap-growing-percent=${AGENT_HEAP_GROWING_PERCENT}`);
}
