import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlowTable } from '../../../agent/flow-table.js';
import type { PeerObservation } from '../../../agent/observation.js';
import {
  DEFAULT_EPHEMERAL_PORTS,
  outboundRule,
  parsePortRange,
  readEphemeralPorts,
} from '../../../agent/outbound-flows.js';
import { createServiceNamer } from '../../../agent/service-names.js';

const range = { low: 32768, high: 60999 };

describe('outbound flows', () => {
  it('takes an ephemeral local port talking to a lower remote port as outbound, and nothing else', () => {
    const outbound = outboundRule(range, new Set([51820]));
    // A resolver's upstream query, a QUIC client.
    expect(outbound(41234, 53)).toBe(true);
    expect(outbound(55001, 443)).toBe(true);
    // A server on a low port (also its connect()ed per-client sockets) and its ephemeral clients.
    expect(outbound(53, 41234)).toBe(false);
    expect(outbound(5201, 45000)).toBe(false);
    // A server inside the range with clients inside it (mosh), peer to peer.
    expect(outbound(60001, 45000)).toBe(false);
    // A configured port is a service whatever its peers.
    expect(outbound(51820, 1194)).toBe(false);
    // The range's edges.
    expect(outbound(32768, 32767)).toBe(true);
    expect(outbound(32767, 53)).toBe(false);
    expect(outbound(61000, 53)).toBe(false);
  });

  it('reads the range from the sysctl, and falls back to the default saying why', () => {
    expect(parsePortRange('32768\t60999\n')).toEqual(range);
    expect(parsePortRange('1024 65535')).toEqual({ low: 1024, high: 65535 });
    expect(parsePortRange('60999 32768')).toBeNull();
    expect(parsePortRange('0 70000')).toBeNull();
    expect(parsePortRange('')).toBeNull();
    const root = mkdtempSync(join(tmpdir(), 'uw-range-'));
    try {
      expect(readEphemeralPorts(root)).toMatchObject({
        range: DEFAULT_EPHEMERAL_PORTS,
        problem: expect.stringContaining('cannot read'),
      });
      mkdirSync(join(root, 'sys/net/ipv4'), { recursive: true });
      writeFileSync(join(root, 'sys/net/ipv4/ip_local_port_range'), '40000\t50000\n');
      expect(readEphemeralPorts(root)).toEqual({ range: { low: 40000, high: 50000 } });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('leaves outbound flows out of the flow table, counted', () => {
    const t = new FlowTable({
      serviceFor: createServiceNamer([], 300),
      maxFlows: 100,
      isOutbound: outboundRule(range, new Set()),
    });
    const obs = (localPort: number, remotePort: number): PeerObservation => ({
      source: 'ebpf',
      localIp: '127.0.0.1',
      localPort,
      remoteIp: '127.0.0.1',
      remotePort,
      pktsIn: 1,
      bytesIn: 10,
      pktsOut: 1,
      bytesOut: 10,
      lastSeen: 1_700_000_000_000,
    });
    // Both ends of one loopback exchange: the server's side stays, the client's goes.
    t.ingest([obs(53, 41234), obs(41234, 53)]);
    expect(t.drain(1_700_000_000_000).map((d) => [d.localPort, d.remotePort])).toEqual([
      [53, 41234],
    ]);
    expect(t.stats().outbound).toBe(1);
  });
});
