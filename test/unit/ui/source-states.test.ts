/** The agents view's account of the sources an agent cannot use. */
import { describe, expect, it } from 'vitest';
import { sourcesNotLive } from '../../../ui/page/source-states.js';

describe('sourcesNotLive', () => {
  it('lists every source that is not live, with its state and reason, and nothing for live ones', () => {
    expect(
      sourcesNotLive({
        sourceStates: [
          { source: 'proc', state: 'live' },
          { source: 'conntrack', state: 'blind', reason: 'no nftables rule uses conntrack' },
          { source: 'ebpf', state: 'off' },
        ],
      }),
    ).toBe('conntrack blind: no nftables rule uses conntrack; ebpf off');
    expect(sourcesNotLive({ sourceStates: [{ source: 'hook', state: 'live' }] })).toBe('');
    expect(sourcesNotLive({ sourceStates: [] })).toBe('');
  });
});
