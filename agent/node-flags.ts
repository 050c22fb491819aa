/**
 * The V8 settings the agent runs with. The agent makes little garbage a row
 * now, so a small young generation (two 2 MiB semi-spaces instead of V8's up
 * to 2 × 16 MiB) and an old generation that grows 20 % past what survived
 * (instead of up to 2×) keep its memory close to what it holds, at no CPU
 * measured in the whole agent or the eBPF source (docs/performance.md,
 * agent-cost and ebpf-source). They are given on node's
 * command line (a running isolate keeps its sizes): the built
 * `udpwatch-agent`'s first line, and wherever udpwatch starts an agent.
 */
export const AGENT_NODE_FLAGS: readonly string[] = [
  '--max-semi-space-size=2',
  '--heap-growing-percent=20',
];

/** The built agent's first line: node with AGENT_NODE_FLAGS (`env -S` splits them). */
export const AGENT_SHEBANG = `#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(' ')}`;
