import { describe, expect, it } from 'vitest';
import type { ListeningSocket } from '../../../agent/observation.js';
import { SocketHealthTracker } from '../../../agent/socket-health.js';

const sock = (inode: number, port: number, drops: number, rxQueueBytes = 0): ListeningSocket => ({
  localIp: '0.0.0.0',
  localPort: port,
  family: 4,
  inode,
  drops,
  rxQueueBytes,
});
const byPort = (l: ListeningSocket) => (l.localPort === 53 ? 'dns' : 'other');

describe('SocketHealthTracker', () => {
  it('counts drops since the previous scan per service, learning pre-existing counters first', () => {
    const t = new SocketHealthTracker();
    // Counters from before the agent started are not this span's.
    expect(t.sample([sock(1, 53, 100, 10), sock(2, 53, 5, 700)], byPort).get('dns')).toEqual({
      rxQueueBytes: 700,
      drops: 0,
    });
    // +3 and +4 across the two dns sockets; a socket new since then counts from zero.
    const h = t.sample([sock(1, 53, 103), sock(2, 53, 9, 64), sock(3, 9999, 6)], byPort);
    expect(h.get('dns')).toEqual({ rxQueueBytes: 64, drops: 7 });
    expect(h.get('other')).toEqual({ rxQueueBytes: 0, drops: 6 });
    // An inode reused by a new socket with a smaller counter: all of it is new.
    expect(t.sample([sock(1, 53, 2)], byPort).get('dns')).toEqual({ rxQueueBytes: 0, drops: 2 });
  });
});
