/**
 * The blind-spot watch and the ruleset reading it relies on: which sockets
 * are named as busy with unobserved peers, with which cause, and which not.
 */
import { describe, expect, it } from 'vitest';
import { BlindSpotWatch, type CoverageFacts, sourceStates } from '../../../agent/blind-spots.js';
import { parseConntrackRules } from '../../../agent/nft-ruleset.js';
import type { ListeningSocket, PeerObservation } from '../../../agent/observation.js';

const RULESET = `table inet uwraw {
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		udp dport 5000 notrack
		udp dport { 53, 5353 } notrack
		udp dport 6000-6002 notrack
		tcp dport 80 notrack
		udp sport 4000 notrack
	}
	chain out {
		type filter hook output priority raw; policy accept;
		udp sport 5000 notrack
		udp dport 53 notrack
	}
	chain in {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
	}
}`;

describe('parseConntrackRules', () => {
  it('reads NOTRACK ports (single, set, range; TCP-only ignored) and conntrack use', () => {
    const r = parseConntrackRules(RULESET);
    expect(r.usesConntrack).toBe(true);
    expect([...(r.notrack as Set<number>)].sort((a, b) => a - b)).toEqual([
      53, 5000, 5353, 6000, 6001, 6002,
    ]);
  });

  it('takes the local port of each direction: dport coming in, sport going out', () => {
    const r = parseConntrackRules(RULESET);
    // sport 4000 in prerouting and dport 53 in output are remote ports.
    expect((r.notrack as Set<number>).has(4000)).toBe(false);
    expect((r.notrack as Set<number>).has(5000)).toBe(true);
  });

  it('sees no conntrack use in an empty ruleset or a filter without ct', () => {
    expect(parseConntrackRules('')).toEqual({ usesConntrack: false, notrack: new Set() });
    const r = parseConntrackRules('table ip f {\n\tchain in {\n\t\tudp dport 53 accept\n\t}\n}');
    expect(r.usesConntrack).toBe(false);
  });

  it('takes NAT as conntrack use, and a port-less or unreadable notrack as all ports', () => {
    expect(
      parseConntrackRules('\t\ttype nat hook postrouting priority srcnat;').usesConntrack,
    ).toBe(true);
    expect(parseConntrackRules('\t\tmeta l4proto udp notrack').notrack).toBe('all');
    expect(parseConntrackRules('\t\tudp dport @dnsports notrack').notrack).toBe('all');
  });
});

const NOW = 1_800_000_000_000;

function listener(port: number, extra: Partial<ListeningSocket> = {}): ListeningSocket {
  return {
    localIp: '0.0.0.0',
    localPort: port,
    family: 4,
    inode: port * 10,
    drops: 0,
    rxQueueBytes: 0,
    process: 'python3',
    ...extra,
  };
}

function hookObs(port: number, pkts: number, pid: number): PeerObservation {
  return {
    source: 'hook',
    localIp: '192.0.2.1',
    localPort: port,
    remoteIp: '192.0.2.2',
    remotePort: 40000,
    pktsIn: pkts,
    bytesIn: pkts * 100,
    pktsOut: 0,
    bytesOut: 0,
    lastSeen: NOW,
    pid,
  };
}

const notrackFacts: CoverageFacts = {
  hook: true,
  proc: true,
  ebpf: { off: 'turned off in the config (sources.ebpf)' },
  conntrack: { available: true, via: 'proc', accounting: true },
  rules: parseConntrackRules(RULESET),
};

/** Runs `cycles` one-second cycles with `perCycle` datagrams delivered host-wide. */
function run(
  watch: BlindSpotWatch,
  opts: {
    facts: CoverageFacts;
    listeners: ListeningSocket[];
    perCycle: number;
    observations?: (i: number) => PeerObservation[];
    cycles?: number;
    /** Cycles already run before this call (time and totals go on from there). */
    from?: number;
  },
) {
  const from = opts.from ?? 0;
  let total = 1_000 + from * opts.perCycle;
  for (let i = from; i < from + (opts.cycles ?? 5); i++) {
    total += opts.perCycle;
    watch.sample({
      now: NOW + i * 1000,
      snmp: { udp: { inDatagrams: total }, udp6: { inDatagrams: 7 }, errors: [] },
      observations: opts.observations?.(i) ?? [],
      countsComplete: true,
      listeners: opts.listeners,
      facts: opts.facts,
      serviceOf: (l) => `svc-${l.localPort}`,
    });
  }
}

describe('BlindSpotWatch', () => {
  it('names the busy NOTRACK port, not a conntrack-visible one or a hooked daemon, and logs once', () => {
    const logs: string[] = [];
    const watch = new BlindSpotWatch({ log: (m) => logs.push(m) });
    run(watch, {
      facts: notrackFacts,
      // 5000: NOTRACK, nobody sees it. 7000: tracked. 5353: NOTRACK but a hooked daemon reports it.
      listeners: [listener(5000), listener(7000), listener(5353, { pid: 42 })],
      perCycle: 300,
      observations: () => [hookObs(5353, 100, 42)],
    });
    const u = watch.current();
    expect(u.map((x) => [x.service, x.port])).toEqual([['svc-5000', 5000]]);
    expect(u[0]!.reason).toMatch(/NOTRACK rule exempts udp port 5000/);
    expect(u[0]!.reason).toMatch(/eBPF is off/);
    expect(u[0]!.reason).toMatch(/fix: enable eBPF/);
    expect(logs.filter((l) => l.startsWith('peers unobserved'))).toHaveLength(1);
  });

  it('flags nothing when the sources account for every datagram, or when the host is quiet', () => {
    const watch = new BlindSpotWatch({ log: () => {} });
    run(watch, {
      facts: notrackFacts,
      listeners: [listener(5000), listener(5353, { pid: 42 })],
      perCycle: 200,
      observations: () => [hookObs(5353, 200, 42)],
    });
    expect(watch.current()).toEqual([]);
    const quiet = new BlindSpotWatch({ log: () => {} });
    run(quiet, { facts: notrackFacts, listeners: [listener(5000)], perCycle: 0 });
    expect(quiet.current()).toEqual([]);
  });

  it('does not compare totals for a window after a source reported uncounted peers', () => {
    const watch = new BlindSpotWatch({ log: () => {} });
    let total = 0;
    for (let i = 0; i < 5; i++) {
      total += 300;
      watch.sample({
        now: NOW + i * 1000,
        snmp: { udp: { inDatagrams: total }, errors: [] },
        observations: [],
        countsComplete: i !== 0,
        listeners: [listener(5000)],
        facts: notrackFacts,
        serviceOf: (l) => `svc-${l.localPort}`,
      });
    }
    expect(watch.current()).toEqual([]);
  });

  it('blames missing conntrack rules in a rule-less namespace, and trusts socket drops alone', () => {
    const facts: CoverageFacts = { ...notrackFacts, rules: parseConntrackRules('') };
    const watch = new BlindSpotWatch({ log: () => {} });
    let drops = 0;
    let total = 0;
    for (let i = 0; i < 5; i++) {
      drops += 5;
      total += 1; // far below any host-wide threshold
      watch.sample({
        now: NOW + i * 1000,
        snmp: { udp: { inDatagrams: total }, errors: [] },
        observations: [],
        countsComplete: true,
        listeners: [listener(5000, { drops }), listener(7000)],
        facts,
        serviceOf: (l) => `svc-${l.localPort}`,
      });
    }
    const u = watch.current();
    expect(u.map((x) => x.port)).toEqual([5000]);
    expect(u[0]!.reason).toMatch(/no firewall rule uses conntrack/);
    expect(u[0]!.reason).toMatch(/queues or drops/);
  });

  it('waits until a socket has been a candidate for a while (first reports lag packets)', () => {
    const watch = new BlindSpotWatch({ log: () => {} });
    run(watch, { facts: notrackFacts, listeners: [listener(5000)], perCycle: 300, cycles: 3 });
    expect(watch.current()).toEqual([]);
    run(watch, {
      facts: notrackFacts,
      listeners: [listener(5000)],
      perCycle: 300,
      cycles: 2,
      from: 3,
    });
    expect(watch.current().map((u) => u.port)).toEqual([5000]);
  });

  it('clears everything once eBPF is live, and reports the episode end', () => {
    const logs: string[] = [];
    const watch = new BlindSpotWatch({ log: (m) => logs.push(m) });
    run(watch, { facts: notrackFacts, listeners: [listener(5000)], perCycle: 300 });
    expect(watch.current()).toHaveLength(1);
    run(watch, {
      facts: { ...notrackFacts, ebpf: { live: true, state: 'live' } },
      listeners: [listener(5000)],
      perCycle: 300,
      cycles: 1,
      from: 5,
    });
    expect(watch.current()).toEqual([]);
    expect(logs.at(-1)).toMatch(/observed again/);
  });
});

describe('sourceStates', () => {
  it('says conntrack is blind without rules, partial with NOTRACK, and why eBPF is off', () => {
    const blind = sourceStates({ ...notrackFacts, rules: parseConntrackRules('') });
    expect(blind.find((s) => s.source === 'conntrack')).toMatchObject({
      state: 'blind',
      reason: expect.stringMatching(/no firewall rule uses conntrack/),
    });
    const partial = sourceStates(notrackFacts);
    expect(partial.find((s) => s.source === 'conntrack')).toMatchObject({
      state: 'partial',
      reason: expect.stringMatching(/udp ports 53, 5000, 5353, 6000, 6001, 6002/),
    });
    expect(partial.find((s) => s.source === 'ebpf')).toEqual({
      source: 'ebpf',
      state: 'off',
      reason: 'turned off in the config (sources.ebpf)',
    });
    const missing = sourceStates({
      ...notrackFacts,
      ebpf: {
        live: false,
        state: 'unavailable',
        reason: 'no kernel BTF at /sys/kernel/btf/vmlinux',
      },
      conntrack: { available: false, reason: 'no /proc/net/nf_conntrack; no conntrack command' },
    });
    expect(missing.filter((s) => s.state === 'blind').map((s) => [s.source, s.reason])).toEqual([
      ['ebpf', 'no kernel BTF at /sys/kernel/btf/vmlinux'],
      ['conntrack', 'unavailable: no /proc/net/nf_conntrack; no conntrack command'],
    ]);
  });

  it('says eBPF is live with a caveat once bpftrace lost output or printed what the agent cannot read', () => {
    const ebpfWith = (counts: { lostEvents: number; badEntries: number }) =>
      sourceStates({ ...notrackFacts, ebpf: { live: true, state: 'live', ...counts } }).find(
        (s) => s.source === 'ebpf',
      );
    expect(ebpfWith({ lostEvents: 0, badEntries: 0 })).toEqual({ source: 'ebpf', state: 'live' });
    expect(ebpfWith({ lostEvents: 3, badEntries: 0 })).toEqual({
      source: 'ebpf',
      state: 'live',
      reason: expect.stringMatching(/lost output events.*BPFTRACE_PERF_RB_PAGES/),
    });
    // The mismatch is the graver one: its entries are never counted.
    expect(ebpfWith({ lostEvents: 3, badEntries: 2 })).toEqual({
      source: 'ebpf',
      state: 'live',
      reason: expect.stringMatching(/entries this agent cannot read.*reinstall udpwatch/),
    });
    // The reason holds no count, so it reads the same as they grow (the agent logs a change of it once).
    expect(ebpfWith({ lostEvents: 900, badEntries: 0 })).toEqual(
      ebpfWith({ lostEvents: 3, badEntries: 0 }),
    );
  });
});
