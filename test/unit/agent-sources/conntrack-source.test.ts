/**
 * The conntrack source over a table file we control (a procRoot directory with
 * net/nf_conntrack), for the cases a live kernel will not produce on demand:
 * DNAT, counter resets, entries vanishing between polls, accounting off.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ConntrackStatus, createConntrackSource } from '../../../agent/conntrack-source.js';
import type { ListeningSocket } from '../../../agent/observation.js';

let root: string;
let clock: number;
const T0 = Date.UTC(2026, 0, 1);

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'uws-ct-'));
  mkdirSync(join(root, 'net'));
  clock = T0;
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function table(...lines: string[]) {
  writeFileSync(join(root, 'net', 'nf_conntrack'), lines.map((l) => `${l}\n`).join(''));
}

function listener(
  localIp: string,
  localPort: number,
  extra: Partial<ListeningSocket> = {},
): ListeningSocket {
  return {
    localIp,
    localPort,
    family: localIp.includes(':') ? 6 : 4,
    inode: 1,
    drops: 0,
    rxQueueBytes: 0,
    ...extra,
  };
}

/** A UDP entry line; counters only when given (accounting on). */
function udp(
  o: [string, number, string, number, number?, number?],
  r: [string, number, string, number, number?, number?],
  timeout = 29,
): string {
  const tuple = ([src, sport, dst, dport, packets, bytes]: typeof o) =>
    `src=${src} dst=${dst} sport=${sport} dport=${dport}` +
    (packets === undefined ? '' : ` packets=${packets} bytes=${bytes}`);
  return `ipv4     2 udp      17 ${timeout} ${tuple(o)} ${tuple(r)} mark=0 zone=0 use=2`;
}

function source(listeners: ListeningSocket[], onStatus?: (s: ConntrackStatus) => void) {
  return createConntrackSource({
    procRoot: root,
    listeners: () => listeners,
    localAddresses: () => ['203.0.113.2', '2001:db8::2'],
    now: () => clock,
    conntrackCommand: '/nonexistent/uws-conntrack',
    ...(onStatus ? { onStatus } : {}),
  });
}

describe('conntrack source', () => {
  it('reports inbound flows of a listener as cumulative-to-delta observations', async () => {
    const src = source([listener('203.0.113.2', 5000, { pid: 42, process: 'dnsd' })]);
    // IP packet lengths, as conntrack counts them: 3 x (60 payload + 28) in, 2 x (22 + 28) out.
    table(
      udp(
        ['198.51.100.7', 40001, '203.0.113.2', 5000, 3, 264],
        ['203.0.113.2', 5000, '198.51.100.7', 40001, 2, 100],
      ),
    );
    const first = await src.poll();
    expect(first).toEqual([
      {
        source: 'conntrack',
        localIp: '203.0.113.2',
        localPort: 5000,
        remoteIp: '198.51.100.7',
        remotePort: 40001,
        // UDP payload, as the hook and eBPF count it.
        pktsIn: 3,
        bytesIn: 180,
        pktsOut: 2,
        bytesOut: 44,
        firstSeen: T0,
        lastSeen: T0,
        pid: 42,
        process: 'dnsd',
      },
    ]);
    expect(src.status()).toEqual({ available: true, via: 'proc', accounting: true });

    clock += 1000;
    table(
      udp(
        ['198.51.100.7', 40001, '203.0.113.2', 5000, 5, 264 + 2 * (60 + 28)],
        ['203.0.113.2', 5000, '198.51.100.7', 40001, 2, 100],
      ),
    );
    const second = await src.poll();
    expect(second).toHaveLength(1);
    expect(second[0]).toMatchObject({
      pktsIn: 2,
      bytesIn: 120,
      pktsOut: 0,
      bytesOut: 0,
      firstSeen: T0,
      lastSeen: T0 + 1000,
    });

    clock += 1000;
    expect(await src.poll()).toEqual([]); // nothing moved
  });

  it('counts UDP payload bytes for IPv6 too: 48 header bytes less per packet', async () => {
    const src = source([listener('::', 5353)]);
    table(
      'ipv6     10 udp      17 29 src=2001:db8::7 dst=2001:db8::2 sport=40001 dport=5353 ' +
        `packets=4 bytes=${4 * (100 + 48)} src=2001:db8::2 dst=2001:db8::7 sport=5353 dport=40001 ` +
        `packets=1 bytes=${1 * (7 + 48)} mark=0 zone=0 use=2`,
    );
    const src6 = await src.poll();
    expect(src6).toMatchObject([{ pktsIn: 4, bytesIn: 400, pktsOut: 1, bytesOut: 7 }]);
  });

  it('ignores flows that are not to a local listener (outbound, forwarded, other ports)', async () => {
    const src = source([listener('0.0.0.0', 53), listener('::', 123)]);
    table(
      udp(
        ['192.0.2.9', 1111, '203.0.113.2', 53, 1, 60],
        ['203.0.113.2', 53, '192.0.2.9', 1111, 1, 60],
      ),
      udp(
        ['192.0.2.9', 2222, '198.51.100.77', 53, 1, 60],
        ['198.51.100.77', 53, '192.0.2.9', 2222, 0, 0],
      ),
      udp(
        ['203.0.113.2', 3333, '198.51.100.1', 53, 1, 60],
        ['198.51.100.1', 53, '203.0.113.2', 3333, 1, 60],
      ),
      udp(
        ['192.0.2.9', 4444, '203.0.113.2', 5555, 1, 60],
        ['203.0.113.2', 5555, '192.0.2.9', 4444, 0, 0],
      ),
      udp(['127.0.0.1', 5555, '127.0.0.9', 53, 1, 60], ['127.0.0.9', 53, '127.0.0.1', 5555, 0, 0]),
      // IPv4 to a dual-stack [::] socket.
      udp(
        ['192.0.2.9', 6666, '203.0.113.2', 123, 1, 76],
        ['203.0.113.2', 123, '192.0.2.9', 6666, 1, 76],
      ),
    );
    const obs = await src.poll();
    expect(
      obs.map((o) => `${o.localIp}:${o.localPort}<-${o.remoteIp}:${o.remotePort}`).sort(),
    ).toEqual([
      '0.0.0.0:53<-127.0.0.1:5555',
      '0.0.0.0:53<-192.0.2.9:1111',
      ':::123<-192.0.2.9:6666',
    ]);
  });

  it('carries the pre-NAT client after SNAT and finds the socket after DNAT', async () => {
    const src = source([listener('203.0.113.2', 5000)]);
    table(
      // SNAT in front of us: the client 192.0.2.2:40001 reaches us as 203.0.113.1:1024.
      udp(
        ['192.0.2.2', 40001, '203.0.113.2', 5000, 1, 60],
        ['203.0.113.2', 5000, '203.0.113.1', 1024, 0, 0],
      ),
      // DNAT here: sent to :5001, delivered to the socket on :5000.
      udp(
        ['198.51.100.3', 7000, '203.0.113.2', 5001, 2, 120],
        ['203.0.113.2', 5000, '198.51.100.3', 7000, 0, 0],
      ),
    );
    const obs = await src.poll();
    expect(obs).toHaveLength(2);
    expect(obs[0]).toMatchObject({
      remoteIp: '203.0.113.1',
      remotePort: 1024,
      natFromIp: '192.0.2.2',
      natFromPort: 40001,
    });
    expect(obs[1]).toMatchObject({
      localPort: 5000,
      remoteIp: '198.51.100.3',
      remotePort: 7000,
      pktsIn: 2,
    });
    expect(obs[1]!.natFromIp).toBeUndefined();
  });

  it('starts over when an entry vanishes and comes back, or its counters go backwards', async () => {
    const src = source([listener('203.0.113.2', 5000)]);
    const entry = (p: number) =>
      udp(
        ['198.51.100.7', 40001, '203.0.113.2', 5000, p, p * (50 + 28)],
        ['203.0.113.2', 5000, '198.51.100.7', 40001, 0, 0],
      );
    table(entry(10));
    expect((await src.poll())[0]).toMatchObject({ pktsIn: 10, firstSeen: T0 });
    clock += 1000;
    table(entry(4)); // re-created between polls
    expect((await src.poll())[0]).toMatchObject({ pktsIn: 4, bytesIn: 200, firstSeen: T0 + 1000 });
    clock += 1000;
    table();
    expect(await src.poll()).toEqual([]);
    clock += 1000;
    table(entry(4)); // gone for a poll, then back with the same counters
    expect((await src.poll())[0]).toMatchObject({ pktsIn: 4, bytesIn: 200, firstSeen: T0 + 3000 });
  });

  it('without accounting, reports a flow when its timeout was pushed back', async () => {
    const src = source([listener('203.0.113.2', 5000)]);
    const entry = (timeout: number) =>
      udp(
        ['198.51.100.7', 40001, '203.0.113.2', 5000],
        ['203.0.113.2', 5000, '198.51.100.7', 40001],
        timeout,
      );
    table(entry(25));
    expect(await src.poll()).toMatchObject([{ pktsIn: 0, bytesIn: 0, lastSeen: T0 }]);
    expect(src.status().accounting).toBe(false);
    clock += 2000;
    table(entry(23)); // decayed: no packet
    expect(await src.poll()).toEqual([]);
    clock += 1000;
    table(entry(29)); // refreshed
    expect(await src.poll()).toMatchObject([{ lastSeen: T0 + 3000 }]);
    clock += 1000;
    table(entry(29)); // a whole second passed and it did not drop: refreshed again
    expect(await src.poll()).toMatchObject([{ lastSeen: T0 + 4000 }]);
  });

  it('says once why it is unavailable and returns nothing', async () => {
    const seen: ConntrackStatus[] = [];
    const src = source([listener('203.0.113.2', 5000)], (s) => seen.push(s));
    expect(await src.poll()).toEqual([]);
    expect(await src.poll()).toEqual([]);
    expect(seen).toEqual([
      {
        available: false,
        reason: `no ${root}/net/nf_conntrack; no /nonexistent/uws-conntrack command`,
      },
    ]);
    // Becomes available later (module loaded): reported once more.
    table(
      udp(
        ['198.51.100.7', 1, '203.0.113.2', 5000, 1, 60],
        ['203.0.113.2', 5000, '198.51.100.7', 1, 0, 0],
      ),
    );
    expect(await src.poll()).toHaveLength(1);
    expect(seen.map((s) => s.available)).toEqual([false, true]);
  });

  it('treats an unreadable table as unavailable, with the error code', async () => {
    mkdirSync(join(root, 'net', 'nf_conntrack'));
    const src = source([]);
    expect(await src.poll()).toEqual([]);
    expect(src.status()).toEqual({
      available: false,
      reason: `cannot read ${root}/net/nf_conntrack: EISDIR; no /nonexistent/uws-conntrack command`,
    });
  });

  it('skips malformed lines, reports them, and keeps the good entries', async () => {
    const src = source([listener('203.0.113.2', 5000)]);
    table(
      'ipv4     2 udp      17 29 src=bogus',
      udp(
        ['198.51.100.7', 1, '203.0.113.2', 5000, 1, 60],
        ['203.0.113.2', 5000, '198.51.100.7', 1, 0, 0],
      ),
    );
    expect(await src.poll()).toHaveLength(1);
    expect(src.lastErrors()).toEqual([
      { path: `${root}/net/nf_conntrack`, line: 1, reason: 'bad src "bogus"' },
    ]);
  });
});
