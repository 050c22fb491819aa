/**
 * Socket health per service from the /proc listeners: the largest receive
 * queue seen and the datagrams the kernel dropped since the previous scan.
 * A socket's drop counter counts since the socket was made, so the first scan
 * that sees a socket that was already there when the agent started only
 * learns its counter; a socket that appears later counts from zero.
 */
import type { BlockSocketHealth } from '../contract/block.js';
import type { ListeningSocket } from './observation.js';

/** Turns successive listener scans into per-service health deltas. */
export class SocketHealthTracker {
  private dropsByInode = new Map<number, number>();
  private scanned = false;

  /** Health per service since the previous sample; `serviceOf` names a listener's service. */
  sample(
    listeners: readonly ListeningSocket[],
    serviceOf: (l: ListeningSocket) => string,
  ): Map<string, BlockSocketHealth> {
    const out = new Map<string, BlockSocketHealth>();
    const next = new Map<number, number>();
    for (const l of listeners) {
      next.set(l.inode, l.drops);
      const before = this.dropsByInode.get(l.inode) ?? (this.scanned ? 0 : l.drops);
      // A smaller counter is a new socket under a reused inode: all of it is new.
      const drops = l.drops >= before ? l.drops - before : l.drops;
      const service = serviceOf(l);
      const h = out.get(service) ?? { rxQueueBytes: 0, drops: 0 };
      h.rxQueueBytes = Math.max(h.rxQueueBytes, l.rxQueueBytes);
      h.drops += drops;
      out.set(service, h);
    }
    this.dropsByInode = next;
    this.scanned = true;
    return out;
  }
}
