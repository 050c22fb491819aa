import { describe, expect, it } from 'vitest';
import {
  rankClients,
  rankServices,
  renderTopFrame,
  type TopSample,
  topFrameJson,
} from '../../../cli/top-view.js';
import type { ClientEntry } from '../../../contract/api-schemas.js';

const T0 = 1_800_000_000_000;

function entry(
  service: string,
  ip: string,
  port: number,
  pkts: number,
  over: Partial<ClientEntry> = {},
): ClientEntry {
  return {
    service,
    ip,
    port,
    endpoint: `${ip}:${port}`,
    firstSeen: T0 - 60_000,
    lastSeen: T0 - 1000,
    pktsIn: pkts,
    bytesIn: pkts * 100,
    pktsOut: 0,
    bytesOut: 0,
    hosts: ['h1'],
    sources: ['hook'],
    ...over,
  };
}

const sample = (at: number, clients: ClientEntry[]): TopSample => ({
  at,
  window: 300,
  clients,
  truncated: [],
});

describe('rankClients', () => {
  it('ranks the first sample by total packets, without rates', () => {
    const ranked = rankClients(
      sample(T0, [entry('dns', '192.0.2.1', 1, 10), entry('dns', '192.0.2.2', 2, 500)]),
    );
    expect(ranked.map((r) => r.entry.ip)).toEqual(['192.0.2.2', '192.0.2.1']);
    expect(ranked.every((r) => r.rate === null)).toBe(true);
  });

  it('ranks later samples by packets per second since the previous one', () => {
    const before = sample(T0, [
      entry('dns', '192.0.2.1', 1, 10),
      entry('dns', '192.0.2.2', 2, 500),
    ]);
    const after = sample(T0 + 2000, [
      entry('dns', '192.0.2.1', 1, 210),
      entry('dns', '192.0.2.2', 2, 510),
      entry('ntp', '198.51.100.7', 123, 30, { firstSeen: T0 + 500 }),
      entry('ntp', '198.51.100.8', 123, 900, { firstSeen: T0 - 10_000 }),
    ]);
    const ranked = rankClients(after, before);
    expect(ranked.map((r) => [r.entry.ip, r.rate])).toEqual([
      ['192.0.2.1', 100],
      ['198.51.100.7', 15],
      ['192.0.2.2', 5],
      // Active before the previous sample yet not in it (outside that window): no rate claimed.
      ['198.51.100.8', 0],
    ]);
  });

  it('sums services over their endpoints and distinct IPs', () => {
    const ranked = rankClients(
      sample(T0, [
        entry('dns', '192.0.2.1', 1, 10),
        entry('dns', '192.0.2.1', 2, 20),
        entry('ntp', '192.0.2.9', 3, 5),
      ]),
    );
    expect(rankServices(ranked, ['ntp'])).toEqual([
      expect.objectContaining({
        service: 'dns',
        endpoints: 2,
        ips: 1,
        packets: 30,
        bytes: 3000,
        truncated: false,
      }),
      expect.objectContaining({
        service: 'ntp',
        endpoints: 1,
        ips: 1,
        packets: 5,
        truncated: true,
      }),
    ]);
  });
});

describe('renderTopFrame', () => {
  const s = sample(T0, [entry('dns', '192.0.2.1', 1, 10), entry('ntp', '203.0.113.5', 9, 1500)]);

  it('shows a title, a summary, services and clients busiest first', () => {
    const lines = renderTopFrame(s, undefined, { title: 'udpwatch top - all services', limit: 10 });
    expect(lines[0]).toBe('udpwatch top - all services - 2027-01-15 08:00:00 UTC');
    expect(lines[1]).toBe('2 services, 2 endpoints, 2 client IPs active in the last 5m');
    const clientHeader = lines.findIndex((l) => l.startsWith('CLIENT'));
    expect(lines[clientHeader + 1]).toMatch(
      /^203\.0\.113\.5:9\s+ntp\s+-\s+1\.5k\s+146 KiB\s+1s ago\s+h1$/,
    );
    expect(lines[clientHeader + 2]).toMatch(/^192\.0\.2\.1:1\s+dns\b/);
    const serviceHeader = lines.findIndex((l) => l.startsWith('SERVICE'));
    expect(lines[serviceHeader + 1]).toMatch(/^ntp\s+1\s+1\s+-\s+1\.5k/);
  });

  it('limits client rows and clips to the terminal', () => {
    const limited = renderTopFrame(s, undefined, { title: 't', limit: 1 });
    expect(limited.filter((l) => /^\d+\.\d+\.\d+\.\d+:\d+ /.test(l))).toEqual([
      expect.stringMatching(/^203\.0\.113\.5:9 /),
    ]);
    const clipped = renderTopFrame(s, undefined, { title: 't', limit: 10, columns: 20, rows: 5 });
    expect(clipped).toHaveLength(4);
    expect(clipped.every((l) => [...l].length <= 20)).toBe(true);
  });

  it('says so when nothing is active and shows a failed refresh', () => {
    const lines = renderTopFrame(sample(T0, []), undefined, {
      title: 't',
      limit: 5,
      error: 'API down',
    });
    expect(lines).toContain('no active clients');
    expect(lines).toContain('! API down');
  });

  it('gives the same ranking as JSON', () => {
    const json = topFrameJson(s, undefined, 10);
    expect(json.clients.map((c) => [c.endpoint, c.packets, c.pktsPerSecond])).toEqual([
      ['203.0.113.5:9', 1500, null],
      ['192.0.2.1:1', 10, null],
    ]);
    expect(json.services.map((x) => x.service)).toEqual(['ntp', 'dns']);
  });
});

describe('renderTopFrame with unobserved peers', () => {
  it('warns about busy services whose peers no live source sees, even with no client listed', () => {
    const frame = renderTopFrame({ ...sample(T0, []), unobserved: ['resolver'] }, undefined, {
      title: 'udpwatch top',
      limit: 10,
    });
    expect(frame).toContain('! peers unobserved: resolver (why: udpwatch services)');
    expect(frame).toContain('no active clients');
    const plain = renderTopFrame(sample(T0, []), undefined, { title: 'udpwatch top', limit: 10 });
    expect(plain.some((l) => l.includes('peers unobserved'))).toBe(false);
  });
});
