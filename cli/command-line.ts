/**
 * The command line: which commands exist, which flags each takes, their help
 * texts, and parsing argv into a checked request (or a usage error naming
 * the flag at fault).
 */
import { parseArgs } from 'node:util';
import { MAX_LIMIT, MAX_WINDOW_SECONDS } from '../contract/api-schemas.js';
import { UsageError } from './cli-errors.js';
import { DurationError, parseDuration, parseWholeSeconds } from './duration.js';
import { REPLAY_SUMMARY } from './replay-failures-command.js';

/** Where the API is when neither --api nor UDPWATCH_API says otherwise (the local stack). */
export const DEFAULT_API = 'http://127.0.0.1:7787';

/** Where `udpwatch ui` serves the page unless --port says otherwise. */
export const DEFAULT_UI_PORT = 7788;

/** Every flag the tool knows; each command accepts a subset. */
const OPTIONS = {
  api: { type: 'string' },
  json: { type: 'boolean' },
  region: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  window: { type: 'string', short: 'w' },
  by: { type: 'string' },
  limit: { type: 'string', short: 'n' },
  cursor: { type: 'string' },
  all: { type: 'boolean' },
  interval: { type: 'string' },
  iterations: { type: 'string' },
  port: { type: 'string', short: 'p' },
  sign: { type: 'boolean' },
} as const;

type FlagName = keyof typeof OPTIONS;

const GLOBAL_FLAGS: FlagName[] = ['api', 'json', 'region', 'help'];

/** What a command is called with, and what it says about itself. */
interface CommandSpec {
  args: { name: string; required: boolean }[];
  flags: FlagName[];
  summary: string;
  /** Extra lines of help: what the output shows, examples. */
  details: string[];
}

/** The commands, in the order help lists them. */
export const COMMANDS = {
  services: {
    args: [],
    flags: ['window'],
    summary: 'Services seen recently, whether active, with their active client counts.',
    details: ['Example: udpwatch services --window 10m'],
  },
  clients: {
    args: [{ name: 'service', required: true }],
    flags: ['window', 'by', 'limit', 'cursor', 'all'],
    summary: 'Active clients of a service, newest first, with packet and byte counters.',
    details: [
      '--by endpoint lists ip:port endpoints (the default); --by ip lists distinct client IPs.',
      'Without --all, one page of --limit entries; the footer shows the --cursor of the next.',
      'Example: udpwatch clients dns --window 5m --by ip',
    ],
  },
  count: {
    args: [{ name: 'service', required: true }],
    flags: ['window'],
    summary: 'Number of active endpoints and distinct client IPs of a service.',
    details: ['Example: udpwatch count dns --window 1m'],
  },
  client: {
    args: [{ name: 'ip', required: true }],
    flags: ['window', 'limit'],
    summary: 'What one client IP talks to: one line per service.',
    details: ['Example: udpwatch client 192.0.2.10'],
  },
  host: {
    args: [{ name: 'host', required: true }],
    flags: ['window', 'limit', 'cursor', 'all'],
    summary: 'Clients one host saw: one line per (service, client IP).',
    details: ['Example: udpwatch host web-1 --all'],
  },
  agents: {
    args: [],
    flags: ['window'],
    summary: 'Agents, when each last reported, and what they had to drop or spool.',
    details: ['An agent is "reporting" when its last heartbeat is within the window.'],
  },
  top: {
    args: [{ name: 'service', required: false }],
    flags: ['window', 'limit', 'interval', 'iterations'],
    summary: 'A live view of the busiest services and clients, refreshed like top.',
    details: [
      'Clients are ranked by packets per second since the previous refresh, then by packets.',
      'Press q or Ctrl-C to quit. When stdout is not a terminal, frames are printed one',
      'after another; --iterations N stops after N frames. --json prints one JSON line per frame.',
      'Example: udpwatch top dns --interval 5s',
    ],
  },
  ui: {
    args: [],
    flags: ['port', 'sign'],
    summary: 'A live web view of services, clients and agents, served on localhost.',
    details: [
      'Serves the page on 127.0.0.1 and prints its URL; Ctrl-C stops it. The page calls',
      'the API through this process, which signs each request with SigV4 for a deployed',
      'stack, so credentials never reach the browser. Links keep the view: docs/ui.md.',
      'Example: udpwatch ui --api https://abc123.execute-api.eu-west-1.amazonaws.com',
    ],
  },
} as const satisfies Record<string, CommandSpec>;

/** A command's name. */
export type CommandName = keyof typeof COMMANDS;

/** A parsed, checked command line. */
export interface CommandLine {
  command: CommandName;
  /** The command's positional argument (service, ip or host), if it takes one. */
  target?: string;
  api: string;
  json: boolean;
  region?: string;
  window?: number;
  by?: 'ip' | 'endpoint';
  limit?: number;
  cursor?: string;
  all: boolean;
  /** top: seconds between refreshes. */
  interval: number;
  /** top: frames to draw before exiting (unbounded when absent). */
  iterations?: number;
  /** ui: the local port to serve the page on (0 picks a free one). */
  port: number;
  /** ui: sign API requests even when the API is plain http or on this machine. */
  sign: boolean;
}

/** What the user asked for: a command to run, or help to print. */
export type Request = { kind: 'run'; line: CommandLine } | { kind: 'help'; text: string };

const FLAG_HELP: Record<FlagName, string> = {
  api: `--api <url>         API base URL (default: $UDPWATCH_API, else ${DEFAULT_API})`,
  json: "--json              print the API's JSON instead of a table",
  region:
    '--region <region>   AWS region to sign for (default: from the API hostname, else $AWS_REGION)',
  help: '-h, --help          show help',
  window: "-w, --window <dur>  active window: 300, 300s, 5m, 1h (default: the API's, 5m)",
  by: '--by endpoint|ip    list ip:port endpoints or distinct IPs (default: endpoint)',
  limit: `-n, --limit <n>     entries per page, 1..${MAX_LIMIT} (default: 100; top: rows, 20)`,
  cursor: '--cursor <c>        continue from the nextCursor of a previous page',
  all: '--all               follow cursors and print every page',
  interval: '--interval <dur>    top: time between refreshes (default: 2s)',
  iterations: '--iterations <n>    top: stop after n frames',
  port: `-p, --port <n>      ui: local port to serve the page on (default: ${DEFAULT_UI_PORT}; 0 picks one)`,
  sign: '--sign              sign with SigV4 even for an http or local API (tunnel, proxy)',
};

function usageLine(name: CommandName): string {
  const spec: CommandSpec = COMMANDS[name];
  const args = spec.args.map((a) => (a.required ? `<${a.name}>` : `[<${a.name}>]`));
  const flags = spec.flags.length ? ['[options]'] : [];
  return ['udpwatch', name, ...args, ...flags].join(' ');
}

/** The tool's help: commands and global flags. */
export function toolHelp(): string {
  const names = Object.keys(COMMANDS) as CommandName[];
  const width = Math.max(...names.map((n) => usageLine(n).length - 'udpwatch '.length));
  return [
    'udpwatch: which clients are actively talking to our UDP daemons, right now.',
    '',
    'Usage: udpwatch <command> [arguments] [options]',
    '',
    'Commands:',
    ...names.map(
      (n) => `  ${usageLine(n).slice('udpwatch '.length).padEnd(width)}  ${COMMANDS[n].summary}`,
    ),
    '',
    'Operations (AWS credentials, not the API):',
    `  ${REPLAY_SUMMARY.usage.padEnd(width)}  ${REPLAY_SUMMARY.summary}`,
    '',
    'Options for every command:',
    ...GLOBAL_FLAGS.map((f) => `  ${FLAG_HELP[f]}`),
    '',
    'Against a deployed stack (an https API that is not on this machine), requests are',
    'signed with SigV4 using the default AWS credential chain (`ui --sign` forces it).',
    'Exit codes: 0 ok, 2 bad usage, 3 API unreachable, 4 API refused the request, 5 other failure.',
    "Run `udpwatch <command> --help` for a command's options.",
  ].join('\n');
}

/** One command's help. */
export function commandHelp(name: CommandName): string {
  const spec: CommandSpec = COMMANDS[name];
  return [
    `Usage: ${usageLine(name)}`,
    '',
    spec.summary,
    ...(spec.details.length ? ['', ...spec.details] : []),
    '',
    'Options:',
    ...[...spec.flags, ...GLOBAL_FLAGS].map((f) => `  ${FLAG_HELP[f]}`),
  ].join('\n');
}

function isCommand(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}

/** Turns a parseArgs failure into a usage error that names the flag. */
function usageFromParseError(err: unknown, command: CommandName | undefined): UsageError {
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  const flag = /'(?:-\w, )?(--?[\w-]+)/.exec(message)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new UsageError(`unknown flag ${flag ?? ''}`.trim(), command);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return new UsageError(
        /argument missing/.test(message)
          ? `${flag ?? 'a flag'} needs a value`
          : `${flag ?? 'a flag'} takes no value`,
        command,
      );
    default:
      return new UsageError(message, command);
  }
}

function wholeNumber(
  command: CommandName,
  flag: string,
  text: string,
  min: number,
  max: number,
): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(
      `--${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`,
      command,
    );
  }
  return Number(text);
}

function duration<T>(command: CommandName, flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof DurationError) throw new UsageError(`--${flag}: ${err.message}`, command);
    throw err;
  }
}

function parseRaw(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    options: OPTIONS,
    allowPositionals: true,
    strict: true,
    tokens: true,
  });
}

/** Parses argv (without node and script) into a request; throws UsageError naming what is wrong. */
export function parseCommandLine(
  argv: readonly string[],
  env: Record<string, string | undefined>,
): Request {
  // Find the command first, so a bad flag can point at the right help.
  const guess = argv.find((a) => !a.startsWith('-'));
  const guessed = guess !== undefined && isCommand(guess) ? guess : undefined;
  let parsed: ReturnType<typeof parseRaw>;
  try {
    parsed = parseRaw(argv);
  } catch (err) {
    throw usageFromParseError(err, guessed);
  }
  const { values, positionals, tokens } = parsed;
  const [name, ...rest] = positionals;
  if (name === undefined) {
    if (values.help) return { kind: 'help', text: toolHelp() };
    throw new UsageError(
      'missing command (services, clients, count, client, host, agents, top, ui, replay-failures)',
    );
  }
  if (!isCommand(name)) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  if (values.help) return { kind: 'help', text: commandHelp(name) };

  const spec: CommandSpec = COMMANDS[name];
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const flag = token.name as FlagName;
    if (!spec.flags.includes(flag) && !GLOBAL_FLAGS.includes(flag)) {
      throw new UsageError(`${token.rawName} does not apply to \`udpwatch ${name}\``, name);
    }
  }
  const required = spec.args.filter((a) => a.required);
  if (rest.length < required.length) {
    throw new UsageError(`missing <${required[rest.length]!.name}>`, name);
  }
  if (rest.length > spec.args.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(rest[spec.args.length])}`, name);
  }

  const api = values.api ?? (env.UDPWATCH_API || DEFAULT_API);
  let apiUrl: URL;
  try {
    apiUrl = new URL(api);
  } catch {
    throw new UsageError(
      `--api: ${JSON.stringify(api)} is not a URL (example: ${DEFAULT_API})`,
      name,
    );
  }
  if (apiUrl.protocol !== 'http:' && apiUrl.protocol !== 'https:') {
    throw new UsageError(`--api: ${JSON.stringify(api)} must be an http:// or https:// URL`, name);
  }
  if (values.by !== undefined && values.by !== 'ip' && values.by !== 'endpoint') {
    throw new UsageError(`--by must be "endpoint" or "ip", got ${JSON.stringify(values.by)}`, name);
  }
  if (name === 'ui' && values.json) {
    throw new UsageError(
      '--json does not apply to `udpwatch ui` (the page shows the answers)',
      name,
    );
  }
  if (values.all && values.cursor !== undefined) {
    throw new UsageError('--all and --cursor cannot be combined', name);
  }

  const line: CommandLine = {
    command: name,
    ...(rest[0] !== undefined ? { target: rest[0] } : {}),
    api,
    json: values.json ?? false,
    all: values.all ?? false,
    interval: 2,
    port: DEFAULT_UI_PORT,
    sign: values.sign ?? false,
  };
  if (values.port !== undefined) line.port = wholeNumber(name, 'port', values.port, 0, 65535);
  if (values.region !== undefined) line.region = values.region;
  if (values.by !== undefined) line.by = values.by;
  if (values.cursor !== undefined) line.cursor = values.cursor;
  if (values.window !== undefined) {
    const text = values.window;
    line.window = duration(name, 'window', () => parseWholeSeconds(text, MAX_WINDOW_SECONDS));
  }
  if (values.limit !== undefined)
    line.limit = wholeNumber(name, 'limit', values.limit, 1, MAX_LIMIT);
  if (values.iterations !== undefined) {
    line.iterations = wholeNumber(name, 'iterations', values.iterations, 1, 1_000_000);
  }
  if (values.interval !== undefined) {
    const text = values.interval;
    const seconds = duration(name, 'interval', () => parseDuration(text));
    if (seconds < 0.2 || seconds > 3600) {
      throw new UsageError(
        `--interval must be between 0.2s and 1h, got ${JSON.stringify(text)}`,
        name,
      );
    }
    line.interval = seconds;
  }
  return { kind: 'run', line };
}
