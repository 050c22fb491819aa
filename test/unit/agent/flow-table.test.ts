import { describe, expect, it } from 'vitest';
import { type FlowDelta, FlowTable } from '../../../agent/flow-table.js';
import type { ListeningSocket, PeerObservation } from '../../../agent/observation.js';
import { createServiceNamer, type ServiceRule } from '../../../agent/service-names.js';
import { bigTexts, liveHeapBytes } from '../../support/live-heap.js';

const T0 = 1_700_000_000_000;

function table(rules: ServiceRule[] = [], maxFlows = 1000, seed = 's') {
  return new FlowTable({ serviceFor: createServiceNamer(rules, 300), maxFlows, sampleSeed: seed });
}

function obs(partial: Partial<PeerObservation>): PeerObservation {
  return {
    source: 'hook',
    localIp: '127.0.0.1',
    localPort: 5000,
    remoteIp: '127.0.0.1',
    remotePort: 40000,
    pktsIn: 1,
    bytesIn: 100,
    pktsOut: 1,
    bytesOut: 100,
    lastSeen: T0,
    pid: 42,
    process: 'echod',
    ...partial,
  };
}

const sum = (lines: FlowDelta[], f: 'pktsIn' | 'bytesIn' | 'pktsOut' | 'bytesOut') =>
  lines.reduce((n, l) => n + l[f], 0);

describe('FlowTable', () => {
  it('drains each cycle the deltas of every flow seen since the last drain, marking a flow fresh only once', () => {
    const t = table();
    const at = (s: number) => T0 + s * 1000;
    t.ingest([obs({ remotePort: 7, firstSeen: at(0), lastSeen: at(1) })]);
    const [first] = t.drain(at(1));
    expect(first).toMatchObject({ remotePort: 7, fresh: true, pktsIn: 1, firstSeen: at(0) });
    let drained = 1;
    for (let s = 2; s <= 10; s++) {
      t.ingest([obs({ remotePort: 7, firstSeen: at(0), lastSeen: at(s) })]);
      const deltas = t.drain(at(s));
      expect(deltas).toHaveLength(1);
      // Known now; its delta starts where the previous one ended, not at the flow's first packet.
      expect(deltas[0]).toMatchObject({ fresh: false, firstSeen: at(s - 1), lastSeen: at(s) });
      drained += sum(deltas, 'pktsIn');
    }
    expect(drained).toBe(10);
    expect(t.list()[0]!.pktsIn).toBe(10);
    // Not seen: nothing to drain; a /proc sighting with no counts is still a delta (of zero).
    expect(t.drain(at(11))).toEqual([]);
    t.ingest([
      obs({
        source: 'proc',
        remotePort: 7,
        pktsIn: 0,
        bytesIn: 0,
        pktsOut: 0,
        bytesOut: 0,
        lastSeen: at(12),
      }),
    ]);
    expect(t.drain(at(12)).map((d) => [d.pktsIn, d.lastSeen])).toEqual([[0, at(12)]]);
    // Idle past the timeout: forgotten, and fresh again when it comes back.
    t.drain(at(12 + 301));
    expect(t.size).toBe(0);
    t.ingest([obs({ remotePort: 7, lastSeen: at(400) })]);
    expect(t.drain(at(400))[0]!.fresh).toBe(true);
  });

  it('accumulates deltas per flow and drains only flows seen since the last drain', () => {
    const t = table([{ name: 'echo', port: 5000 }]);
    t.ingest([
      obs({ remotePort: 1 }),
      obs({ remotePort: 1, pktsIn: 2, bytesIn: 7 }),
      obs({ remotePort: 2 }),
    ]);
    const lines = t.drain(T0 + 10);
    expect(lines).toHaveLength(2);
    const one = lines.find((l) => l.remotePort === 1)!;
    expect([one.pktsIn, one.bytesIn, one.pktsOut, one.bytesOut]).toEqual([3, 107, 2, 200]);
    expect(one.service).toBe('echo');
    // Nothing new: nothing drained.
    expect(t.drain(T0 + 1000)).toEqual([]);
  });

  it('names services <process>:<port> by default and fills the process from /proc listeners', () => {
    const t = table();
    const listener: ListeningSocket = {
      localIp: '0.0.0.0',
      localPort: 5300,
      family: 4,
      inode: 1,
      pid: 77,
      process: 'named',
      drops: 0,
      rxQueueBytes: 0,
    };
    t.setListeners([listener]);
    t.ingest([
      obs({
        source: 'conntrack',
        localIp: '198.51.100.1',
        localPort: 5300,
        pid: undefined,
        process: undefined,
      }),
    ]);
    const [line] = t.drain(T0);
    expect(line!.service).toBe('named:5300');
    expect(line!.pid).toBe(77);
    expect(line!.process).toBe('named');
    expect(line!.source).toBe('conntrack');
  });

  it("names a service after its owner's recognizable name, adding the port only when that owner has several", () => {
    const t = table([{ name: 'resolver', port: 5353 }]);
    const l = (port: number, name: string, inode: number, pid = 7): ListeningSocket => ({
      localIp: '0.0.0.0',
      localPort: port,
      family: 4,
      inode,
      pid,
      pids: [pid],
      process: 'python3',
      name,
      drops: 0,
      rxQueueBytes: 0,
    });
    t.setListeners([
      l(53, 'dnsmasq.service', 1),
      // The same port over IPv6 is still one service.
      { ...l(53, 'dnsmasq.service', 2), localIp: '::', family: 6 },
      l(7000, 'relay', 3, 8),
      l(7001, 'relay', 4, 8),
      l(5353, 'mdns', 5, 9),
    ]);
    const seen = (localPort: number) =>
      obs({
        source: 'conntrack',
        localIp: '0.0.0.0',
        localPort,
        pid: undefined,
        process: undefined,
      });
    t.ingest([seen(53), seen(7000), seen(7001), seen(5353), seen(9999)]);
    expect(
      t
        .drain(T0)
        .map((d) => `${d.localPort} ${d.service}`)
        .sort(),
    ).toEqual([
      '53 dnsmasq.service',
      '5353 resolver', // configured names win
      '7000 relay:7000',
      '7001 relay:7001',
      '9999 unknown:9999', // no owner known
    ]);
    expect(t.serviceOf(l(7000, 'relay', 3, 8))).toBe('relay:7000');
  });

  it('names a hooked daemon by its pid before /proc lists its socket, as it will after', () => {
    const t = new FlowTable({
      serviceFor: createServiceNamer([], 300),
      maxFlows: 10,
      nameOfPid: (pid) => (pid === 42 ? 'dns.service' : undefined),
    });
    t.ingest([obs({ pid: 42 }), obs({ pid: 43, localPort: 6000 })]);
    expect(
      t
        .drain(T0)
        .map((d) => d.service)
        .sort(),
    ).toEqual(['dns.service', 'echod:6000']);
  });

  it('lets hook counters win over conntrack for a hooked socket, keeping conntrack NAT info', () => {
    const t = table();
    t.ingest([
      obs({
        source: 'conntrack',
        localIp: '127.0.0.1',
        pktsIn: 6,
        bytesIn: 600,
        natFromIp: '203.0.113.9',
        natFromPort: 999,
      }),
      obs({ localIp: '0.0.0.0', pktsIn: 5, bytesIn: 500 }),
      // A socket the hook does not see: conntrack counts it.
      obs({
        source: 'conntrack',
        localPort: 6000,
        pktsIn: 3,
        bytesIn: 30,
        pid: undefined,
        process: undefined,
      }),
    ]);
    const lines = t.drain(T0);
    expect(lines).toHaveLength(2);
    const hooked = lines.find((l) => l.localPort === 5000)!;
    expect(hooked.source).toBe('hook');
    expect(hooked.pktsIn).toBe(5);
    expect(hooked.natFromIp).toBe('203.0.113.9');
    expect(lines.find((l) => l.localPort === 6000)!.pktsIn).toBe(3);
    expect(t.stats().shadowed).toBe(1);
  });

  it('ties hook ownership to the live socket: a restart without the hook on the same port is counted by eBPF at once', () => {
    const t = table();
    const socket = (inode: number, pid: number): ListeningSocket => ({
      localIp: '0.0.0.0',
      localPort: 5000,
      family: 4,
      inode,
      pid,
      pids: [pid],
      process: 'node',
      drops: 0,
      rxQueueBytes: 0,
    });
    const ebpf = (remotePort: number, at: number) =>
      obs({ source: 'ebpf', localIp: '0.0.0.0', remotePort, lastSeen: at, pid: undefined });
    t.setEbpfLive(true);
    t.setListeners([socket(11, 42)]);
    t.ingest([obs({ localIp: '0.0.0.0', pid: 42, pktsIn: 5 }), ebpf(40000, T0)]);
    expect(t.drain(T0).map((d) => [d.source, d.pktsIn])).toEqual([['hook', 5]]);
    // Idle for two hours, socket still open: still hooked, eBPF still shadowed.
    const later = T0 + 2 * 3_600_000;
    t.setListeners([socket(11, 42)]);
    t.ingest([ebpf(40001, later)]);
    expect(t.drain(later)).toEqual([]);
    expect(t.stats().shadowed).toBe(2);
    // Restarted without the hook: new socket, new pid. The old process's last
    // report, arriving after the scan, must not claim the new socket.
    t.setListeners([socket(12, 43)]);
    t.ingest([
      obs({ localIp: '0.0.0.0', pid: 42, remotePort: 40000, pktsIn: 1, lastSeen: later }),
      ebpf(40002, later + 1),
    ]);
    const deltas = t.drain(later + 1);
    expect(deltas.map((d) => [d.source, d.remotePort, d.pktsIn, d.pid])).toEqual([
      ['hook', 40000, 1, 42],
      ['ebpf', 40002, 1, 43],
    ]);
    // The hook comes back (new process 44 on a new socket): its flows are the hook's again.
    t.setListeners([socket(13, 44)]);
    t.ingest([
      obs({ localIp: '0.0.0.0', pid: 44, remotePort: 40003, lastSeen: later + 2 }),
      ebpf(40003, later + 2),
    ]);
    expect(t.drain(later + 2).map((d) => [d.source, d.remotePort])).toEqual([['hook', 40003]]);
    // The old process's report never found a socket of its own: counted, once.
    expect(t.stats().hookUnmatched).toBe(0);
    t.drain(later + 2 + 61_000);
    expect(t.stats().hookUnmatched).toBe(1);
  });

  it('counts a process that keeps reporting for a socket /proc never lists, once a minute', () => {
    const t = table();
    // /proc lists nothing on the port (the daemon is in another network namespace).
    t.setListeners([]);
    for (let s = 0; s <= 130; s++) {
      t.ingest([obs({ pid: 42, lastSeen: T0 + s * 1000 })]);
      t.drain(T0 + s * 1000);
    }
    // Waiting from its first report, not its latest: unmatched after 61 s and again after 122 s.
    expect(t.stats().hookUnmatched).toBe(2);
    // Its flows are still counted, by the hook.
    expect(t.list()).toMatchObject([{ source: 'hook', pktsIn: 131 }]);
  });

  it('takes every listed socket on the port as hooked when the kernel could not name the reporter', () => {
    const t = table();
    t.setEbpfLive(true);
    t.setListeners([
      {
        localIp: '0.0.0.0',
        localPort: 5000,
        family: 4,
        inode: 21,
        pid: 42,
        pids: [42],
        process: 'node',
        drops: 0,
        rxQueueBytes: 0,
      },
    ]);
    // A hook report without a pid (its daemon is in another network namespace) and
    // eBPF seeing the same datagrams: counted once, by the hook.
    t.ingest([
      obs({ localIp: '0.0.0.0', pid: undefined, pktsIn: 6 }),
      obs({ source: 'ebpf', localIp: '0.0.0.0', pid: undefined, pktsIn: 6 }),
    ]);
    expect(t.drain(T0).map((d) => [d.source, d.pktsIn])).toEqual([['hook', 6]]);
    expect(t.stats().shadowed).toBe(1);
  });

  it('waits for the scan that lists a hooked socket reported before /proc saw it', () => {
    const t = table();
    t.setEbpfLive(true);
    t.setListeners([]);
    // Reported before any scan listed the socket: the port mark covers it.
    t.ingest([
      obs({ localIp: '0.0.0.0', pid: 42 }),
      obs({ source: 'conntrack', localIp: '0.0.0.0', localNat: true, remotePort: 1 }),
    ]);
    expect(t.drain(T0).map((d) => d.source)).toEqual(['hook']);
    const listed: ListeningSocket = {
      localIp: '0.0.0.0',
      localPort: 5000,
      family: 4,
      inode: 21,
      pid: 42,
      pids: [42],
      drops: 0,
      rxQueueBytes: 0,
    };
    t.setListeners([listed]);
    // Long past the port mark: the socket itself is hooked now.
    const later = T0 + 10 * 60_000;
    t.ingest([obs({ source: 'ebpf', localIp: '0.0.0.0', remotePort: 2, lastSeen: later })]);
    expect(t.drain(later)).toEqual([]);
  });

  it('expires a flow idle past its service timeout, after reporting its last deltas', () => {
    const t = table([{ name: 'short', port: 5000, timeoutSeconds: 2 }]);
    t.ingest([obs({ lastSeen: T0 })]);
    expect(t.drain(T0 + 1000)).toHaveLength(1);
    expect(t.size).toBe(1);
    t.ingest([obs({ lastSeen: T0 + 1500, pktsIn: 4, bytesIn: 4, pktsOut: 0, bytesOut: 0 })]);
    // Last deltas go out even though the flow idles out in the same flush.
    const late = t.drain(T0 + 1500 + 2001);
    expect(late.map((l) => l.pktsIn)).toEqual([4]);
    expect(t.size).toBe(0);
    expect(t.stats().expired).toBe(1);
  });

  it('expires each flow exactly when its own timeout has passed, whatever the order flows were seen in', () => {
    const t = table([
      { name: 'short', port: 5000, timeoutSeconds: 2 },
      { name: 'long', port: 6000, timeoutSeconds: 5 },
    ]);
    // Seen out of time order: a later packet first, an older report after it.
    t.ingest([obs({ localPort: 6000, remotePort: 1, lastSeen: T0 + 1000 })]);
    t.ingest([obs({ localPort: 5000, remotePort: 2, lastSeen: T0 })]);
    t.ingest([obs({ localPort: 6000, remotePort: 3, lastSeen: T0 + 500 })]);
    const ports = () =>
      t
        .list()
        .map((f) => f.remotePort)
        .sort();
    t.drain(T0 + 2000);
    expect(ports()).toEqual([1, 2, 3]);
    // Port 2's 2 s are over only after T0 + 2000.
    t.drain(T0 + 2001);
    expect(ports()).toEqual([1, 3]);
    t.drain(T0 + 5500);
    expect(ports()).toEqual([1, 3]);
    // Port 3 is seen again: its timeout runs from the new packet.
    t.ingest([obs({ localPort: 6000, remotePort: 3, lastSeen: T0 + 5000 })]);
    t.drain(T0 + 6001);
    expect(ports()).toEqual([3]);
    t.drain(T0 + 10_000);
    expect(ports()).toEqual([3]);
    t.drain(T0 + 10_001);
    expect(ports()).toEqual([]);
    expect(t.stats().expired).toBe(3);
    // A flow arriving after a walk is still expired on time.
    t.ingest([obs({ localPort: 5000, remotePort: 4, lastSeen: T0 + 9000 })]);
    t.drain(T0 + 11_001);
    expect(ports()).toEqual([]);
  });

  it('hands drainInto the same deltas drain returns, one refilled object at a time', () => {
    const feed = (t: FlowTable, s: number) =>
      t.ingest([
        obs({ remotePort: 1, lastSeen: T0 + s, pktsIn: s }),
        obs({ remotePort: 2, lastSeen: T0 + s, natFromIp: '192.0.2.1', natFromPort: 9 }),
        obs({ remotePort: 1, lastSeen: T0 + s + 1, pktsIn: 1 }),
      ]);
    const a = table();
    const b = table();
    for (let s = 1; s <= 3; s++) {
      feed(a, s);
      feed(b, s);
      const seen: FlowDelta[] = [];
      let previous: FlowDelta | undefined;
      let reused = true;
      b.drainInto(T0 + 10, (d) => {
        if (previous !== undefined && previous !== d) reused = false;
        previous = d;
        seen.push({ ...d });
      });
      expect(reused).toBe(true);
      expect(seen).toEqual(a.drain(T0 + 10));
    }
  });

  it('evicts the least recently seen flow past maxFlows, counts it, and still ships its deltas', () => {
    const t = table([], 3);
    for (let p = 1; p <= 3; p++) t.ingest([obs({ remotePort: p, lastSeen: T0 + p })]);
    // Port 1 is touched again, so port 2 is now the oldest.
    t.ingest([obs({ remotePort: 1, lastSeen: T0 + 10 })]);
    t.ingest([obs({ remotePort: 4, lastSeen: T0 + 11 })]);
    expect(t.size).toBe(3);
    expect(t.stats().evicted).toBe(1);
    expect(
      t
        .list()
        .map((f) => f.remotePort)
        .sort(),
    ).toEqual([1, 3, 4]);
    const lines = t.drain(T0 + 12);
    // Every packet observed is still reported: evicted deltas are not lost.
    expect(sum(lines, 'pktsIn')).toBe(5);
    expect(lines.filter((l) => l.remotePort === 2)).toHaveLength(1);
  });

  it('keeps the first pid and the first process name a flow learns, each on its own, its best source and its highest sample rate', () => {
    const t = table([{ name: 'dns', port: 5000 }]);
    const seen = (o: Partial<PeerObservation>) => {
      t.ingest([obs({ remotePort: 65_535, ...o })]);
      const lines = t.drain(T0);
      expect(lines).toHaveLength(1);
      const { source, remotePort, pid, process, sampleRate, fresh } = lines[0]!;
      return { source, remotePort, pid, process, sampleRate, fresh };
    };
    expect(seen({ source: 'conntrack', pid: undefined, process: undefined })).toEqual({
      source: 'conntrack',
      remotePort: 65_535,
      pid: undefined,
      process: undefined,
      sampleRate: 1,
      fresh: true,
    });
    expect(seen({ source: 'ebpf', pid: 42, process: undefined, sampleRate: 4 })).toEqual({
      source: 'ebpf',
      remotePort: 65_535,
      pid: 42,
      process: undefined,
      sampleRate: 4,
      fresh: false,
    });
    expect(seen({ source: 'hook', pid: 43, process: 'named' })).toEqual({
      source: 'hook',
      remotePort: 65_535,
      pid: 42,
      process: 'named',
      sampleRate: 4,
      fresh: false,
    });
    // The table's own view reads the same packed fields.
    expect(t.list().map((f) => [f.source, f.remotePort, f.pid, f.process])).toEqual([
      ['hook', 65_535, 42, 'named'],
    ]);
  });

  it('samples 1 in N flows with scaled counters so totals stay unbiased', () => {
    const rate = 8;
    const t = table([{ name: 'busy', port: 5000, sampleRate: rate }], 100_000, 'fixed-seed');
    let truePkts = 0;
    const observations: PeerObservation[] = [];
    for (let i = 0; i < 20_000; i++) {
      const pkts = 1 + (i % 7);
      truePkts += pkts;
      observations.push(
        obs({
          remoteIp: `10.${(i >> 8) & 255}.${i & 255}.1`,
          remotePort: 1000 + (i % 50),
          pktsIn: pkts,
          bytesIn: pkts * 10,
        }),
      );
    }
    t.ingest(observations);
    const lines = t.drain(T0);
    for (const l of lines) expect(l.sampleRate).toBe(rate);
    const estimate = sum(lines, 'pktsIn');
    // ~2,500 flows sampled: the relative error's std dev is about 2%; allow 4 sigma.
    expect(Math.abs(estimate - truePkts) / truePkts).toBeLessThan(0.08);
    expect(lines.length).toBeGreaterThan(20_000 / rate / 1.2);
    expect(lines.length).toBeLessThan((20_000 / rate) * 1.2);
    expect(t.stats().sampledOut).toBe(20_000 - lines.length);
    // The choice is per flow: a sampled-out flow stays out, a sampled one stays in.
    const inKeys = new Set(lines.map((l) => `${l.remoteIp}|${l.remotePort}`));
    t.ingest(observations);
    const again = t.drain(T0 + 1);
    expect(new Set(again.map((l) => `${l.remoteIp}|${l.remotePort}`))).toEqual(inKeys);
  });
});

describe('FlowTable memory', () => {
  const n = 12;
  const remote = (i: number) => `198.51.100.${100 + i}`;
  const nat = (i: number) => `203.0.113.${100 + i}`;
  const tag = (i: number) => `player-${String(i).padStart(8, '0')}`;
  /** Field i cut out of its own megabyte of text, as a field parsed out of a big report is. */
  const sliced = (needle: (i: number) => string) =>
    bigTexts(n, needle).map((text, i) => {
      const at = text.indexOf(needle(i));
      return text.slice(at, at + needle(i).length);
    });
  /** The observations' texts die with this frame, unless the table keeps them. */
  const ingestSliced = (t: FlowTable): number => {
    const remotes = sliced(remote);
    const nats = sliced(nat);
    const tags = sliced(tag);
    const withTexts = liveHeapBytes();
    t.ingest(
      remotes.map((remoteIp, i) =>
        obs({
          remoteIp,
          remotePort: 40_000 + i,
          natFromIp: nats[i],
          natFromPort: 9,
          clientId: tags[i],
        }),
      ),
    );
    return withTexts;
  };

  it('keeps no report alive through the addresses and tags its flows hold', () => {
    const t = table();
    const withTexts = ingestSliced(t);
    const after = liveHeapBytes();
    const flows = t.list().sort((a, b) => a.remotePort - b.remotePort);
    expect(flows.map((f) => [f.remoteIp, f.natFromIp, f.clientId])).toEqual(
      Array.from({ length: n }, (_, i) => [remote(i), nat(i), tag(i)]),
    );
    // The 36 MB of text are gone: one slice kept per field would keep them all.
    expect(withTexts - after).toBeGreaterThan(3 * n * 2 ** 20 - 4 * 2 ** 20);
  });
});
