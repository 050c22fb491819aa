/**
 * Whether the eBPF end-to-end suites can run here: they build network
 * namespaces and attach bpftrace, so they need root and a kernel bpftrace
 * can attach to. One check for every such suite.
 */
import { ebpfProblem, readEbpfFacts } from '../../agent/ebpf-requirements.js';
import { canUseNamespaces } from './netns.js';

/** Why namespaces plus bpftrace cannot be used on this machine, or null when they can. */
export async function ebpfLabSkipReason(): Promise<string | null> {
  if (!(await canUseNamespaces())) return 'cannot create network namespaces (needs root)';
  const problem = ebpfProblem(await readEbpfFacts({ bpftrace: 'bpftrace', mountTracefs: true }));
  return problem ? `bpftrace cannot attach here: ${problem}` : null;
}
