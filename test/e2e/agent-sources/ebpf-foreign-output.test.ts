/**
 * A bpftrace program the agent does not agree with (an installation mixing
 * versions) prints entries that are no tuple of the agent's program: the
 * source keeps running and counts them in its status (it logs nothing: the
 * agent logs its source state's change), and that state says eBPF is live
 * with that caveat and its fix,
 * which reaches the heartbeat, `/v1/agents` and `udpwatch agents` as the
 * source's reason. Real bpftrace, running a program written here.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sourceStates } from '../../../agent/blind-spots.js';
import { createEbpfSource } from '../../../agent/ebpf-source.js';
import { ebpfLabSkipReason } from '../../support/ebpf-lab.js';

const skipReason = await ebpfLabSkipReason();
if (skipReason) console.warn(`SKIPPING eBPF foreign-output e2e: ${skipReason}`);

const dir = mkdtempSync(join(tmpdir(), 'uwfo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Drains as the agent's program marks them, of a sum map whose keys have three words, not two or five.
const PROGRAM = `BEGIN { printf("udpwatch ready %llu %llu\\n", $1, nsecs); }
interval:ms:200 {
  @s4_0[1, 2, 3] = 5;
  @s4_0[4, 5, 6] = 7;
  printf("udpwatch drain %llu\\n", nsecs);
  print(@s4_0);
  printf("udpwatch drained\\n");
}
`;

describe.skipIf(skipReason !== null)('eBPF source fed a program it does not agree with', () => {
  it('counts the foreign entries and says eBPF is live with a caveat and the fix', async () => {
    const program = join(dir, 'foreign.bt');
    writeFileSync(program, PROGRAM);
    const logs: string[] = [];
    const source = createEbpfSource({
      sockets: () => ({ listeners: [], connected: [] }),
      program,
      drainIntervalMs: 200,
      log: (m) => logs.push(m),
    });
    try {
      const started = await source.start();
      expect(started.live, started.reason).toBe(true);
      // Bounded wait for a few drains.
      const until = Date.now() + 15_000;
      while (source.status().badEntries < 6 && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const status = source.status();
      expect(status.live).toBe(true);
      expect(status.badEntries).toBeGreaterThanOrEqual(6);
      expect(source.poll()).toEqual([]);
      expect(logs.filter((m) => !m.includes('attached in'))).toEqual([]);
      const ebpf = sourceStates({
        hook: true,
        proc: true,
        ebpf: status,
        conntrack: { off: 'turned off in the config (sources.conntrack)' },
        rules: null,
      }).find((s) => s.source === 'ebpf');
      expect(ebpf).toEqual({
        source: 'ebpf',
        state: 'live',
        reason: expect.stringMatching(/entries this agent cannot read.*reinstall udpwatch/),
      });
    } finally {
      await source.stop();
    }
  }, 60_000);
});
