/**
 * What the netfilter ruleset of the agent's network namespace says about
 * conntrack, from `nft list ruleset`:
 *
 * - whether any rule needs connection tracking (`ct ...` matches, NAT, or
 *   iptables-nft `conntrack`/`state` matches). Since Linux 4.x a namespace
 *   registers conntrack's hooks only once such a rule exists: without one the
 *   kernel tracks no flow and the conntrack table stays empty;
 * - which UDP ports a `notrack` rule exempts (or all of them, for a notrack
 *   with no port match): conntrack never sees those flows.
 */
import { execFile } from 'node:child_process';

/** The conntrack-relevant facts of a ruleset. */
export interface ConntrackRules {
  /** Some rule makes the kernel track connections in this namespace. */
  usesConntrack: boolean;
  /** UDP destination ports a NOTRACK rule exempts; 'all' for a rule with no port match. */
  notrack: Set<number> | 'all';
}

/** Ports one notrack rule may list at most (a range counts each port). */
const MAX_PORTS = 65_536;

const CT_USE_RE =
  /\bct (?:state|status|mark|direction|zone|label|expiration|helper|original|reply|count|event|id)\b|\b(?:masquerade|snat|dnat|redirect)\b|\btype nat hook\b|\bxt (?:match|target) "?(?:conntrack|state|MASQUERADE|SNAT|DNAT|CT)\b/;
const NOTRACK_RE = /\bnotrack\b/;
/** `dport 53`, `dport { 53, 5353 }`, `dport 6000-6010`, `sport { 1-3, 9 }`, `dport @set`. */
const PORT_RE = /\b([ds])port (\{[^}]*\}|@\S+|[0-9]+(?:-[0-9]+)?)/g;
/** A base chain's hook: packets coming in name the local port as dport, going out as sport. */
const HOOK_RE = /\bhook (prerouting|input|forward|output|postrouting)\b/;

function portsOf(spec: string, into: Set<number>): boolean {
  const items = spec.replace(/[{}]/g, '').split(',');
  for (const raw of items) {
    const m = /^\s*([0-9]+)(?:-([0-9]+))?\s*$/.exec(raw);
    if (!m) return false;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a > 65_535 || b > 65_535 || b < a) return false;
    for (let p = a; p <= b && into.size < MAX_PORTS; p++) into.add(p);
  }
  return true;
}

/** Parses `nft list ruleset` text. Never throws: a rule it cannot read is taken as NOTRACK for all. */
export function parseConntrackRules(text: string): ConntrackRules {
  let usesConntrack = false;
  let notrack: Set<number> | 'all' = new Set();
  let localPort: 'd' | 's' = 'd';
  for (const line of text.split('\n')) {
    if (CT_USE_RE.test(line)) usesConntrack = true;
    const hook = HOOK_RE.exec(line);
    if (hook) localPort = hook[1] === 'output' || hook[1] === 'postrouting' ? 's' : 'd';
    if (!NOTRACK_RE.test(line) || notrack === 'all') continue;
    // A TCP-only exemption leaves UDP tracked.
    if (/\btcp\b/.test(line) && !/\budp\b/.test(line)) continue;
    const matches = [...line.matchAll(PORT_RE)];
    if (matches.length === 0) {
      notrack = 'all';
      continue;
    }
    // Only the remote side's port is matched: local ports of every kind stay tracked.
    const local = matches.find((m) => m[1] === localPort);
    if (!local) continue;
    // Unreadable port lists (named sets) count as all ports: "maybe NOTRACK" beats silence.
    if (!portsOf(local[2]!, notrack)) notrack = 'all';
  }
  return { usesConntrack, notrack };
}

/** Runs `nft list ruleset`; null with the reason when it cannot (no nft, not permitted). */
export function readConntrackRules(
  command = 'nft',
): Promise<{ rules: ConntrackRules } | { rules: null; reason: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      ['list', 'ruleset'],
      { timeout: 5_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException).code;
          resolve({
            rules: null,
            reason:
              code === 'ENOENT'
                ? `no ${command} command`
                : `${command} list ruleset failed: ${String(stderr).trim().split('\n')[0] || err.message}`,
          });
        } else resolve({ rules: parseConntrackRules(stdout) });
      },
    );
  });
}
