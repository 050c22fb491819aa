/**
 * The live V8 heap of this test process: a full collection, then heapUsed.
 * For tests that a structure does not keep large strings alive.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/** Bytes in use on the V8 heap after two full collections (weak references settle). */
export function liveHeapBytes(): number {
  collect();
  collect();
  return process.memoryUsage().heapUsed;
}

/** `n` distinct strings of about a megabyte, each with `needle(i)` inside it. */
export function bigTexts(n: number, needle: (i: number) => string): string[] {
  const filler = 'x'.repeat(1 << 20);
  return Array.from({ length: n }, (_, i) => `${filler}${i} ${needle(i)} ${i}`);
}
