/**
 * The agent's kernel-side sources, built from its configuration in one
 * place for the CLI and the benchmarks: /proc (sockets and owners),
 * conntrack and eBPF, the last two attributing flows to the sockets /proc
 * lists, listening and connected. Nothing starts here: the eBPF source
 * starts bpftrace on start(), the others are read by the agent's cycle.
 */
import { type AgentConfig, ebpfDrainSeconds } from './agent-config.js';
import { type ConntrackSource, createConntrackSource } from './conntrack-source.js';
import { createEbpfSource, type EbpfSource } from './ebpf-source.js';
import { createProcSource, type ProcSource } from './proc-source.js';

/** The sources `config.sources` turns on (undefined: off, or not possible without /proc). */
export interface KernelSources {
  proc?: ProcSource;
  conntrack?: ConntrackSource;
  ebpf?: EbpfSource;
}

/** Creates the kernel-side sources of `config`; says through `log` why one it wants cannot run. */
export function createKernelSources(
  config: AgentConfig,
  log: (message: string) => void,
): KernelSources {
  const proc = config.sources.proc ? createProcSource() : undefined;
  // Each asks only for what it reads: connected() builds its list anew per call.
  const listeners = () => proc?.listeners() ?? [];
  const connected = () => proc?.connected() ?? [];
  const conntrack = config.sources.conntrack
    ? createConntrackSource({
        listeners,
        connected,
        onStatus: (s) =>
          log(
            s.available
              ? `conntrack: reading via ${s.via}${s.accounting === false ? ' (no counters: set net.netfilter.nf_conntrack_acct=1)' : ''}`
              : `conntrack unavailable (${s.reason}); running on the other sources`,
          ),
      })
    : undefined;
  if (config.sources.ebpf && !proc) {
    log(
      'eBPF source off: it attributes packets to the sockets the proc source lists; turn sources.proc on',
    );
  }
  const ebpf =
    config.sources.ebpf && proc
      ? createEbpfSource({
          sockets: () => ({ listeners: listeners(), connected: connected() }),
          drainIntervalMs: ebpfDrainSeconds(config) * 1000,
          maxFlows: config.ebpf.maxFlows,
          sampleRate: config.ebpf.sampleRate,
          log,
        })
      : undefined;
  return { proc, conntrack, ebpf };
}
