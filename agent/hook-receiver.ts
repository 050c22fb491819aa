/**
 * The agent's end of the dgram hook channel: a Unix stream socket on which
 * hooked daemons write one JSON message per line per window, in the format
 * of contract/hook-protocol.ts (docs/hook-protocol.md). Each message turns
 * into PeerObservations (source 'hook') carrying the pid and process name
 * the kernel gives for the connection (never the ones the message claims);
 * nothing a message says can throw out of the receiver. The receiver
 * acknowledges the lines it took in, so a hook re-sends what an agent that
 * went away never took; with `deferAcks` (the agent) only once the agent says
 * their counts are durable (acknowledge()), so a crash loses none of them.
 *
 * A hook numbers its lines per process run and re-sends an unacknowledged
 * line unchanged under its number. The receiver knows each daemon by the
 * kernel's pid of the connection, that process's start time and the pid
 * the message gives (which can only split what a process says of itself), keeps the highest line number it has drained per
 * daemon (lineMarks(), which the agent's checkpoint holds), and, given the
 * marks of the checkpoint it started from (`counted`), acknowledges a re-sent
 * line at or below its daemon's mark without counting it again: the one
 * case is an agent that died after its checkpoint's rename but before the
 * acknowledgements reached the hook.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import {
  HOOK_ROW_NUMBERS,
  type HookColumns,
  type HookEnvelope,
  HookLineScanner,
  hookColumns,
} from '../contract/hook-line-scan.js';
import {
  HOOK_PROTOCOL_VERSION,
  type HookAck,
  type HookMessage,
  MAX_HOOK_MESSAGE_BYTES,
  MAX_HOOK_ROWS,
  parseHookMessage,
  type SkippedRow,
} from '../contract/hook-protocol.js';
import { Float64Pool } from './float64-pool.js';
import { type HookPeer, HookPeerResolver } from './hook-peer.js';
import {
  applySocketAccess,
  checkSocketDirectory,
  claimSocketPath,
  DEFAULT_HOOK_SOCKET_GROUP,
  inUse,
  type SocketAccess,
  type SocketFileId,
  socketFileId,
  unlinkIfOwn,
} from './hook-socket-file.js';
import { keptObservation, type PeerObservation, refilledObservation } from './observation.js';

/** Default path of the hook socket; the systemd unit's RuntimeDirectory holds it. */
export const DEFAULT_HOOK_SOCKET = '/run/udpwatch/hook.sock';

/** Observations held between drains before the oldest are shed (and counted). */
const MAX_PENDING = 200_000;
/** Daemons whose counters are remembered; the one silent longest is forgotten first. */
const MAX_DAEMONS = 4096;
/** Distinct refused major versions logged; each is logged once. */
const MAX_LOGGED_VERSIONS = 16;

/** What the receiver has seen, for heartbeats and the start log. */
export interface HookReceiverStats {
  connections: number;
  /** Messages used (possibly with some rows skipped). */
  messages: number;
  /** Lines refused whole: not JSON, malformed, too long, or of an unknown major version. */
  badMessages: number;
  /** Of badMessages, those refused for an unknown major protocol version. */
  unsupportedVersions: number;
  /** Flow rows skipped as malformed inside otherwise good messages. */
  badRows: number;
  /**
   * Packets hooked daemons could not report in this receiver's lifetime:
   * windows that never reached an agent (absent or slow) and packets a full
   * hook table could not count. Only grows, across daemon restarts too.
   */
  droppedPackets: number;
  /** Flow windows hooked daemons could not deliver (agent absent or slow) in this receiver's lifetime; only grows. */
  droppedFlows: number;
  /** Observations shed because nobody drained them. */
  shed: number;
  /** Pids of the daemons that reported (the latest MAX_DAEMONS). */
  pids: number[];
  /** Connections refused because MAX_CONNECTIONS were open, or MAX_CONNECTIONS_PER_PID of one process. */
  refusedConnections: number;
  /** Connections whose process the kernel could not name; their rows carry no pid. */
  unidentified: number;
  /** Messages whose pid differs from the kernel's pid of their connection (the kernel's is used). */
  pidMismatches: number;
  /** Mode of the socket file: 0660 with the group, 0600 without. */
  socketMode: number;
  /** Lines re-sent after a crash that the checkpoint already counted: acknowledged, not counted again. */
  resentSkipped: number;
}

/** A daemon's highest line number counted: [`<pid>@<start time in clock ticks>/<pid it says>`, line]. */
export type HookLineMark = [string, number];

export interface HookReceiver {
  path: string;
  /** Returns and forgets every observation received since the previous drain. */
  drain(): PeerObservation[];
  /**
   * drain() without an object per observation: hands each to `visit`, in
   * the order received, as one object refilled for the next (copy what
   * outlives the call).
   */
  drainInto(visit: (o: PeerObservation) => void): void;
  /**
   * With `deferAcks`: acknowledges every line whose observations a drain
   * returned (their counts are durable now). Without it lines are
   * acknowledged as they are taken in, and this does nothing.
   */
  acknowledge(): void;
  /** droppedPackets plus shed as of the latest drain: the losses of the lines acknowledge() covers. */
  drainedLoss(): number;
  /**
   * Per daemon, the highest line number whose counts a drain returned (or
   * that the `counted` marks already held), for the checkpoint.
   */
  lineMarks(): HookLineMark[];
  stats(): HookReceiverStats;
  /** Takes in no more lines (they go to the next agent unacknowledged); close() follows. */
  stopTaking(): void;
  close(): Promise<void>;
}

/** The cumulative counters a daemon reported last. */
interface DaemonCounters {
  droppedFlows: number;
  droppedPackets: number;
}

/**
 * Folds the drop counters of hook messages into totals. A hook reports
 * `droppedFlows` and `droppedPackets` cumulatively (so a lost message loses
 * nothing); the totals add each daemon's increase since its previous message.
 * A daemon's first message adds its whole count (drops from before this
 * receiver listened are news), and so does a count lower than the last one,
 * which can only be a new process under a reused pid. `overflowPackets` is
 * already a per-window delta and is simply added.
 */
export class HookDropTotals {
  droppedFlows = 0;
  droppedPackets = 0;
  private readonly daemons = new Map<number, DaemonCounters>();

  constructor(private readonly maxDaemons: number = MAX_DAEMONS) {}

  /** Adds one message's counters; true when it is the first from this daemon process. */
  add(m: HookEnvelope): boolean {
    const last = this.daemons.get(m.pid);
    const restarted =
      last === undefined ||
      m.droppedFlows < last.droppedFlows ||
      m.droppedPackets < last.droppedPackets;
    const base = restarted ? { droppedFlows: 0, droppedPackets: 0 } : last;
    this.droppedFlows += m.droppedFlows - base.droppedFlows;
    this.droppedPackets += m.droppedPackets - base.droppedPackets + m.overflowPackets;
    // Re-inserting keeps the map in order of last report, oldest first.
    this.daemons.delete(m.pid);
    this.daemons.set(m.pid, { droppedFlows: m.droppedFlows, droppedPackets: m.droppedPackets });
    if (this.daemons.size > this.maxDaemons) {
      const oldest = this.daemons.keys().next();
      if (!oldest.done) this.daemons.delete(oldest.value);
    }
    return restarted;
  }

  /**
   * Takes a message's cumulative counters as its daemon's latest without
   * adding anything: a re-sent line whose losses an earlier run counted.
   */
  note(m: HookEnvelope): void {
    this.daemons.delete(m.pid);
    this.daemons.set(m.pid, { droppedFlows: m.droppedFlows, droppedPackets: m.droppedPackets });
    if (this.daemons.size > this.maxDaemons) {
      const oldest = this.daemons.keys().next();
      if (!oldest.done) this.daemons.delete(oldest.value);
    }
  }

  /** Pids of the daemons remembered, oldest report first. */
  pids(): number[] {
    return [...this.daemons.keys()];
  }
}

/**
 * One message's rows held until a drain, as columns (HookColumns: numbers
 * in a Float64Array, off the collected heap, and the address texts), not an
 * observation object per row that would live from one report to the next
 * drain (and so be copied, then promoted, by the collector).
 */
interface RowBatch extends HookColumns {
  pid: number | undefined;
  process: string | undefined;
  /** First row not shed. */
  start: number;
}

/**
 * A valid message's rows as a batch, to become observations (source 'hook')
 * carrying the daemon's pid and name; with `identified` false (the kernel
 * could not name the connection's process) they carry neither.
 */
function rowBatch(
  m: Pick<HookEnvelope, 'pid' | 'process'>,
  columns: HookColumns,
  identified: boolean,
): RowBatch {
  return {
    ...columns,
    pid: identified ? m.pid : undefined,
    process: identified ? m.process : undefined,
    start: 0,
  };
}

/** Hands each row of `batches` to `visit` as `o`, refilled. */
function visitRows(
  batches: readonly RowBatch[],
  o: PeerObservation,
  visit: (o: PeerObservation) => void,
): void {
  for (const b of batches) {
    const { numbers, localIps, remoteIps, clientIds } = b;
    o.pid = b.pid;
    o.process = b.process;
    for (let i = b.start; i < b.rows; i++) {
      const at = i * HOOK_ROW_NUMBERS;
      o.localIp = localIps[i]!;
      // Ports (validated 0..65535) leave the Float64Array as small integers: a
      // double kept in a flow's field costs a 16-byte heap number per field.
      o.localPort = numbers[at]! | 0;
      o.remoteIp = remoteIps[i]!;
      o.remotePort = numbers[at + 1]! | 0;
      o.pktsIn = numbers[at + 2]!;
      o.bytesIn = numbers[at + 3]!;
      o.pktsOut = numbers[at + 4]!;
      o.bytesOut = numbers[at + 5]!;
      o.firstSeen = numbers[at + 6]!;
      // A clock stepped back mid-window can put the last datagram before the first.
      o.lastSeen = Math.max(numbers[at + 6]!, numbers[at + 7]!);
      o.clientId = clientIds === null ? undefined : clientIds[i];
      visit(o);
    }
  }
}

/** A valid message's rows as observations, as a drain hands them over (see rowBatch). */
export function hookObservations(m: HookMessage, identified = true): PeerObservation[] {
  const out: PeerObservation[] = [];
  visitRows([rowBatch(m, hookColumns(m.flows), identified)], refilledObservation('hook'), (o) =>
    out.push(keptObservation(o)),
  );
  return out;
}

/** Options of startHookReceiver. */
export interface HookReceiverOptions {
  /** Group allowed to connect (socket mode 0660); default `udpwatch-hook`. A name or a numeric gid. */
  group?: string;
  /** Called with problems and warnings (rate-limited); each names what happened. */
  onError?: (message: string) => void;
  /** Called for the first message of each daemon process. */
  onDaemon?: (pid: number, process: string | undefined) => void;
  /** Called after a message added observations (the agent may flush early). */
  onObservations?: () => void;
  /** Acknowledge lines only through acknowledge(), once their counts are durable. */
  deferAcks?: boolean;
  /** The line marks of the checkpoint this agent started from: lines at or below are not counted again. */
  counted?: readonly HookLineMark[];
  /** `ss` binary (tests); default `ss` from PATH. */
  ss?: string;
}

/** One hook connection: who the kernel says is on the other end, and what it sent. */
interface Connection {
  peer: HookPeer | null;
  /** Lines taken in (bad ones too): what the acknowledgements count. */
  lines: number;
  /** Lines whose observations a drain returned, and lines acknowledged. */
  drained: number;
  acked: number;
  /** The peer's pid already said it was someone else. */
  mismatchLogged: boolean;
  /** `<pid>@<start time>` of the peer process, or null when the kernel could not tell. */
  daemon: string | null;
  /** Chunks read before the kernel named the peer (null once it did), and their length. */
  held: Buffer[] | null;
  heldLength: number;
  /** The unfinished line's bytes, in pieces: scanning only each new chunk for a newline keeps a long line linear. */
  parts: Buffer[];
  partLength: number;
  /** An acknowledgement write is scheduled; the ready acknowledgement ({"ack":0}) went out. */
  ackDue: boolean;
  readySent: boolean;
}

/**
 * Listens on `path` for hooked daemons. Refuses to start (HookSocketInUseError)
 * when another agent listens there, replaces a stale socket, and limits who
 * can connect (see hook-socket-file.ts).
 */
export async function startHookReceiver(
  path: string = DEFAULT_HOOK_SOCKET,
  options: HookReceiverOptions = {},
): Promise<HookReceiver> {
  await checkSocketDirectory(path);
  await claimSocketPath(path);
  // Rows received since the last drain, a batch per message, and how many.
  let pending: RowBatch[] = [];
  let pendingRows = 0;
  const totals = new HookDropTotals();
  // Highest line taken in and as of the latest drain, per daemon (oldest report first), bounded.
  const counted = new Map<string, number>(options.counted ?? []);
  const taken = new Map<string, number>();
  let drained = new Map<string, number>();
  const loggedVersions = new Set<string>();
  const sockets = new Map<Socket, Connection>();
  // The name the socket is bound to; `path` is a hard link to it (see listenAt).
  const bound = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}`,
  );
  // ss names our accepted sockets by the bound name, though it is unlinked by then.
  const resolver = new HookPeerResolver(bound, { ss: options.ss });
  let closing = false;
  const counters = {
    connections: 0,
    messages: 0,
    badMessages: 0,
    unsupportedVersions: 0,
    badRows: 0,
    shed: 0,
    refusedConnections: 0,
    unidentified: 0,
    pidMismatches: 0,
    resentSkipped: 0,
  };
  const limiter = new ReportLimiter(MAX_REPORTS_PER_MINUTE, 60_000);
  const say = (message: string): void => {
    try {
      options.onError?.(message);
    } catch {
      // A failing logger must not cost the message.
    }
  };
  const report = (message: string): void => {
    const suppressed = limiter.take(Date.now());
    if (suppressed === null) return;
    if (suppressed > 0) say(`(${suppressed} more hook problems not logged in the last minute)`);
    say(message);
  };

  // Row numbers wait in pooled arrays from a report to the drain that reads them (see Float64Pool).
  const numbersPool = new Float64Pool((MAX_PENDING + MAX_HOOK_ROWS) * HOOK_ROW_NUMBERS);
  const takeNumbers = (length: number) => numbersPool.take(length);
  const scanner = new HookLineScanner(takeNumbers);

  /**
   * A line as envelope, columns and skipped rows: the scanner's fast path
   * for a line as the hook writes it, else JSON.parse and the schema (which
   * also say what is wrong). Null when the line is refused (counted, reported).
   */
  const decodeLine = (
    bytes: Buffer,
    conn: Connection,
  ): { envelope: HookEnvelope; columns: HookColumns; skipped: SkippedRow[] } | null => {
    const scanned = scanner.scan(bytes);
    if (scanned !== null) return { ...scanned, skipped: [] };
    const line = bytes.toString('utf8');
    if (line.trim() === '') return null;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      counters.badMessages++;
      // JSON.stringify escapes C0 controls, not C1 ones or line separators.
      const shown = JSON.stringify(line.slice(0, 40)).replace(/[\u007f-\u009f\u2028\u2029]/g, '?');
      report(`hook message${fromConn(conn)} is not JSON: ${shown}`);
      return null;
    }
    const parsed = parseHookMessage(json);
    if (!parsed.ok) {
      counters.badMessages++;
      if (parsed.kind === 'version') {
        counters.unsupportedVersions++;
        // A daemon with a newer hook sends every window: say it once per version.
        if (loggedVersions.has(parsed.reason) || loggedVersions.size >= MAX_LOGGED_VERSIONS)
          return null;
        loggedVersions.add(parsed.reason);
        report(
          `hook messages refused: ${parsed.reason} (this agent speaks version ${HOOK_PROTOCOL_VERSION})`,
        );
      } else {
        report(`hook message${fromConn(conn)} refused: ${parsed.reason}`);
      }
      return null;
    }
    const { flows, ...envelope } = parsed.message;
    return { envelope, columns: hookColumns(flows, takeNumbers), skipped: parsed.skipped };
  };

  const handleLine = (line: Buffer, conn: Connection): void => {
    const decoded = decodeLine(line, conn);
    if (decoded === null) return;
    const { envelope: sent, columns, skipped } = decoded;
    // The kernel's pid and name, not the message's: any member of the group could claim any pid.
    const m: HookEnvelope =
      conn.peer === null ? sent : { ...sent, pid: conn.peer.pid, process: conn.peer.process };
    if (conn.peer !== null && sent.pid !== conn.peer.pid) {
      counters.pidMismatches++;
      if (!conn.mismatchLogged) {
        conn.mismatchLogged = true;
        report(
          `hook connection${fromConn(conn)} claims pid ${sent.pid}; using the kernel's pid ${conn.peer.pid}`,
        );
      }
    }
    const lineNo = sent.line;
    // The message's pid too: it tells daemons apart behind a relay (one kernel
    // peer for all), and it can only split what a process says of itself.
    const daemon = conn.daemon === null ? null : `${conn.daemon}/${sent.pid}`;
    if (daemon !== null && lineNo !== undefined) {
      // Sent again after a crash, and already in the checkpoint this agent started from;
      // or sent again after a reconnect: this agent took it in already.
      if (lineNo <= Math.max(counted.get(daemon) ?? 0, taken.get(daemon) ?? 0)) {
        counters.resentSkipped++;
        totals.note(m);
        numbersPool.give(columns.numbers);
        return;
      }
      taken.delete(daemon);
      taken.set(daemon, lineNo);
      if (taken.size > MAX_DAEMONS) taken.delete(taken.keys().next().value!);
    }
    counters.messages++;
    counters.badRows += skipped.length;
    if (skipped.length > 0) {
      const more = skipped.length > 1 ? ` (and ${skipped.length - 1} more rows)` : '';
      report(`hook message from pid ${m.pid}: ${skipped[0]!.reason}${more}`);
    }
    try {
      if (totals.add(m)) options.onDaemon?.(m.pid, conn.peer === null ? undefined : m.process);
    } catch {
      // The counters are folded; only the callback failed.
    }
    const batch = rowBatch(m, columns, conn.peer !== null);
    if (batch.rows > 0) {
      pending.push(batch);
      pendingRows += batch.rows;
    } else {
      numbersPool.give(columns.numbers);
    }
    if (pendingRows > MAX_PENDING) {
      // The oldest rows go first.
      let excess = pendingRows - MAX_PENDING;
      counters.shed += excess;
      pendingRows = MAX_PENDING;
      let drop = 0;
      while (excess > 0) {
        const b = pending[drop]!;
        const left = b.rows - b.start;
        if (left <= excess) {
          excess -= left;
          drop++;
        } else {
          b.start += excess;
          excess = 0;
        }
      }
      if (drop > 0) {
        for (let d = 0; d < drop; d++) numbersPool.give(pending[d]!.numbers);
        pending = pending.slice(drop);
      }
    }
    if (batch.rows > 0) {
      try {
        options.onObservations?.();
      } catch {
        // The observations wait for the next drain.
      }
    }
  };

  /**
   * Takes in one chunk of a connection: its whole lines now, the rest kept for
   * the next chunk. False when the line grew too long and the connection was closed.
   */
  const take = (socket: Socket, conn: Connection, chunk: Buffer): boolean => {
    let from = 0;
    let nl = chunk.indexOf(NEWLINE);
    const before = conn.lines;
    // A closing receiver takes nothing more, not even the rest of this chunk.
    while (nl >= 0 && !closing) {
      // A line's whole bytes: the scanner reads them as they are (text only for what it keeps).
      let line: Buffer;
      if (conn.parts.length === 0) {
        line = chunk.subarray(from, nl);
      } else {
        conn.parts.push(chunk.subarray(from, nl));
        line = Buffer.concat(conn.parts);
        conn.parts = [];
        conn.partLength = 0;
      }
      conn.lines++;
      try {
        handleLine(line, conn);
      } catch (err) {
        counters.badMessages++;
        report(`hook message${fromConn(conn)} could not be used: ${(err as Error).message}`);
      }
      from = nl + 1;
      nl = chunk.indexOf(NEWLINE, from);
    }
    if (from < chunk.length) {
      conn.parts.push(chunk.subarray(from));
      conn.partLength += chunk.length - from;
    }
    if (conn.partLength > MAX_HOOK_MESSAGE_BYTES) {
      counters.badMessages++;
      report(
        `hook message${fromConn(conn)} longer than ${MAX_HOOK_MESSAGE_BYTES} bytes; closing its connection`,
      );
      conn.parts = [];
      conn.partLength = 0;
      socket.destroy();
      return false;
    }
    if (conn.lines > before && !options.deferAcks) acknowledgeSoon(socket, conn);
    return true;
  };

  /**
   * Writes the connection's acknowledgements once the chunks that arrived
   * together are read: a peer that wrote its last line and exited makes the
   * write fail, and Node then drops whatever it had not read yet.
   */
  const acknowledgeSoon = (socket: Socket, conn: Connection): void => {
    if (conn.ackDue) return;
    conn.ackDue = true;
    setImmediate(() => flushAcks(socket, conn));
  };

  /** Writes the acknowledgements a served connection is owed (at once when close() comes first). */
  const flushAcks = (socket: Socket, conn: Connection): void => {
    conn.ackDue = false;
    if (conn.held !== null || socket.destroyed || !socket.writable) return;
    let out = readyFirst(conn);
    if (!options.deferAcks && conn.lines > conn.acked) {
      conn.acked = conn.lines;
      out += ackLine(conn.lines);
    }
    if (out !== '') socket.write(out);
  };

  /** What a connection sent before its peer was known: taken in now, ready said, reading on. */
  const serve = (socket: Socket, conn: Connection): void => {
    const held = conn.held;
    conn.held = null;
    // A peer gone meanwhile closed the socket; what it sent before is still its report.
    for (const chunk of held ?? []) if (closing || !take(socket, conn, chunk)) break;
    if (socket.destroyed) return;
    acknowledgeSoon(socket, conn);
    socket.resume();
  };

  const server: Server = createServer((socket) => {
    if (closing || sockets.size >= MAX_CONNECTIONS) {
      counters.refusedConnections++;
      if (!closing) report(`hook connection refused: already ${MAX_CONNECTIONS} connections`);
      socket.destroy();
      return;
    }
    counters.connections++;
    const conn: Connection = {
      peer: null,
      lines: 0,
      drained: 0,
      acked: 0,
      mismatchLogged: false,
      daemon: null,
      held: [],
      heldLength: 0,
      parts: [],
      partLength: 0,
      ackDue: false,
      readySent: false,
    };
    sockets.set(socket, conn);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    // Read from the start, though lines are used only once the kernel has named
    // the peer: a daemon that reports and exits at once must not lose that report.
    socket.on('data', (chunk: Buffer) => {
      // A closing receiver takes nothing more: unacknowledged lines go to the next agent.
      if (closing) return;
      if (conn.held === null) {
        take(socket, conn, chunk);
        return;
      }
      conn.held.push(chunk);
      conn.heldLength += chunk.length;
      // The rest waits in the kernel's buffer until the peer is known.
      if (conn.heldLength >= MAX_HELD_BYTES) socket.pause();
    });
    // A hook reports every window (at most a minute); a connection silent far longer only holds a slot.
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    void resolver.lookup(socket).then(async (r) => {
      if (closing) return;
      if (r.ok) {
        // Read before the peer is set: the per-pid count below must see only
        // connections already placed, with no await between count and place.
        const daemon = await daemonIdentity(r.peer.pid);
        if (closing) return;
        conn.peer = r.peer;
        conn.daemon = daemon;
        let same = 0;
        for (const other of sockets.values()) if (other.peer?.pid === r.peer.pid) same++;
        if (same > MAX_CONNECTIONS_PER_PID) {
          counters.refusedConnections++;
          report(
            `hook connection${fromConn(conn)} refused: that process already has ${MAX_CONNECTIONS_PER_PID} connections`,
          );
          socket.destroy();
          return;
        }
      } else {
        counters.unidentified++;
        // A peer that wrote and closed at once is gone before the kernel could name it.
        const why = socket.readableEnded ? 'it closed the connection first' : r.reason;
        report(
          `hook connection: cannot learn its process from the kernel (${why}); its reports are used without a pid or process name`,
        );
      }
      serve(socket, conn);
    });
  });
  const { id, access } = await listenAt(
    server,
    path,
    bound,
    options.group ?? DEFAULT_HOOK_SOCKET_GROUP,
  );
  if (access.warning !== undefined) say(access.warning);

  let drainedLoss = 0;
  const drainRows = (visit: (o: PeerObservation) => void): void => {
    const batches = pending;
    pending = [];
    pendingRows = 0;
    for (const conn of sockets.values()) conn.drained = conn.lines;
    drainedLoss = totals.droppedPackets + counters.shed;
    drained = new Map(taken);
    try {
      visitRows(batches, refilledObservation('hook'), visit);
    } finally {
      for (const b of batches) numbersPool.give(b.numbers);
    }
  };
  return {
    path,
    drain() {
      const out: PeerObservation[] = [];
      drainRows((o) => out.push(keptObservation(o)));
      return out;
    },
    drainInto: drainRows,
    lineMarks() {
      const marks = new Map(counted);
      for (const [daemon, line] of drained)
        marks.set(daemon, Math.max(line, marks.get(daemon) ?? 0));
      return [...marks].slice(-MAX_DAEMONS);
    },
    acknowledge() {
      if (!options.deferAcks) return;
      for (const [socket, conn] of sockets) {
        if (conn.drained <= conn.acked || socket.destroyed || !socket.writable) continue;
        conn.acked = conn.drained;
        socket.write(readyFirst(conn) + ackLine(conn.drained));
      }
    },
    drainedLoss: () => drainedLoss,
    stopTaking() {
      closing = true;
    },
    stats() {
      return {
        ...counters,
        droppedPackets: totals.droppedPackets,
        droppedFlows: totals.droppedFlows,
        pids: totals.pids(),
        socketMode: access.mode,
      };
    },
    async close() {
      closing = true;
      // end() flushes the acknowledgements already written before the hooks see the close.
      const ended = [...sockets].map(
        ([s, conn]) =>
          new Promise<void>((resolve) => {
            if (s.destroyed) return resolve();
            // Lines taken in are acknowledged before the end, or the hook would send them again.
            flushAcks(s, conn);
            const timer = setTimeout(() => s.destroy(), CLOSE_GRACE_MS);
            s.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
            s.end();
          }),
      );
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all(ended);
      if (!(await unlinkIfOwn(path, id))) {
        say(`hook socket ${path} is no longer this agent's (replaced or removed); left as it is`);
      }
    },
  };
}

/** Lines of hostile or broken clients logged per minute at most; the rest are counted. */
const MAX_REPORTS_PER_MINUTE = 20;
/** Connections at once; more are refused and counted. */
const MAX_CONNECTIONS = 1024;
/** Connections of one process at once (a hook needs one): a group member cannot take every slot alone. */
const MAX_CONNECTIONS_PER_PID = 8;
/** A connection that sends nothing this long is closed. */
const IDLE_TIMEOUT_MS = 180_000;
/** Bytes a connection's reader holds before its peer is known; beyond, they wait in the kernel. */
const MAX_HELD_BYTES = 64 * 1024;
/** The byte that ends a hook line. */
const NEWLINE = 0x0a;
/** How long close() waits for a hook to see the end of its connection. */
const CLOSE_GRACE_MS = 1_000;

/** The acknowledgement of the first `lines` lines of a connection (HookAckSchema). */
function ackLine(lines: number): string {
  const ack: HookAck = { ack: lines };
  return `${JSON.stringify(ack)}\n`;
}

/** The ready acknowledgement ({"ack":0}) if the connection has not had it yet: it goes first. */
function readyFirst(conn: Connection): string {
  if (conn.readySent) return '';
  conn.readySent = true;
  return ackLine(0);
}

/** " from pid N (name)" for a connection whose peer is known. */
function fromConn(conn: Connection): string {
  return conn.peer === null ? '' : ` from pid ${conn.peer.pid} (${conn.peer.process})`;
}

/**
 * Listens on a fresh name beside `path`, gives it its group and mode, then
 * hard-links it to `path`: the link fails if anyone created `path` meanwhile,
 * and no one can connect before the mode is set. libuv unlinks a listening
 * socket's bound name when it closes; binding to the private name keeps it
 * from removing `path`, which may by then be another agent's socket.
 */
async function listenAt(
  server: Server,
  path: string,
  bound: string,
  group: string,
): Promise<{ id: SocketFileId; access: SocketAccess }> {
  let previous: number | undefined;
  try {
    previous = process.umask(0o177);
  } catch {
    // Worker threads cannot change the umask; the private name is not yet known to anyone anyway.
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(bound, () => {
        server.off('error', reject);
        resolve();
      });
      // The socket file is created synchronously inside listen().
      if (previous !== undefined) {
        process.umask(previous);
        previous = undefined;
      }
    });
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
  try {
    const access = await applySocketAccess(bound, group);
    try {
      await link(bound, path);
    } catch (err) {
      // Two agents started at once: the other one took the path first.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw inUse(path, 'race');
      throw err;
    }
    // Unlinking the bound name changes the inode's ctime: read the identity after it.
    await unlink(bound);
    return { id: await socketFileId(path), access };
  } catch (err) {
    await unlink(bound).catch(() => {});
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw err;
  }
}

/** Allows `max` reports per period; take() returns null to stay quiet, else how many were held back before. */
class ReportLimiter {
  private windowStart = 0;
  private used = 0;
  private held = 0;
  constructor(
    private readonly max: number,
    private readonly periodMs: number,
  ) {}
  take(now: number): number | null {
    if (now - this.windowStart >= this.periodMs) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used >= this.max) {
      this.held++;
      return null;
    }
    this.used++;
    const held = this.held;
    this.held = 0;
    return held;
  }
}

/**
 * `<pid>@<start time>` of a process: the start time (clock ticks since boot,
 * /proc/<pid>/stat field 22) tells a restarted daemon from an earlier one
 * under a reused pid. Null when /proc cannot tell.
 */
async function daemonIdentity(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = fields[19];
    return start !== undefined && /^\d+$/.test(start) ? `${pid}@${start}` : null;
  } catch {
    return null;
  }
}
