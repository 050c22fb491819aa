/**
 * A network namespace for benchmarks (named uwb<pid>-<tag>), with loopback
 * up, a documentation address on it, an nftables `ct state` rule so the
 * kernel tracks its UDP flows, and conntrack accounting on. Always delete it.
 */
import { execFileSync } from 'node:child_process';

/** A namespace this process created. */
export interface BenchNamespace {
  name: string;
  /** The address on the namespace's loopback (192.0.2.1). */
  address: string;
  /** Runs a command inside the namespace and returns its stdout. */
  exec(command: string, args: string[]): string;
  /** Deletes the namespace; safe to call twice. */
  remove(): void;
}

const NFT_RULES = `table inet uwb {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state new,established,related accept
  }
}
`;

/** Creates the namespace; throws with the failing command when not permitted. */
export function createBenchNamespace(tag: string): BenchNamespace {
  const name = `uwb${process.pid}-${tag}`.slice(0, 15);
  const address = '192.0.2.1';
  const run = (args: string[], input?: string) =>
    execFileSync(args[0]!, args.slice(1), {
      input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 256 * 1024 * 1024,
    });
  let removed = false;
  const ns: BenchNamespace = {
    name,
    address,
    exec: (command, args) => run(['ip', 'netns', 'exec', name, command, ...args]),
    remove() {
      if (removed) return;
      removed = true;
      try {
        run(['ip', 'netns', 'delete', name]);
      } catch {
        // Already gone.
      }
    },
  };
  run(['ip', 'netns', 'add', name]);
  try {
    ns.exec('ip', ['link', 'set', 'lo', 'up']);
    ns.exec('ip', ['addr', 'add', `${address}/24`, 'dev', 'lo']);
    run(['ip', 'netns', 'exec', name, 'nft', '-f', '-'], NFT_RULES);
    ns.exec('sysctl', ['-q', '-w', 'net.netfilter.nf_conntrack_acct=1']);
    // Long enough that no entry expires during the measurement.
    ns.exec('sysctl', ['-q', '-w', 'net.netfilter.nf_conntrack_udp_timeout=600']);
  } catch (err) {
    ns.remove();
    throw err;
  }
  return ns;
}
