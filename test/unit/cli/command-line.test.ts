import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../cli/cli-errors.js';
import {
  COMMANDS,
  type CommandLine,
  DEFAULT_API,
  parseCommandLine,
} from '../../../cli/command-line.js';

function run(argv: string[], env: Record<string, string> = {}): CommandLine {
  const request = parseCommandLine(argv, env);
  if (request.kind !== 'run') throw new Error(`expected a command, got help:\n${request.text}`);
  return request.line;
}

function usageError(argv: string[]): UsageError {
  try {
    parseCommandLine(argv, {});
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  throw new Error(`no usage error for ${argv.join(' ')}`);
}

describe('parseCommandLine', () => {
  it('parses a command, its argument and flags, with durations in seconds', () => {
    const line = run(['clients', 'dns', '--window', '5m', '--by', 'ip', '--limit', '50']);
    expect(line).toMatchObject({
      command: 'clients',
      target: 'dns',
      window: 300,
      by: 'ip',
      limit: 50,
      json: false,
      all: false,
      api: DEFAULT_API,
    });
  });

  it('accepts global flags before the command and short flags', () => {
    const line = run([
      '--json',
      '--api',
      'http://127.0.0.1:9999',
      'host',
      'web-1',
      '-n',
      '7',
      '-w',
      '1h',
    ]);
    expect(line).toMatchObject({
      command: 'host',
      target: 'web-1',
      json: true,
      limit: 7,
      window: 3600,
    });
    expect(line.api).toBe('http://127.0.0.1:9999');
  });

  it('takes the API from --api, then UDPWATCH_API, then the local default', () => {
    expect(run(['services'], { UDPWATCH_API: 'http://127.0.0.1:1234' }).api).toBe(
      'http://127.0.0.1:1234',
    );
    expect(run(['services', '--api', 'http://[::1]:5'], { UDPWATCH_API: 'http://x:1' }).api).toBe(
      'http://[::1]:5',
    );
    expect(run(['services']).api).toBe('http://127.0.0.1:7787');
  });

  it('top takes an optional service, an interval and an iteration bound', () => {
    expect(run(['top'])).toMatchObject({ command: 'top', interval: 2 });
    expect(run(['top']).target).toBeUndefined();
    expect(run(['top', 'dns', '--interval', '500ms', '--iterations', '3'])).toMatchObject({
      target: 'dns',
      interval: 0.5,
      iterations: 3,
    });
  });

  it('answers --help for the tool and for every command', () => {
    const tool = parseCommandLine(['--help'], {});
    expect(tool.kind).toBe('help');
    for (const name of Object.keys(COMMANDS)) {
      expect(tool.kind === 'help' && tool.text).toContain(`  ${name} `);
      const help = parseCommandLine([name, '--help'], {});
      expect(help.kind).toBe('help');
      expect(help.kind === 'help' && help.text).toMatch(new RegExp(`^Usage: udpwatch ${name}\\b`));
    }
    const clients = parseCommandLine(['clients', '-h'], {});
    expect(clients.kind === 'help' && clients.text).toContain('--by endpoint|ip');
    const agents = parseCommandLine(['agents', '-h'], {});
    expect(agents.kind === 'help' && agents.text).not.toContain('--by');
  });

  it.each([
    [['clients', 'dns', '--bogus'], /unknown flag --bogus/, 'clients'],
    [['clients', 'dns', '--limit'], /--limit needs a value/, 'clients'],
    [['clients', 'dns', '--json=yes'], /--json takes no value/, 'clients'],
    [
      ['clients', 'dns', '--limit', '0'],
      /--limit must be a whole number from 1 to 1000/,
      'clients',
    ],
    [['clients', 'dns', '--limit', '5000'], /--limit/, 'clients'],
    [['clients', 'dns', '--limit', '2.5'], /--limit/, 'clients'],
    [['clients', 'dns', '--window', '5x'], /--window: "5x" is not a duration/, 'clients'],
    [['count', 'dns', '--window', '30d'], /--window: .*maximum/, 'count'],
    [['clients', 'dns', '--by', 'port'], /--by must be "endpoint" or "ip"/, 'clients'],
    [['clients'], /missing <service>/, 'clients'],
    [['client'], /missing <ip>/, 'client'],
    [['count', 'a', 'b'], /unexpected argument "b"/, 'count'],
    [['agents', '--by', 'ip'], /--by does not apply to `udpwatch agents`/, 'agents'],
    [['top', '--all'], /--all does not apply/, 'top'],
    [['top', '--interval', '0'], /--interval must be between/, 'top'],
    [['clients', 'x', '--all', '--cursor', 'c'], /--all and --cursor/, 'clients'],
    [['services', '--api', 'not a url'], /--api: "not a url" is not a URL/, 'services'],
    [['services', '--api', 'ftp://h/'], /--api: .* must be an http/, 'services'],
  ])('%j is a usage error naming the flag', (argv, message, command) => {
    const err = usageError(argv);
    expect(err.message).toMatch(message);
    expect(err.exitCode).toBe(2);
    expect(err.command).toBe(command);
  });

  it('names an unknown or missing command', () => {
    expect(usageError(['serivces']).message).toBe('unknown command "serivces"');
    expect(usageError([]).message).toMatch(/missing command/);
  });
});
