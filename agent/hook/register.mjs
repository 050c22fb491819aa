/**
 * udpwatch dgram hook: `node --import <this file> server.js`.
 *
 * Counts every dgram socket's received and sent datagrams per
 * (local address:port, remote address:port) and hands the deltas to the
 * udpwatch agent once a second over a Unix stream socket as NDJSON, in the
 * format of contract/hook-protocol.ts (docs/hook-protocol.md).
 *
 * Plain JavaScript on purpose: the watched daemon must not need a TypeScript
 * loader. Every path that runs inside the daemon is wrapped in try/catch, does
 * O(1) work per packet and never blocks. If the agent is absent or slow, the
 * flows keep counting in the (bounded) table and go out once an agent listens
 * again; the agent acknowledges what it took in, and the reports it never
 * acknowledged are sent again, unchanged and under their line numbers, so an
 * agent restart loses nothing and an agent whose checkpoint already holds
 * one can tell (and not count it twice).
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';

const STATE = Symbol.for('udpwatch.hook');
const LOCAL = Symbol.for('udpwatch.localEndpoint');

/** Major version of the hook protocol (contract/hook-protocol.ts) written in every message. */
const PROTOCOL = 1;

function envInt(name, fallback, min, max) {
  const n = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(n) && n >= min && n <= max ? n : fallback;
}

/** Control characters, which the protocol refuses in names (C0, DEL, C1). */
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

/** The process name as the protocol allows it: 1..256 characters, no control characters. */
function readComm() {
  try {
    const comm = readFileSync('/proc/self/comm', 'utf8').trim().slice(0, 256);
    return comm !== '' && !CONTROL_RE.test(comm) ? comm : 'node';
  } catch {
    return 'node';
  }
}

/** Creates the hook's state once per process, even if imported twice under different URLs. */
function createState() {
  return {
    socketPath: process.env.UDPWATCH_HOOK_SOCKET || '/run/udpwatch/hook.sock',
    intervalMs: envInt('UDPWATCH_HOOK_INTERVAL_MS', 1000, 10, 60_000),
    maxFlows: envInt('UDPWATCH_HOOK_MAX_FLOWS', 10_000, 1, 1_000_000),
    /** Unsent bytes the channel may hold before windows are held back (still counting) instead. */
    maxBuffered: envInt('UDPWATCH_HOOK_MAX_BUFFER', 1024 * 1024, 1024, 64 * 1024 * 1024),
    /** Deltas since the last report that went out: key -> entry. Zeroed at every send. */
    flows: new Map(),
    /** Application client ids by flow key, bounded like the flows. */
    tags: new Map(),
    /** Packets not counted in a flow because the window's table was full. */
    overflowPackets: 0,
    /**
     * The protocol's cumulative drop counters. This hook keeps counting while
     * no agent listens and re-sends what was not acknowledged, so it loses no
     * window: they stay 0 (losses from a full table go out as overflowPackets).
     */
    droppedFlows: 0,
    droppedPackets: 0,
    conn: null,
    connected: false,
    connecting: false,
    /** When the connection was made; an agent that never acknowledges is an older one. */
    connectedAt: 0,
    /** The agent on this connection acknowledges lines (it said ready with {"ack":0}). */
    acks: false,
    /** Lines written on this connection, and lines the agent acknowledged. */
    sent: 0,
    acked: 0,
    /** Lines sent before the agent said ready (an agent slower than LEGACY_AFTER_MS): acknowledged, never held. */
    untracked: 0,
    /** Per unacknowledged line, oldest first: its text (sent again as it is) and its rows' flows. */
    unacked: [],
    /** The held lines go out again on this connection once the agent is ready (they were sent on an earlier one). */
    resendDue: false,
    /** Number of the last line written in this process run (the protocol's `line`). */
    lineNo: 0,
    /** Unfinished line the agent wrote. */
    ackPart: '',
    /** Next reconnect delay; doubles per failure up to MAX_BACKOFF_MS. */
    backoffMs: 0,
    reconnect: null,
    comm: null,
    timer: null,
    /** Pending early send for a window that saw a new flow. */
    early: null,
    /** Whether a full table already forgot its quiet flows this window. */
    sweptThisWindow: false,
  };
}

const state = globalThis[STATE] ?? createState();

/** The local endpoint of a socket, cached: a socket's bound address never changes. */
function localOf(socket) {
  const cached = socket[LOCAL];
  if (cached !== undefined) return cached;
  const a = socket.address();
  // peers: remote ip -> remote port -> flow entry; the per-packet lookup, with
  // no string building (the window's table is keyed by one string per flow).
  const value = { ip: a.address, port: a.port, text: `${a.address}|${a.port}`, peers: new Map() };
  socket[LOCAL] = value;
  return value;
}

/** Windows a flow may stay quiet before the hook forgets it (and a return is news again). */
const FORGET_AFTER_WINDOWS = 30;

/** Adds one datagram to its flow's counters: two Map lookups and four additions. */
function count(socket, remoteIp, remotePort, bytes, inbound) {
  const local = socket[LOCAL] ?? localOf(socket);
  const byPort = local.peers.get(remoteIp);
  let e = byPort === undefined ? undefined : byPort.get(remotePort);
  const now = Date.now();
  if (e === undefined) {
    e = adopt(local, remoteIp, remotePort, now);
    if (e === null) return;
  } else if (e.pi === 0 && e.po === 0) {
    e.f = now;
  }
  if (inbound) {
    e.pi++;
    e.bi += bytes;
  } else {
    e.po++;
    e.bo += bytes;
  }
  e.l = now;
}

/**
 * The first packet of a (socket, peer) pair: finds or creates the flow in the
 * window's table and files it under the socket. Null when the table is full
 * or the peer is not an IP literal (a hostname given to send()).
 */
function adopt(local, remoteIp, remotePort, now) {
  if (net.isIP(remoteIp) === 0) return null;
  const key = `${local.text}|${remoteIp}|${remotePort}`;
  let e = state.flows.get(key);
  if (e === undefined) {
    if (state.flows.size >= state.maxFlows && !makeRoom()) {
      state.overflowPackets++;
      return null;
    }
    e = {
      key,
      li: local.ip,
      lp: local.port,
      ri: remoteIp,
      rp: remotePort,
      pi: 0,
      bi: 0,
      po: 0,
      bo: 0,
      f: now,
      l: now,
      q: 0,
      /** Unacknowledged lines holding deltas of this flow: it is not forgotten meanwhile. */
      u: 0,
      homes: [],
    };
    state.flows.set(key, e);
    sendSoon();
  } else if (e.pi === 0 && e.po === 0) {
    e.f = now;
  }
  // A second socket on the same local endpoint (after a close and re-bind) shares the flow.
  let byPort = local.peers.get(remoteIp);
  if (byPort === undefined) {
    byPort = new Map();
    local.peers.set(remoteIp, byPort);
  }
  byPort.set(remotePort, e);
  e.homes.push(local.peers);
  return e;
}

/**
 * A full table first forgets the flows with nothing in this window (kept only
 * to tell known clients from new ones), at most once a window so a flood of
 * new clients never costs a sweep per packet. True if that made room.
 */
function makeRoom() {
  if (state.sweptThisWindow) return false;
  state.sweptThisWindow = true;
  for (const e of state.flows.values()) {
    if (e.pi === 0 && e.po === 0 && e.u === 0) forget(e);
  }
  return state.flows.size < state.maxFlows;
}

/** Drops a quiet flow from the window's table and from every socket that filed it. */
function forget(e) {
  state.flows.delete(e.key);
  state.tags.delete(e.key);
  for (const peers of e.homes) {
    const byPort = peers.get(e.ri);
    if (byPort === undefined || byPort.get(e.rp) !== e) continue;
    byPort.delete(e.rp);
    if (byPort.size === 0) peers.delete(e.ri);
  }
}

/**
 * A new client is news: send this window within EARLY_MS instead of waiting
 * for the interval, so it shows up quickly. At most one early send is pending,
 * so a flood of new clients costs at most 1000 / EARLY_MS extra messages a second.
 */
const EARLY_MS = 50;
function sendSoon() {
  if (state.early !== null || state.intervalMs <= EARLY_MS) return;
  state.early = setTimeout(() => {
    state.early = null;
    tick();
  }, EARLY_MS);
  state.early.unref();
}

function byteLengthOf(msg) {
  if (typeof msg === 'string') return Buffer.byteLength(msg);
  if (Array.isArray(msg)) {
    let n = 0;
    for (const part of msg) n += byteLengthOf(part);
    return n;
  }
  return msg?.byteLength ?? 0;
}

/**
 * Counts one send() from its overloaded arguments:
 * send(msg[, offset, length][, port][, address][, callback]).
 */
function countSend(socket, msg, a1, a2, a3, a4) {
  let bytes;
  let portArg;
  let addressArg;
  if (typeof a1 === 'number' && typeof a2 === 'number' && !Array.isArray(msg)) {
    bytes = a2;
    portArg = a3;
    addressArg = a4;
  } else {
    bytes = byteLengthOf(msg);
    portArg = a1;
    addressArg = a2;
  }
  let port;
  let address;
  if (typeof portArg === 'number') {
    port = portArg;
    if (typeof addressArg === 'string') address = addressArg;
  } else if (typeof portArg === 'string' && /^\d+$/.test(portArg)) {
    port = Number(portArg);
    if (typeof addressArg === 'string') address = addressArg;
  } else {
    // A connected socket sends to its peer.
    const peer = socket.remoteAddress();
    port = peer.port;
    address = peer.address;
  }
  if (address === undefined || address === '') {
    address = socket.type === 'udp6' ? '::1' : '127.0.0.1';
  }
  // Hostnames are resolved later by dgram; adopt() counts only IP literals,
  // since the flow key must be the address the peer is seen from.
  count(socket, address, port, bytes, false);
}

const proto = dgram.Socket.prototype;
const originalEmit = proto.emit;
const originalSend = proto.send;

function patch() {
  proto.emit = function udpwatchEmit(event, msg, rinfo) {
    if (event === 'message') {
      try {
        count(this, rinfo.address, rinfo.port, rinfo.size ?? msg.length, true);
      } catch {
        // Never let counting disturb the daemon.
      }
    }
    // biome-ignore lint/complexity/noArguments: forwards every argument without an array per packet
    return originalEmit.apply(this, arguments);
  };
  proto.send = function udpwatchSend(msg, a1, a2, a3, a4) {
    try {
      countSend(this, msg, a1, a2, a3, a4);
    } catch {
      // Unbound or closed socket, odd arguments: dgram itself will report it.
    }
    // biome-ignore lint/complexity/noArguments: forwards every argument as given
    return originalSend.apply(this, arguments);
  };
}

/** First reconnect delay after a failure, and the most it backs off to. */
const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 1000;
/** An agent that has not said ready this long after the connection is an older one that never acknowledges. */
const LEGACY_AFTER_MS = 1000;
/** Unacknowledged lines at most; beyond, windows are held back (still counting) until acks come. */
const MAX_UNACKED = 64;
/** MAX_HOOK_ACK_BYTES of contract/hook-protocol.ts. */
const MAX_ACK_LINE = 64;

function connect() {
  if (state.connecting || state.connected) return;
  if (state.reconnect !== null) {
    clearTimeout(state.reconnect);
    state.reconnect = null;
  }
  state.connecting = true;
  try {
    const conn = net.createConnection({ path: state.socketPath });
    conn.unref();
    conn.setNoDelay?.(true);
    conn.setEncoding('utf8');
    state.conn = conn;
    conn.on('connect', () => {
      state.connecting = false;
      state.connected = true;
      state.connectedAt = Date.now();
      state.acks = false;
      state.sent = 0;
      state.acked = 0;
      state.untracked = 0;
      state.ackPart = '';
    });
    conn.on('error', () => {});
    conn.on('close', () => {
      if (state.conn !== conn) return;
      state.conn = null;
      state.connecting = false;
      state.connected = false;
      // Unacknowledged lines go out again, as they are, on the next connection.
      if (state.unacked.length > 0) state.resendDue = true;
      scheduleReconnect();
    });
    conn.on('data', (chunk) => {
      try {
        onAgentData(conn, chunk);
      } catch {
        conn.destroy();
      }
    });
  } catch {
    state.connecting = false;
    scheduleReconnect();
  }
}

/** Tries again soon, then less and less often (with jitter, so daemons do not all come at once). */
function scheduleReconnect() {
  if (state.reconnect !== null) return;
  const base = state.backoffMs === 0 ? MIN_BACKOFF_MS : state.backoffMs;
  state.backoffMs = Math.min(base * 2, MAX_BACKOFF_MS);
  state.reconnect = setTimeout(
    () => {
      state.reconnect = null;
      connect();
    },
    Math.round(base * (0.8 + 0.4 * Math.random())),
  );
  state.reconnect.unref();
}

/** Reads the agent's acknowledgement lines ({"ack":n}); anything else ends the connection. */
function onAgentData(conn, chunk) {
  let text = state.ackPart + chunk;
  let nl = text.indexOf('\n');
  while (nl >= 0) {
    const line = text.slice(0, nl);
    text = text.slice(nl + 1);
    const ack = JSON.parse(line)?.ack;
    if (!Number.isSafeInteger(ack) || ack < state.acked || ack > state.sent) {
      conn.destroy();
      return;
    }
    if (!state.acks) {
      state.acks = true;
      state.backoffMs = 0;
      // Lines sent before the agent said ready are not held; the next ones are.
      state.untracked = state.sent;
      resendHeld(conn);
      // Counts held while no agent listened go out now, not at the window's end.
      sendSoon();
    }
    while (state.acked < ack) {
      if (state.acked >= state.untracked) {
        const held = state.unacked.shift();
        if (held !== undefined) for (const r of held.rows) r[0].u--;
      }
      state.acked++;
    }
    nl = text.indexOf('\n');
  }
  if (text.length > MAX_ACK_LINE) {
    conn.destroy();
    return;
  }
  state.ackPart = text;
}

/**
 * Sends the lines an earlier connection never saw acknowledged again, first
 * and unchanged. An agent that acknowledges holds them again until it does;
 * an older one that never does gets them once.
 */
function resendHeld(conn) {
  if (!state.resendDue) return;
  state.resendDue = false;
  for (const held of state.unacked) {
    conn.write(held.text);
    state.sent++;
  }
  if (!state.acks) {
    for (const held of state.unacked) for (const r of held.rows) r[0].u--;
    state.unacked = [];
  }
}

/** Whether a window may go out now: an agent is there, has said ready (or is an older one), and keeps up. */
function canSend(conn) {
  if (!state.connected || conn === null) return false;
  if (!state.acks && Date.now() - state.connectedAt < LEGACY_AFTER_MS) return false;
  return conn.writableLength < state.maxBuffered && state.unacked.length < MAX_UNACKED;
}

/** The part of a count one row may carry; the rest waits for the next report. */
function take(n, max) {
  return Math.min(n, max);
}

/**
 * Ends the current window: sends its deltas, or keeps counting them while no
 * agent can take them. Flows stay in the table with zeroed counters (so only
 * a really new client triggers an early send) until they have been quiet for
 * FORGET_AFTER_WINDOWS windows.
 */
function tick() {
  try {
    state.sweptThisWindow = false;
    const conn = state.conn;
    if (!canSend(conn)) {
      for (const e of state.flows.values()) {
        if (e.pi === 0 && e.po === 0 && e.u === 0 && ++e.q > FORGET_AFTER_WINDOWS) forget(e);
      }
      if (!state.connected && !state.connecting) connect();
      return;
    }
    // An older agent (no acknowledgements) gets the held lines before new ones.
    resendHeld(conn);
    const overflow = take(state.overflowPackets, MAX_DROP);
    state.overflowPackets -= overflow;
    const rows = [];
    const held = [];
    // No row may be later than the window's end, even if the clock stepped back.
    let at = Date.now();
    for (const [key, e] of state.flows) {
      if (e.pi === 0 && e.po === 0) {
        if (e.u === 0 && ++e.q > FORGET_AFTER_WINDOWS) forget(e);
        continue;
      }
      e.q = 0;
      const pi = take(e.pi, MAX_PACKETS);
      const po = take(e.po, MAX_PACKETS);
      const bi = take(e.bi, MAX_BYTES);
      const bo = take(e.bo, MAX_BYTES);
      rows.push(flowRow(e, pi, bi, po, bo, state.tags.get(key)));
      held.push([e, pi, bi, po, bo, e.f, e.l]);
      if (e.l > at) at = e.l;
      if (e.f > at) at = e.f;
      e.pi -= pi;
      e.bi -= bi;
      e.po -= po;
      e.bo -= bo;
    }
    state.comm ??= readComm();
    // A window with more rows than one message may hold goes out in several;
    // the window's overflow is counted in the first only.
    let first = 0;
    do {
      const part = first === 0 ? overflow : 0;
      const text = `${JSON.stringify(message(at, rows.slice(first, first + MAX_ROWS), part))}\n`;
      conn.write(text);
      state.sent++;
      if (state.acks) {
        const mine = held.slice(first, first + MAX_ROWS);
        for (const r of mine) r[0].u++;
        state.unacked.push({ rows: mine, text });
      }
      first += MAX_ROWS;
    } while (first < rows.length);
  } catch {
    // A failed window is lost, never the daemon.
  }
}

/*
 * The message format is defined in contract/hook-protocol.ts (documented in
 * docs/hook-protocol.md). This file cannot import it (it must run without a
 * TypeScript loader), so the builders below follow it by hand; keep them in
 * step with HookMessageSchema and FlowRowSchema, and bump PROTOCOL only as
 * its version rule says.
 */

/** MAX_HOOK_ROWS of contract/hook-protocol.ts. */
const MAX_ROWS = 10_000;
/** MAX_ROW_PACKETS, MAX_ROW_BYTES and MAX_DROP_COUNTER of contract/hook-protocol.ts. */
const MAX_PACKETS = 4_294_967_295;
const MAX_BYTES = 2 ** 48;
const MAX_DROP = 2 ** 48;

/** One flow's window as a row: positions as FLOW_ROW_FIELDS of contract/hook-protocol.ts. */
function flowRow(e, pi, bi, po, bo, tag) {
  // A link-local peer arrives with a zone index (fe80::1%eth0), which the protocol does not carry.
  const ri = e.ri.includes('%') ? e.ri.slice(0, e.ri.indexOf('%')) : e.ri;
  const li = e.li.includes('%') ? e.li.slice(0, e.li.indexOf('%')) : e.li;
  const row = [li, e.lp, ri, e.rp, pi, bi, po, bo, e.f, e.l];
  if (tag !== undefined) row.push(tag);
  return row;
}

/** One message of the window ending at `at`: fields as HookMessageSchema of contract/hook-protocol.ts. */
function message(at, rows, overflow) {
  return {
    v: PROTOCOL,
    pid: process.pid,
    process: state.comm,
    at,
    flows: rows,
    overflowPackets: overflow,
    droppedFlows: state.droppedFlows,
    droppedPackets: state.droppedPackets,
    line: ++state.lineNo,
  };
}

/**
 * Tags the flow between `socket` and a remote endpoint with an application
 * client id (for example a session or customer id); it travels with the flow's
 * lines. Returns false when the tag table is full or the arguments are bad.
 */
export function tagClient(socket, remoteAddress, remotePort, clientId) {
  try {
    // The protocol's bounds of a client id: a row carrying a bad one would be skipped.
    if (
      typeof clientId !== 'string' ||
      clientId.length === 0 ||
      clientId.length > 256 ||
      CONTROL_RE.test(clientId)
    ) {
      return false;
    }
    const key = `${localOf(socket).text}|${remoteAddress}|${remotePort}`;
    if (!state.tags.has(key) && state.tags.size >= state.maxFlows) return false;
    state.tags.set(key, clientId);
    return true;
  } catch {
    return false;
  }
}

/** Forgets a flow's client id (call when the application session ends). */
export function untagClient(socket, remoteAddress, remotePort) {
  try {
    state.tags.delete(`${localOf(socket).text}|${remoteAddress}|${remotePort}`);
  } catch {
    // ignore
  }
}

/** Counters of the hook itself, for diagnostics. */
export function hookStats() {
  return {
    connected: state.connected,
    /** Whether the agent on the connection acknowledges reports. */
    acknowledged: state.acks,
    /** Reports sent but not acknowledged yet (their counts are re-sent if the connection ends). */
    unacknowledged: state.unacked.length,
    socketPath: state.socketPath,
    pendingFlows: state.flows.size,
    droppedFlows: state.droppedFlows,
    droppedPackets: state.droppedPackets,
    line: ++state.lineNo,
  };
}

if (globalThis[STATE] === undefined) {
  globalThis[STATE] = state;
  try {
    patch();
    state.timer = setInterval(tick, state.intervalMs);
    state.timer.unref();
    connect();
  } catch {
    // If the hook cannot install itself, the daemon runs unwatched.
  }
}
