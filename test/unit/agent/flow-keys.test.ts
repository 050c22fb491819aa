import { describe, expect, it } from 'vitest';
import { FlowKeys, peerKey, StringPool } from '../../../agent/flow-keys.js';

describe('FlowKeys', () => {
  it('gives one key per flow, equal for the same flow and distinct across peers, ports and local sides', () => {
    const keys = new FlowKeys();
    const seen = new Map<number | string, string>();
    const flows: [string, string, number, string, number][] = [];
    // 40 local sides: past the 32 that get number keys, so both layouts are in play.
    for (let l = 0; l < 40; l++) {
      for (const peer of ['192.0.2.1', '192.0.2.10', '203.0.113.255', '2001:db8::1', '0.0.0.0']) {
        for (const port of [0, 1, 53, 65_535])
          flows.push([`svc${l % 3}`, `198.51.100.${l}`, 5000 + (l % 2), peer, port]);
      }
    }
    for (const f of flows) {
      const k = keys.key(...f);
      const name = f.join('|');
      const other = seen.get(k);
      if (other !== undefined && other !== name)
        throw new Error(`${name} and ${other} share key ${k}`);
      seen.set(k, name);
      expect(keys.key(...f)).toBe(k);
    }
    expect(seen.size).toBe(new Set(flows.map((f) => f.join('|'))).size);
  });

  it('keys IPv4 peers of the first local sides by an exact number, others by a string', () => {
    const keys = new FlowKeys();
    const k = keys.key('dns', '192.0.2.53', 53, '255.255.255.255', 65_535);
    expect(typeof k).toBe('number');
    expect(Number.isSafeInteger(k)).toBe(true);
    expect(typeof keys.key('dns', '192.0.2.53', 53, '2001:db8::2', 53)).toBe('string');
    // Local side 0 is port 53; ports 1000.. get ids 1..: 1030 is id 31, the last with number keys.
    for (let i = 0; i < 40; i++) keys.key('dns', '192.0.2.53', 1000 + i, '192.0.2.9', 9);
    expect(typeof keys.key('dns', '192.0.2.53', 1039, '192.0.2.9', 9)).toBe('string');
    expect(
      Number.isSafeInteger(keys.key('dns', '192.0.2.53', 1030, '255.255.255.255', 65_535)),
    ).toBe(true);
  });

  it('peerKey tells address and port apart', () => {
    expect(peerKey('192.0.2.1', 2)).not.toBe(peerKey('192.0.2.2', 1));
    expect(peerKey('192.0.2.1', 256)).not.toBe(peerKey('192.0.3.1', 0));
    expect(peerKey('2001:db8::1', 53)).toBe('2001:db8::1|53');
  });
});

describe('StringPool', () => {
  it('returns one instance per text and stays bounded', () => {
    const pool = new StringPool(3);
    const a = pool.get(['srcds', 'linux'].join('_'));
    expect(pool.get(['srcds', 'linux'].join('_'))).toBe(a);
    for (const t of ['b', 'c', 'd', 'e']) expect(pool.get(t)).toBe(t);
    expect(pool.get('srcds_linux')).toBe('srcds_linux');
  });
});
