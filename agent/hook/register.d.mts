/** Types of the udpwatch dgram hook's optional API (see register.mjs). */
import type { Socket } from 'node:dgram';

/** Tags the flow between `socket` and a remote endpoint with an application client id. */
export function tagClient(
  socket: Socket,
  remoteAddress: string,
  remotePort: number,
  clientId: string,
): boolean;

/** Forgets a flow's client id. */
export function untagClient(socket: Socket, remoteAddress: string, remotePort: number): void;

/** Counters of the hook itself. */
export function hookStats(): {
  connected: boolean;
  socketPath: string;
  pendingFlows: number;
  droppedFlows: number;
  droppedPackets: number;
};
