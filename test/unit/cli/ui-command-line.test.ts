import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../cli/cli-errors.js';
import { DEFAULT_UI_PORT, parseCommandLine } from '../../../cli/command-line.js';

function line(argv: string[]) {
  const r = parseCommandLine(argv, {});
  if (r.kind !== 'run') throw new Error('expected a command to run');
  return r.line;
}

describe('udpwatch ui on the command line', () => {
  it('serves on the default port, unsigned to a local API, unless told otherwise', () => {
    expect(line(['ui'])).toMatchObject({ command: 'ui', port: DEFAULT_UI_PORT, sign: false });
    expect(line(['ui', '--port', '0', '--sign'])).toMatchObject({ port: 0, sign: true });
    expect(line(['ui', '-p', '9000'])).toMatchObject({ port: 9000 });
  });

  it('refuses a port out of range, --json, and flags of other commands, naming the flag', () => {
    expect(() => parseCommandLine(['ui', '--port', '65536'], {})).toThrow(
      /--port must be a whole number from 0 to 65535/,
    );
    expect(() => parseCommandLine(['ui', '--json'], {})).toThrow(/--json does not apply/);
    expect(() => parseCommandLine(['ui', '--window', '5m'], {})).toThrow(UsageError);
    expect(() => parseCommandLine(['clients', 'dns', '--sign'], {})).toThrow(
      /--sign does not apply to `udpwatch clients`/,
    );
    expect(() => parseCommandLine(['ui', 'extra'], {})).toThrow(/unexpected argument "extra"/);
  });
});
