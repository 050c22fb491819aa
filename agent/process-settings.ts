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

/**
 * glibc malloc settings the agent runs with: its own defaults (128 KiB),
 * fixed. Left dynamic, freeing one large buffer (a grown flow-table column,
 * the copy WebCrypto hashes a checkpoint from) raises malloc's mmap
 * threshold to that size, and later buffers below it stay in heaps malloc
 * rarely hands back: about 12 MiB more RSS at 100,000 flows, measured.
 * Fixed, a large buffer is mapped and unmapped on its own. Read by glibc at
 * start, so they are environment variables, set where the flags are.
 */
export const AGENT_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
};

/** `env` with AGENT_MALLOC_ENV added, for a child process that runs an agent. */
export function agentEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, ...AGENT_MALLOC_ENV };
}

/** The built agent's first line: AGENT_MALLOC_ENV, then node with AGENT_NODE_FLAGS (`env -S` splits them). */
export const AGENT_SHEBANG = `#!/usr/bin/env -S ${Object.entries(AGENT_MALLOC_ENV)
  .map(([k, v]) => `${k}=${v}`)
  .join(' ')} node ${AGENT_NODE_FLAGS.join(' ')}`;
