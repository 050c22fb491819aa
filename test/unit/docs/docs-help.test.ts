/**
 * The help texts the documentation shows are the ones the programs print: a
 * `console` block that starts with `$ udpwatch … --help`,
 * `$ udpwatch-agent … --help` or `$ npm start -- --help` must hold exactly
 * that command's output.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../../cli/run-cli.js';
import { USAGE as START_USAGE } from '../../../local/start.js';
import { fencedBlocks } from '../../support/markdown.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** How the agent CLI is started from a checkout (argv before the agent's own arguments). */
const AGENT_COMMAND = ['npx', 'tsx', 'agent/main.ts'];

const run = promisify(execFile);

/** What `udpwatch <args>` prints, from the CLI's own entry function. */
async function udpwatchOutput(args: string[]): Promise<string> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  stdout.on('data', (d) => {
    out += d;
  });
  const code = await runCli(args, { stdout, stderr, env: {} });
  expect(code, `udpwatch ${args.join(' ')} exit code`).toBe(0);
  return out;
}

/** What `udpwatch-agent <args>` prints, from a real process. */
async function agentOutput(args: string[]): Promise<string> {
  const [file, ...pre] = AGENT_COMMAND;
  const { stdout } = await run(file!, [...pre, ...args], { cwd: ROOT, timeout: 60_000 });
  return stdout;
}

/** What `npm start -- --help` prints; its default paths are under the OS temp directory. */
function startOutput(): string {
  return START_USAGE.replaceAll(tmpdir(), '/tmp');
}

interface HelpExample {
  page: string;
  line: number;
  program: 'udpwatch' | 'udpwatch-agent' | 'npm start';
  args: string[];
  shown: string;
}

/** Every help example of the docs: a console block whose only command asks for help. */
function helpExamples(): HelpExample[] {
  const pages = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((n) => n.endsWith('.md'))
      .map((n) => `docs/${n}`),
  ];
  const examples: HelpExample[] = [];
  for (const page of pages) {
    for (const block of fencedBlocks(readFileSync(join(ROOT, page), 'utf8'))) {
      const [first, ...rest] = block.lines;
      const m = /^\$ (udpwatch-agent|udpwatch|npm start --)((?: [\w-]+)*) (--help|-h)$/.exec(
        first ?? '',
      );
      if (block.info !== 'console' || !m) continue;
      const program = m[1] === 'npm start --' ? 'npm start' : (m[1] as HelpExample['program']);
      const args = [...m[2]!.trim().split(' ').filter(Boolean), m[3]!];
      examples.push({ page, line: block.line, program, args, shown: rest.join('\n') });
    }
  }
  return examples;
}

const examples = helpExamples();

describe('help texts in the documentation', () => {
  it('shows the main help of both CLIs and of npm start', () => {
    const shown = examples.map((e) => `${e.page}: ${e.program} ${e.args.join(' ')}`);
    expect(shown).toContain('docs/cli.md: udpwatch --help');
    expect(shown).toContain('docs/agent.md: udpwatch-agent --help');
    expect(shown).toContain('docs/local-mode.md: npm start --help');
  });

  for (const e of examples) {
    it(`${e.page} line ${e.line}: ${e.program} ${e.args.join(' ')}`, async () => {
      const printed =
        e.program === 'udpwatch'
          ? await udpwatchOutput(e.args)
          : e.program === 'udpwatch-agent'
            ? await agentOutput(e.args)
            : startOutput();
      expect(printed.trim().length).toBeGreaterThan(0);
      expect(e.shown.trimEnd()).toBe(printed.trimEnd());
    }, 60_000); // a spawned agent starts tsx, slow on a loaded machine
  }
});
