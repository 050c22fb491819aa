/**
 * The agent's configuration: defaults, overridden by a JSON file, overridden
 * by environment variables, overridden by command-line flags. Validated with
 * zod; an error names the offending field and where it came from.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { DEFAULTS } from '../contract/resources.js';
import { MAX_DRAIN_SECONDS } from './ebpf-source.js';
import { DEFAULT_HOOK_SOCKET } from './hook-receiver.js';
import { DEFAULT_HOOK_SOCKET_GROUP } from './hook-socket-file.js';

/** Where the agent keeps its id, sequence reservation and spool. */
export const DEFAULT_STATE_DIR = '/var/lib/udpwatch';
/** Config file read when none is named and it exists. */
export const DEFAULT_CONFIG_FILE = '/etc/udpwatch/agent.json';

/** Environment variables the agent reads. */
export const AGENT_ENV = {
  config: 'UDPWATCH_AGENT_CONFIG',
  stream: 'UDPWATCH_STREAM',
  region: 'AWS_REGION',
  endpoint: 'UDPWATCH_KINESIS_ENDPOINT',
  stateDir: 'UDPWATCH_STATE_DIR',
  hookSocket: 'UDPWATCH_HOOK_SOCKET',
  hookSocketGroup: 'UDPWATCH_HOOK_SOCKET_GROUP',
  interval: 'UDPWATCH_INTERVAL',
  sealInterval: 'UDPWATCH_SEAL_INTERVAL',
  maxFlows: 'UDPWATCH_MAX_FLOWS',
  host: 'UDPWATCH_HOST',
  services: 'UDPWATCH_SERVICES',
} as const;

const NAME = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^\s\u0000-\u001f]+$/, 'must have no spaces or control characters');

const ServiceRuleSchema = z
  .object({
    name: NAME,
    port: z.number().int().min(1).max(65_535).optional(),
    process: z.string().min(1).max(64).optional(),
    timeoutSeconds: z.number().int().min(1).max(86_400).optional(),
    sampleRate: z.number().int().min(1).max(1_000_000).optional(),
  })
  .strict()
  .refine((r) => r.port !== undefined || r.process !== undefined, {
    message: 'a service rule needs a port, a process, or both',
  });

export const AgentConfigSchema = z
  .object({
    stream: z.string().min(1).optional(),
    region: z.string().min(1).optional(),
    endpoint: z.url().optional(),
    host: NAME.max(253).default(hostname()),
    stateDir: z.string().min(1).default(DEFAULT_STATE_DIR),
    hookSocket: z.string().min(1).default(DEFAULT_HOOK_SOCKET),
    /**
     * Group (name or numeric gid) whose members' daemons may connect to the
     * hook socket (mode 0660); when it does not exist the socket is 0600.
     */
    hookSocketGroup: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/, 'must be a group name or a numeric gid')
      .default(DEFAULT_HOOK_SOCKET_GROUP),
    intervalSeconds: z.number().min(0.05).max(60).default(1),
    /** One heartbeat line a minute keeps the agents list fresh at one record a minute. */
    heartbeatSeconds: z.number().min(0.1).max(3600).default(60),
    /**
     * 60: one main block part per service and minute, sent at this agent's
     * offset after the minute ends (the cheap default). Less (tests, local
     * mode): everything pending is sealed that often, with no offset.
     */
    sealIntervalSeconds: z.number().min(0.05).max(60).default(60),
    /** Early parts for clients never reported before: a token bucket per agent. */
    earlyParts: z
      .object({
        /** Early parts at once; 0 turns them off (new clients wait for the main part). */
        burst: z.number().int().min(0).max(100).default(2),
        /** One more early part allowed per this many seconds. */
        refillSeconds: z.number().min(0.1).max(3600).default(30),
      })
      .strict()
      .default({ burst: 2, refillSeconds: 30 }),
    defaultTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(86_400)
      .default(DEFAULTS.activeWindowSeconds),
    maxFlows: z.number().int().min(1).max(10_000_000).default(100_000),
    /** Cap of the shipper's retry backoff. */
    retryMaxSeconds: z.number().min(0.01).max(300).default(10),
    spoolMaxBytes: z
      .number()
      .int()
      .min(1024)
      .default(256 * 1024 * 1024),
    sources: z
      .object({
        hook: z.boolean().default(true),
        /** Needs root, tracefs and kernel BTF (docs/ebpf.md) and the proc source's sockets. */
        ebpf: z.boolean().default(true),
        conntrack: z.boolean().default(true),
        proc: z.boolean().default(true),
      })
      .strict()
      .default({ hook: true, ebpf: true, conntrack: true, proc: true }),
    ebpf: z
      .object({
        /** Flows one drain interval may hold in the kernel; packets of more are counted as refused. */
        maxFlows: z.number().int().min(16).max(1_000_000).default(65_536),
        /** Count 1 in N packets (counters scaled by N, flows carry sampleRate N). */
        sampleRate: z.number().int().min(1).max(1_000_000).default(1),
        /**
         * How often bpftrace prints and clears its counters (default: see ebpfDrainSeconds). Its
         * CPU grows with active flows times drains a second: 5 costs a fifth of 1 (docs/ebpf.md).
         */
        drainSeconds: z.number().min(0.1).max(MAX_DRAIN_SECONDS).optional(),
      })
      .strict()
      .default({ maxFlows: 65_536, sampleRate: 1 }),
    services: z.array(ServiceRuleSchema).max(10_000).default([]),
  })
  .strict();

/** The validated configuration. */
export type AgentConfig = z.output<typeof AgentConfigSchema>;
/** Raw configuration before validation (file, env and flags merge into this). */
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

/** Agent intervals one eBPF drain spans unless `ebpf.drainSeconds` is set. */
const DRAIN_INTERVALS = 5;

/**
 * How often bpftrace drains its counters: as configured, else every fifth
 * interval, at most 5 s (5 s at the default 1 s interval). bpftrace's CPU is
 * per active flow per drain, so this costs a fifth of draining every
 * interval; the agent's cycles between drains still read the other sources.
 */
export function ebpfDrainSeconds(config: AgentConfig): number {
  return (
    config.ebpf.drainSeconds ??
    Math.min(MAX_DRAIN_SECONDS, DRAIN_INTERVALS * config.intervalSeconds)
  );
}

/** A configuration problem, naming the field and its origin; the CLI exits 2 on it. */
export class ConfigError extends Error {}

function describe(error: z.ZodError, origin: string): string {
  return error.issues
    .map((i) => {
      const field = i.path.map(String).join('.');
      return field ? `${field}: ${i.message}` : i.message;
    })
    .map((m) => `${origin}: ${m}`)
    .join('; ');
}

/** Parses `53=dns,process:named=dns,5353/avahi-daemon=mdns` into service rules. */
export function parseServicesEnv(text: string): Record<string, unknown>[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((item) => {
      const eq = item.lastIndexOf('=');
      if (eq <= 0) {
        throw new ConfigError(
          `${AGENT_ENV.services}: "${item}" is not <port>=<name>, process:<name>=<name> or <port>/<process>=<name>`,
        );
      }
      const match = item.slice(0, eq);
      const name = item.slice(eq + 1);
      if (match.startsWith('process:')) return { name, process: match.slice(8) };
      const [port, process] = match.split('/', 2);
      const portNumber = Number(port);
      if (!Number.isInteger(portNumber)) {
        throw new ConfigError(`${AGENT_ENV.services}: "${item}" has a bad port "${port}"`);
      }
      return process ? { name, port: portNumber, process } : { name, port: portNumber };
    });
}

function numberFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new ConfigError(`${name}: "${raw}" is not a number`);
  return n;
}

/** Reads the environment's overrides. */
export function configFromEnv(env: NodeJS.ProcessEnv): AgentConfigInput {
  const out: Record<string, unknown> = {};
  const set = (key: string, value: unknown) => {
    if (value !== undefined && value !== '') out[key] = value;
  };
  set('stream', env[AGENT_ENV.stream]);
  set('region', env[AGENT_ENV.region]);
  set('endpoint', env[AGENT_ENV.endpoint]);
  set('stateDir', env[AGENT_ENV.stateDir]);
  set('hookSocket', env[AGENT_ENV.hookSocket]);
  set('hookSocketGroup', env[AGENT_ENV.hookSocketGroup]);
  set('host', env[AGENT_ENV.host]);
  set('intervalSeconds', numberFromEnv(env, AGENT_ENV.interval));
  set('sealIntervalSeconds', numberFromEnv(env, AGENT_ENV.sealInterval));
  set('maxFlows', numberFromEnv(env, AGENT_ENV.maxFlows));
  const services = env[AGENT_ENV.services];
  if (services) set('services', parseServicesEnv(services));
  return out as AgentConfigInput;
}

/** Reads and parses a JSON config file (syntax only; validation comes after merging). */
export function readConfigFile(path: string): AgentConfigInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config ${path}: ${(err as Error).message}`);
  }
  try {
    const json: unknown = JSON.parse(text);
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new Error('top level must be an object');
    }
    return json as AgentConfigInput;
  } catch (err) {
    throw new ConfigError(`config ${path}: not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Builds the configuration from an optional file, the environment and flag
 * overrides. `configFile` undefined means the env variable or the default
 * path, the latter only when it exists.
 */
export function loadAgentConfig(options: {
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: AgentConfigInput;
}): AgentConfig {
  const env = options.env ?? process.env;
  const path = options.configFile ?? env[AGENT_ENV.config];
  let fromFile: AgentConfigInput = {};
  let origin = 'defaults';
  if (path) {
    fromFile = readConfigFile(path);
    origin = `config ${path}`;
    const fileCheck = AgentConfigSchema.safeParse(fromFile);
    if (!fileCheck.success) throw new ConfigError(describe(fileCheck.error, origin));
  } else {
    try {
      fromFile = readConfigFile(DEFAULT_CONFIG_FILE);
      origin = `config ${DEFAULT_CONFIG_FILE}`;
    } catch {
      fromFile = {};
    }
  }
  const fromEnv = configFromEnv(env);
  const envCheck = AgentConfigSchema.safeParse(fromEnv);
  if (!envCheck.success) throw new ConfigError(describe(envCheck.error, 'environment'));
  const merged = { ...fromFile, ...fromEnv, ...(options.overrides ?? {}) };
  const result = AgentConfigSchema.safeParse(merged);
  if (!result.success) throw new ConfigError(describe(result.error, `${origin} + env + flags`));
  return result.data;
}
