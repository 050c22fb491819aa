/**
 * Simulated UDP clients for `npm start -- --demo`: a bounded set of sockets on
 * loopback addresses (127.0.0.2 ... 127.0.0.5, several ports each, so endpoint
 * and distinct-IP counts differ), some steady, some that come and go.
 */
import dgram from 'node:dgram';

export interface DemoClientsOptions {
  target: { host: string; port: number };
  /** Steady clients that run until stopped. */
  steady?: number;
  /** Clients that appear, talk for a while and go quiet, replaced by new ones. */
  churning?: number;
  /** Upper bound on datagrams per second, all clients together. */
  maxRate?: number;
}

/** Running demo clients. */
export interface DemoClients {
  sent(): number;
  stop(): Promise<void>;
}

interface Client {
  socket: dgram.Socket;
  timer: NodeJS.Timeout;
  until: number;
}

/** Starts the demo clients; every timer is bounded and cleared on stop(). */
export function startDemoClients(options: DemoClientsOptions): DemoClients {
  const steady = options.steady ?? 6;
  const churning = options.churning ?? 4;
  const maxRate = options.maxRate ?? 50;
  const perClientMs = Math.max(100, Math.ceil(((steady + churning) * 1000) / maxRate));
  const clients = new Set<Client>();
  let sent = 0;
  let next = 0;
  let stopped = false;

  const spawn = (lifetimeMs: number): void => {
    if (stopped) return;
    const n = next++;
    const address = `127.0.0.${2 + (n % 4)}`;
    const socket = dgram.createSocket('udp4');
    socket.on('error', () => {}); // a demo client never takes the demo down
    socket.on('message', () => {});
    socket.bind(0, address);
    const payload = Buffer.alloc(32 + (n % 5) * 100, n & 0xff);
    const client: Client = {
      socket,
      until: Date.now() + lifetimeMs,
      timer: setInterval(
        () => {
          if (Date.now() > client.until) {
            clearInterval(client.timer);
            client.socket.close();
            clients.delete(client);
            // A churning client is replaced by a new one after a pause.
            if (Number.isFinite(lifetimeMs)) setTimeout(() => spawn(lifetimeMs), 5_000).unref();
            return;
          }
          socket.send(payload, options.target.port, options.target.host, (err) => {
            if (!err) sent++;
          });
        },
        perClientMs + (n % 7) * 50,
      ),
    };
    clients.add(client);
  };

  for (let i = 0; i < steady; i++) spawn(Number.POSITIVE_INFINITY);
  for (let i = 0; i < churning; i++) spawn(20_000 + i * 5_000);

  return {
    sent: () => sent,
    async stop() {
      stopped = true;
      for (const c of clients) {
        clearInterval(c.timer);
        c.socket.close();
      }
      clients.clear();
    },
  };
}
