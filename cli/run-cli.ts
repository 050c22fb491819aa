/**
 * Runs one `udpwatch` command line: parses it, picks a plain or SigV4-signing
 * transport, calls the API and prints a table or the API's JSON. Returns the
 * exit code instead of exiting, so it can be driven from tests.
 */
import type { Writable } from 'node:stream';
import {
  agentsView,
  clientIpView,
  clientsView,
  countView,
  hostClientsView,
  servicesView,
} from './answer-views.js';
import { type Answer, ApiClient } from './api-client.js';
import { CliError, EXIT, UsageError } from './cli-errors.js';
import { type CommandLine, parseCommandLine } from './command-line.js';
import { runReplayFailures } from './replay-failures-command.js';
import {
  createSigV4Fetch,
  defaultCredentials,
  type FetchLike,
  needsSigning,
  resolveRegion,
} from './sigv4-fetch.js';
import { runTop, type TopTerminal } from './top-view.js';
import { findUiPage, startUiServer } from './ui-server.js';

/** Pages `--all` follows at most, so a misbehaving API cannot keep the CLI looping. */
const MAX_PAGES = 10_000;
/** Rows `top` shows when --limit is not given. */
const TOP_ROWS = 20;

/** What a run reads and writes. */
export interface CliIo {
  /** `ui` serves until this settles (default: SIGINT or SIGTERM). */
  until?: Promise<unknown>;
  stdout: Writable;
  stderr: Writable;
  env: Record<string, string | undefined>;
  /** Where `top` draws and reads keys (defaults to stdout and process.stdin). */
  terminal?: TopTerminal;
}

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => {
    // A closed pipe must not turn into a crash; the write is simply lost.
    if (!stream.write(text)) stream.once('drain', resolve);
    else resolve();
  });
}

/** The transport for an API URL: plain fetch locally, SigV4-signed to a deployed https API. */
async function transportFor(
  line: CommandLine,
  env: Record<string, string | undefined>,
): Promise<FetchLike> {
  const url = new URL(line.api);
  if (!line.sign && !needsSigning(url)) return fetch;
  const region = resolveRegion(url, line.region, env);
  if (!region) {
    throw new UsageError(
      `cannot tell the AWS region of ${url.host}: pass --region or set AWS_REGION`,
      line.command,
    );
  }
  return createSigV4Fetch({ region, credentials: await defaultCredentials() });
}

/** Newest first by `lastSeen` (stable), for lists merged from several pages. */
function newestFirst<E>(list: E[]): E[] {
  const seen = (e: E) => Number((e as { lastSeen?: unknown }).lastSeen ?? 0);
  return list
    .map((e, i) => ({ e, i }))
    .sort((a, b) => seen(b.e) - seen(a.e) || a.i - b.i)
    .map(({ e }) => e);
}

/**
 * Follows `nextCursor` until the last page and merges the `key` lists of every
 * page newest first (pages come in activity-bucket order, exact only within a page).
 */
async function allPages<T extends { nextCursor: string | null }, K extends keyof T>(
  first: (cursor: string | undefined) => Promise<Answer<T>>,
  key: K,
): Promise<Answer<T>> {
  const page = await first(undefined);
  const body = { ...(page.body as Record<string, unknown>) };
  const data = { ...page.data };
  const bodyItems = [...(body[key as string] as unknown[])];
  const items = [...(data[key] as unknown[])];
  let cursor = page.data.nextCursor;
  for (let n = 1; cursor && n < MAX_PAGES; n++) {
    const next = await first(cursor);
    bodyItems.push(...(next.body as Record<string, unknown[]>)[key as string]!);
    items.push(...(next.data[key] as unknown[]));
    cursor = next.data.nextCursor;
  }
  if (cursor) throw new CliError(`gave up after ${MAX_PAGES} pages`, EXIT.failed);
  body[key as string] = newestFirst(bodyItems);
  body.nextCursor = null;
  return { body, data: { ...data, [key]: newestFirst(items), nextCursor: null } };
}

/** Runs one command and prints its answer. */
async function runCommand(
  line: CommandLine,
  api: ApiClient,
  io: CliIo,
  transport: FetchLike,
): Promise<void> {
  const { window, limit, cursor } = line;
  const target = line.target ?? '';
  let answer: Answer<unknown>;
  let lines: () => string[];
  switch (line.command) {
    case 'services': {
      const a = await api.services(window);
      answer = a;
      lines = () => servicesView(a.data);
      break;
    }
    case 'clients': {
      const by = line.by;
      const page = (c: string | undefined) => api.clients(target, { window, by, limit, cursor: c });
      const a = line.all ? await allPages(page, 'clients') : await page(cursor);
      answer = a;
      lines = () => clientsView(a.data);
      break;
    }
    case 'count': {
      const a = await api.count(target, window);
      answer = a;
      lines = () => countView(a.data);
      break;
    }
    case 'client': {
      const a = await api.clientIp(target, { window, limit });
      answer = a;
      lines = () => clientIpView(a.data);
      break;
    }
    case 'host': {
      const page = (c: string | undefined) => api.hostClients(target, { window, limit, cursor: c });
      const a = line.all ? await allPages(page, 'clients') : await page(cursor);
      answer = a;
      lines = () => hostClientsView(a.data);
      break;
    }
    case 'agents': {
      const a = await api.agents(window);
      answer = a;
      lines = () => agentsView(a.data);
      break;
    }
    case 'top': {
      const terminal = io.terminal ?? {
        stdout: io.stdout,
        stdin: process.stdin,
      };
      await runTop(
        {
          api,
          apiUrl: line.api,
          ...(line.target !== undefined ? { service: line.target } : {}),
          ...(window !== undefined ? { window } : {}),
          limit: limit ?? TOP_ROWS,
          intervalSeconds: line.interval,
          ...(line.iterations !== undefined ? { iterations: line.iterations } : {}),
          json: line.json,
        },
        terminal,
      );
      return;
    }
    case 'ui':
      await runUi(line, transport, io);
      return;
  }
  const text = line.json ? JSON.stringify(answer.body, null, 2) : lines().join('\n');
  await write(io.stdout, `${text}\n`);
}

/** `udpwatch ui`: serves the page and forwards its API requests until stopped. */
async function runUi(line: CommandLine, transport: FetchLike, io: CliIo): Promise<void> {
  const server = await startUiServer({
    html: findUiPage(),
    apiUrl: line.api,
    transport,
    port: line.port,
  });
  const signing = transport === fetch ? 'unsigned' : 'signed with SigV4';
  await write(
    io.stdout,
    `udpwatch ui: open ${server.url}
  API ${line.api} (requests ${signing}); Ctrl-C stops.
`,
  );
  await (io.until ??
    new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    }));
  await server.stop();
}

/** Runs a command line (argv without node and script) and returns its exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let command: string | undefined;
  try {
    // An operations command on the AWS resources, not the API: its own flags.
    if (argv[0] === 'replay-failures') {
      command = argv[0];
      return await runReplayFailures(argv.slice(1), io);
    }
    const request = parseCommandLine(argv, io.env);
    if (request.kind === 'help') {
      await write(io.stdout, `${request.text}\n`);
      return EXIT.ok;
    }
    const line = request.line;
    command = line.command;
    const transport = await transportFor(line, io.env);
    const api = new ApiClient({ baseUrl: line.api, fetch: transport });
    await runCommand(line, api, io, transport);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof UsageError) {
      const about = err.command ?? command;
      const hint = about ? `udpwatch ${about} --help` : 'udpwatch --help';
      await write(io.stderr, `udpwatch: ${err.message}\nRun \`${hint}\` for usage.\n`);
      return err.exitCode;
    }
    if (err instanceof CliError) {
      await write(io.stderr, `udpwatch: ${err.message}\n`);
      return err.exitCode;
    }
    const why = err instanceof Error ? (err.stack ?? err.message) : String(err);
    await write(io.stderr, `udpwatch: unexpected failure: ${why}\n`);
    return EXIT.failed;
  }
}
