/**
 * The dgram hook as one of the agent's sources: the hook receiver plus a
 * subscription for "a report just brought observations", so the agent can
 * subscribe when it is built instead of the receiver calling into an agent
 * that does not exist yet.
 */

import { type HookLineMark, type HookReceiverStats, startHookReceiver } from './hook-receiver.js';
import { HookSocketInUseError, HookSocketPathError } from './hook-socket-file.js';
import type { PeerObservation } from './observation.js';

/** What the agent needs of the hook. */
export interface HookSource {
  /** Returns and forgets every observation received since the previous drain. */
  drain(): PeerObservation[];
  /** drain() one observation at a time, one object refilled for each (copy what outlives the call). */
  drainInto(visit: (o: PeerObservation) => void): void;
  /** Acknowledges the lines drained so far: the agent holds their counts durably now. */
  acknowledge(): void;
  /** Hooked daemons' losses (droppedPackets + shed) as of the latest drain. */
  drainedLoss(): number;
  /** Per daemon the highest line number counted as of the latest drain (for the checkpoint). */
  lineMarks(): HookLineMark[];
  /** Takes in no more reports (what follows goes to the next agent); close() follows. */
  stopTaking(): void;
  stats(): Pick<
    HookReceiverStats,
    | 'droppedPackets'
    | 'shed'
    | 'badMessages'
    | 'badRows'
    | 'pidMismatches'
    | 'unidentified'
    | 'refusedConnections'
  >;
  /** Calls `listener` after each report that brought observations. */
  onObservations(listener: () => void): void;
  close(): Promise<void>;
}

/**
 * Listens on the hook socket; resolves undefined (after logging why) when the
 * socket cannot be opened, so the agent runs on its other sources. Throws
 * when another agent owns the path or the path is unsafe (HookSocketInUseError,
 * HookSocketPathError): starting anyway would leave that agent deaf or let
 * others replace the socket.
 */
export async function openHookSource(
  path: string,
  group: string,
  log: (message: string) => void,
  counted: readonly HookLineMark[] = [],
): Promise<HookSource | undefined> {
  const listeners: Array<() => void> = [];
  try {
    const receiver = await startHookReceiver(path, {
      group,
      onError: log,
      // Acknowledged once the agent's checkpoint or spool holds their counts.
      deferAcks: true,
      // Lines the checkpoint already holds, should a hook send them again.
      counted,
      onDaemon: (pid, name) => log(`hook: daemon pid ${pid} (${name ?? '?'}) reports`),
      onObservations: () => {
        for (const l of listeners) l();
      },
    });
    return {
      drain: () => receiver.drain(),
      drainInto: (visit) => receiver.drainInto(visit),
      acknowledge: () => receiver.acknowledge(),
      drainedLoss: () => receiver.drainedLoss(),
      lineMarks: () => receiver.lineMarks(),
      stopTaking: () => receiver.stopTaking(),
      stats: () => receiver.stats(),
      onObservations: (listener) => {
        listeners.push(listener);
      },
      close: () => receiver.close(),
    };
  } catch (err) {
    if (err instanceof HookSocketInUseError || err instanceof HookSocketPathError) throw err;
    log(`hook socket ${path} unavailable (${(err as Error).message}); running without the hook`);
    return undefined;
  }
}
