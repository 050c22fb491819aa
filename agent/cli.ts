/**
 * `udpwatch-agent`: `run` ships sealed activity blocks to Kinesis; `snapshot` prints
 * the host's UDP sockets and their known peers without AWS.
 *
 * Exit codes: 0 done, 1 runtime failure, 2 bad flag, argument or config.
 */
import { connect } from 'node:net';
import { basename } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { SEND_SPREAD_SECONDS } from '../contract/block.js';
import type { FlowSource } from '../contract/wire.js';
import { createAgent } from './agent.js';
import {
  type AgentConfig,
  type AgentConfigInput,
  ConfigError,
  ebpfDrainSeconds,
  loadAgentConfig,
} from './agent-config.js';
import { loadAgentId, markRunning, markStopped, SeqAllocator } from './agent-state.js';
import { sourceStates } from './blind-spots.js';
import { checkpointLimits } from './checkpoint-codec.js';
import { CheckpointFile } from './checkpoint-file.js';
import { createConntrackSource } from './conntrack-source.js';
import { DiskSpool } from './disk-spool.js';
import { type HookReceiver, startHookReceiver } from './hook-receiver.js';
import { HookSocketInUseError, HookSocketPathError } from './hook-socket-file.js';
import { openHookSource } from './hook-source.js';
import { scanHostSockets } from './host-sockets.js';
import { createKernelSources } from './kernel-sources.js';
import { DEFAULT_CALL_TIMEOUT_MS, KinesisShipper } from './kinesis-shipper.js';
import { readConntrackRules } from './nft-ruleset.js';
import type { PeerObservation } from './observation.js';
import { readEphemeralPorts } from './outbound-flows.js';
import { peerObservation } from './proc-source.js';
import { createPidNamer } from './process-identity.js';
import { buildSnapshot, formatSnapshot } from './snapshot.js';

/** A usage error: printed with a hint, exit code 2. */
class UsageError extends Error {}

const MAIN_HELP = `udpwatch-agent: see every UDP client of every daemon on this host

Usage:
  udpwatch-agent run [flags]        ship activity blocks to Kinesis
  udpwatch-agent snapshot [flags]   print UDP sockets and their peers (no AWS)
  udpwatch-agent help [command]

Run 'udpwatch-agent <command> --help' for a command's flags.
`;

const RUN_HELP = `udpwatch-agent run: ship this host's UDP flows to Kinesis

Usage: udpwatch-agent run [flags]

Flags (each overrides the config file and the environment):
  --stream NAME|ARN    Kinesis stream (env UDPWATCH_STREAM)
  --region REGION      AWS region (env AWS_REGION; taken from an ARN when given)
  --endpoint URL       Kinesis endpoint override, e.g. local mode http://127.0.0.1:4567
                       (env UDPWATCH_KINESIS_ENDPOINT)
  --config FILE        JSON config file (env UDPWATCH_AGENT_CONFIG,
                       default /etc/udpwatch/agent.json when it exists)
  --state-dir DIR      agent id, sequence numbers, spool and checkpoint
                       (default /var/lib/udpwatch)
  --hook-socket PATH   where hooked Node daemons report (default /run/udpwatch/hook.sock)
  --interval SECONDS   how often the sources are read (default 1); blocks are sealed
                       per sealIntervalSeconds in the config (default 60); eBPF
                       drains every fifth interval, at most 5 s (ebpf.drainSeconds)
  -h, --help           this help

Credentials come from the default AWS chain (env, profile, instance role).
Stops cleanly on SIGTERM/SIGINT, spooling what it could not send.
`;

const SNAPSHOT_HELP = `udpwatch-agent snapshot: UDP sockets with their processes and known peers

Usage: udpwatch-agent snapshot [--json] [--for DURATION] [--config FILE] [--hook-socket PATH]

Flags:
  --json               machine-readable output (stable field names)
  --for DURATION       watch this long (e.g. 2s, 500ms) to see peers' traffic:
                       conntrack counters over the window, and reports of hooked
                       daemons (when no agent holds the hook socket)
  --config FILE        config file (for the hook socket path)
  --hook-socket PATH   hook socket to listen on while watching
  -h, --help           this help
`;

type Out = (text: string) => void;

/** Parses `2s`, `500ms`, `1m` or a bare number of seconds into ms. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--for: "${text}" is not a duration like 2s or 500ms`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = unit === 'ms' ? n : unit === 'm' ? n * 60_000 : n * 1000;
  if (ms > 3_600_000) throw new UsageError('--for: at most 1h');
  return ms;
}

/** Parsed flags by name: strings, or true for boolean flags. */
type Flags = Record<string, string | boolean | undefined>;

function parse(args: string[], options: ParseArgsConfig['options']): { values: Flags } {
  try {
    const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
    return { values: values as Flags };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function regionOf(stream: string | undefined): string | undefined {
  // arn:aws:kinesis:<region>:<account>:stream/<name>
  return stream?.startsWith('arn:') ? stream.split(':')[3] : undefined;
}

function kinesisFor(config: AgentConfig): KinesisClient {
  const region =
    config.region ?? regionOf(config.stream) ?? (config.endpoint ? 'us-east-1' : undefined);
  if (!region)
    throw new ConfigError('no AWS region: set --region, AWS_REGION, or "region" in the config');
  const localCreds =
    config.endpoint && !process.env.AWS_ACCESS_KEY_ID && !process.env.AWS_PROFILE
      ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }
      : {};
  return new KinesisClient({
    region,
    endpoint: config.endpoint,
    // The shipper does its own retries, per record and in order.
    maxAttempts: 1,
    ...localCreds,
    // Records are on disk before a call carries them: a hung call only delays them.
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 3_000,
      requestTimeout: DEFAULT_CALL_TIMEOUT_MS,
    }),
  });
}

/**
 * Longest an observation can be in the agent's memory before it is sealed and
 * on disk, which is what a crash can lose: a hook window (1 s) and a cycle to
 * reach the table, then the wait for its seal moment (a minute's main part:
 * the minute, its grace and this agent's send offset; a shorter seal interval:
 * that interval and the cycle that seals it).
 */
export function unsealedBoundSeconds(config: AgentConfig): number {
  const sealWait =
    config.sealIntervalSeconds >= 60
      ? 60 + config.intervalSeconds + 2 + SEND_SPREAD_SECONDS
      : config.sealIntervalSeconds + config.intervalSeconds;
  return Math.ceil(1 + config.intervalSeconds + sealWait);
}

/**
 * Longest an eBPF observation is only in memory with the checkpoint written:
 * the drain interval bpftrace is counting when the agent dies. Each drain
 * cues a cycle, whose checkpoint holds the drained counts a few tens of ms
 * after the drain interval's end (the drain tick, bpftrace's print and the
 * write), and a checkpoint is written every cycle. Hooked daemons re-send
 * what was not checkpointed (their lines are acknowledged after it), and
 * conntrack's checkpointed counters let the next run count the rest.
 */
export function crashLossBoundSeconds(config: AgentConfig): number {
  return Math.min(unsealedBoundSeconds(config), ebpfDrainSeconds(config));
}

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} udpwatch-agent: ${message}\n`);
}

async function runCommand(args: string[], out: Out): Promise<number> {
  const { values } = parse(args, {
    stream: { type: 'string' },
    region: { type: 'string' },
    endpoint: { type: 'string' },
    config: { type: 'string' },
    'state-dir': { type: 'string' },
    'hook-socket': { type: 'string' },
    interval: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    out(RUN_HELP);
    return 0;
  }
  const overrides: AgentConfigInput = {};
  if (values.stream !== undefined) overrides.stream = String(values.stream);
  if (values.region !== undefined) overrides.region = String(values.region);
  if (values.endpoint !== undefined) overrides.endpoint = String(values.endpoint);
  if (values['state-dir'] !== undefined) overrides.stateDir = String(values['state-dir']);
  if (values['hook-socket'] !== undefined) overrides.hookSocket = String(values['hook-socket']);
  if (values.interval !== undefined) {
    const n = Number(values.interval);
    if (!Number.isFinite(n))
      throw new UsageError(`--interval: "${values.interval}" is not a number of seconds`);
    overrides.intervalSeconds = n;
  }
  const config = loadAgentConfig({
    configFile: values.config === undefined ? undefined : String(values.config),
    overrides,
  });
  if (!config.stream) {
    throw new ConfigError('no stream: set --stream, UDPWATCH_STREAM, or "stream" in the config');
  }
  const kinesis = kinesisFor(config);
  const agentId = loadAgentId(config.stateDir);
  const unclean = markRunning(config.stateDir);
  const checkpoint = new CheckpointFile(
    config.stateDir,
    agentId,
    checkpointLimits(config.maxFlows),
  );
  dieAfterCheckpointForTests(checkpoint);
  const spool = new DiskSpool(`${config.stateDir}/spool`, config.spoolMaxBytes, log);
  const shipper = new KinesisShipper({
    kinesis,
    stream: config.stream,
    spool,
    backoffMaxMs: config.retryMaxSeconds * 1000,
    log,
  });
  // Conntrack and eBPF attribute flows to the sockets of the proc source's latest scan.
  const { proc, conntrack, ebpf } = createKernelSources(config, log);
  // Before the hook listens: a hook may send lines again that this checkpoint already counted.
  const found = checkpoint.read();
  let hook: Awaited<ReturnType<typeof openHookSource>>;
  try {
    hook = config.sources.hook
      ? await openHookSource(
          config.hookSocket,
          config.hookSocketGroup,
          log,
          found.found === 'ok' ? found.state.hookLines : undefined,
        )
      : undefined;
  } catch (err) {
    if (!(err instanceof HookSocketInUseError || err instanceof HookSocketPathError)) throw err;
    kinesis.destroy();
    log(`not starting: ${err.message}`);
    return 1;
  }
  const ephemeral = readEphemeralPorts();
  if (ephemeral.problem) {
    log(
      `${ephemeral.problem}: taking ports ${ephemeral.range.low}-${ephemeral.range.high} as ephemeral (flows from them to lower ports are outbound, no service's)`,
    );
  }
  const agent = createAgent(config, {
    agentId,
    ephemeralPorts: ephemeral.range,
    proc,
    conntrack,
    ebpf,
    hook,
    shipper,
    conntrackRules: () => readConntrackRules(),
    seq: new SeqAllocator(config.stateDir, undefined, log),
    clock: Date.now,
    nameOfPid: config.sources.proc ? createPidNamer() : undefined,
    checkpoint,
    log,
  });
  const restored = found.found === 'ok' ? await agent.restore(found.state, unclean !== null) : null;
  for (const bad of found.setAside) {
    log(
      `checkpoint ${bad.path} skipped (${bad.reason}), set aside as ${basename(bad.path)}.bad: what the previous run held unsealed and its loss count are not restored`,
    );
  }
  if (unclean !== null) {
    // Sealed records were on disk (the spool); the checkpoint held the unsealed rest up to its write.
    const since = unclean > 0 ? ` (started ${new Date(unclean).toISOString()})` : '';
    log(
      restored
        ? `the previous run${since} did not stop cleanly (killed or crashed): its spool is delivered and its checkpoint restored (${restored.endpoints} unsealed endpoints sealed now, ${restored.records} records spooled); ${config.sources.ebpf ? `what eBPF observed in the last ${crashLossBoundSeconds(config)} s before it died, after that checkpoint, is lost` : 'nothing it observed is lost'} (hooked daemons send theirs again, conntrack's counters go on from it)`
        : `the previous run${since} did not stop cleanly (killed or crashed): its spool is delivered, but what it observed in the last ${unsealedBoundSeconds(config)} s before it died, not yet sealed, is lost (no checkpoint to restore)`,
    );
  }
  await agent.tick();
  agent.start();
  // bpftrace compiles for seconds: the other sources run meanwhile, and
  // sources() lists ebpf once it is attached.
  void ebpf?.start();
  const active = agent.sources();
  const described = active.map((s) => (s === 'hook' ? `hook (${config.hookSocket})` : s));
  log(
    `started: agent ${agentId} on ${config.host}, stream ${config.stream}${config.endpoint ? ` at ${config.endpoint}` : ''}, sources: ${described.join(', ') || 'none'}; ${spool.stats().records} spooled records to deliver`,
  );
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log(`${sig}: stopping`);
      resolve();
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
  await agent.stop();
  await checkpoint.close();
  markStopped(config.stateDir);
  kinesis.destroy();
  const st = shipper.stats();
  log(`stopped: ${st.sentRecords} records sent, ${st.spooledRecords} records left in the spool`);
  return 0;
}

/**
 * Test-only fault (docs/agent.md, Durability bound): with
 * UDPWATCH_TEST_DIE_AFTER_CHECKPOINT=N the agent kills itself (SIGKILL) right
 * after the Nth checkpoint holding pending endpoints is durable, before the
 * hook lines it holds are acknowledged: the one instant no real fault can be
 * aimed at, where a hook sends lines again that the checkpoint already holds.
 */
function dieAfterCheckpointForTests(checkpoint: CheckpointFile): void {
  const n = Number(process.env.UDPWATCH_TEST_DIE_AFTER_CHECKPOINT ?? '');
  if (!Number.isSafeInteger(n) || n <= 0) return;
  let left = n;
  const write = checkpoint.write.bind(checkpoint);
  checkpoint.write = async (state) => {
    await write(state);
    if (state.pending.some((g) => g.endpoints.length > 0) && --left === 0) {
      process.kill(process.pid, 'SIGKILL');
    }
  };
}

/** Whether some process already listens on a Unix socket path (a running agent). */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ path });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

async function snapshotCommand(args: string[], out: Out): Promise<number> {
  const { values } = parse(args, {
    json: { type: 'boolean' },
    for: { type: 'string' },
    config: { type: 'string' },
    'hook-socket': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    out(SNAPSHOT_HELP);
    return 0;
  }
  const watchMs = values.for === undefined ? 0 : parseDuration(String(values.for));
  const overrides: AgentConfigInput = {};
  if (values['hook-socket'] !== undefined) overrides.hookSocket = String(values['hook-socket']);
  const config = loadAgentConfig({
    configFile: values.config === undefined ? undefined : String(values.config),
    overrides,
  });
  const scan = await scanHostSockets();
  const sources: Record<FlowSource, string> = {
    proc: `${scan.sockets.length} sockets`,
    conntrack: 'not read',
    hook: watchMs > 0 ? 'not listening' : 'only with --for',
    ebpf: 'only with run (bpftrace compiles for seconds)',
  };
  const conntrack = createConntrackSource({ listeners: () => scan.listeners });
  const observations: PeerObservation[] = [];
  let hook: HookReceiver | undefined;
  if (watchMs > 0) {
    if (await socketInUse(config.hookSocket)) {
      sources.hook = `${config.hookSocket} is held by a running agent`;
    } else {
      try {
        hook = await startHookReceiver(config.hookSocket, { group: config.hookSocketGroup });
        sources.hook = `listening on ${config.hookSocket}`;
      } catch (err) {
        sources.hook = `cannot listen on ${config.hookSocket}: ${(err as Error).message}`;
      }
    }
  }
  observations.push(...(await conntrack.poll()));
  if (watchMs > 0) {
    await new Promise((r) => setTimeout(r, watchMs));
    observations.push(...(await conntrack.poll()));
  }
  if (hook) {
    observations.push(...hook.drain());
    sources.hook = `${hook.stats().pids.length} hooked daemons reported`;
    await hook.close();
  }
  const ct = conntrack.status();
  sources.conntrack = ct.available ? `via ${ct.via}` : `unavailable (${ct.reason})`;
  if (ct.available) {
    // Readable is not seeing: say when the ruleset leaves conntrack blind.
    const read = await readConntrackRules();
    const state = sourceStates({
      hook: false,
      proc: true,
      ebpf: { off: '' },
      conntrack: ct,
      rules: read.rules,
    }).find((x) => x.source === 'conntrack');
    if (!read.rules) sources.conntrack += ` (ruleset unknown: ${read.reason})`;
    else if (state && state.state !== 'live')
      sources.conntrack += `, ${state.state}: ${state.reason}`;
  }
  const now = Date.now();
  for (const s of scan.sockets) if (s.connected) observations.push(peerObservation(s, now));
  const snap = buildSnapshot(scan, observations, sources, Date.now());
  // Connected sockets list their one peer on their own line already.
  for (const s of snap.sockets)
    if (s.state === 'ESTAB') s.peers = s.peers.filter((p) => p.source !== 'proc');
  out(values.json ? `${JSON.stringify(snap, null, 2)}\n` : formatSnapshot(snap));
  return 0;
}

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
export async function main(
  argv: string[],
  out: Out = (t) => process.stdout.write(t),
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await runCommand(rest, out);
      case 'snapshot':
        return await snapshotCommand(rest, out);
      case undefined:
      case 'help':
      case '--help':
      case '-h': {
        const topic = rest[0];
        out(topic === 'run' ? RUN_HELP : topic === 'snapshot' ? SNAPSHOT_HELP : MAIN_HELP);
        return command === undefined ? 2 : 0;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(
        `udpwatch-agent: ${err.message}\nRun 'udpwatch-agent --help' for usage.\n`,
      );
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`udpwatch-agent: bad configuration: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`udpwatch-agent: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}
