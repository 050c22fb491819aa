import { describe, expect, it } from 'vitest';
import { FLOW_SOURCES, flowSourceIndex } from '../../../contract/wire.js';

describe('flowSourceIndex', () => {
  it('ranks the sources most precise first: the hook, eBPF, conntrack, /proc', () => {
    expect(['hook', 'ebpf', 'conntrack', 'proc'].map(flowSourceIndex)).toEqual([0, 1, 2, 3]);
    expect(FLOW_SOURCES.map(flowSourceIndex)).toEqual(FLOW_SOURCES.map((_, k) => k));
  });

  it('gives -1 for a name that is no source, whatever it looks like', () => {
    for (const s of ['', 'HOOK', 'hook ', 'bpf', 'constructor', 'toString', '0'])
      expect(flowSourceIndex(s)).toBe(-1);
  });
});
