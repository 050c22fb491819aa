/**
 * Bytes a piece of code allocates, garbage included: V8's sampling heap
 * profiler (through the inspector) with the objects later collected kept in
 * the profile. An estimate from samples, one per `intervalBytes` allocated on
 * average; deterministic code gives the same figure within a few percent.
 */
import { Session } from 'node:inspector/promises';

interface ProfileNode {
  selfSize: number;
  children: ProfileNode[];
}

const totalOf = (n: ProfileNode): number =>
  n.children.reduce((sum, c) => sum + totalOf(c), n.selfSize);

/** Estimated bytes `fn` allocates on the JS heap, over `times` calls after one warm-up call. */
export async function bytesAllocated(
  fn: () => void,
  times: number,
  intervalBytes = 1024,
): Promise<number> {
  fn();
  const session = new Session();
  session.connect();
  try {
    // The two include flags are in the protocol since V8 10.x; Node's types lag.
    const params = {
      samplingInterval: intervalBytes,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    } as { samplingInterval: number };
    await session.post('HeapProfiler.startSampling', params);
    for (let i = 0; i < times; i++) fn();
    const { profile } = (await session.post('HeapProfiler.stopSampling')) as {
      profile: { head: ProfileNode };
    };
    return totalOf(profile.head) / times;
  } finally {
    session.disconnect();
  }
}
