/**
 * Every relative link in README.md and docs/*.md points at a file that exists,
 * and every #anchor at a heading of the page it names, so moving or renaming
 * a section cannot leave dead links behind.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { headingAnchors, headingSlug, markdownLinks } from '../../support/markdown.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PAGES = [
  join(ROOT, 'README.md'),
  ...readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join(ROOT, 'docs', name)),
];

/** What is wrong with one link target of `page`, or undefined when it resolves. */
function brokenReason(page: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // https:, mailto: ...
  const [path = '', anchor] = target.split('#', 2);
  const file = path === '' ? page : resolve(dirname(page), decodeURIComponent(path));
  if (!existsSync(file)) return `no such file ${relative(ROOT, file)}`;
  if (anchor === undefined) return undefined;
  if (!file.endsWith('.md') || statSync(file).isDirectory()) {
    return `anchor #${anchor} on ${relative(ROOT, file)}, which is not a Markdown page`;
  }
  const anchors = headingAnchors(readFileSync(file, 'utf8'));
  return anchors.has(anchor) ? undefined : `no heading #${anchor} in ${relative(ROOT, file)}`;
}

describe('documentation links', () => {
  it('reads links, anchors and code the way GitHub renders them', () => {
    const page = [
      '# Querying: the `udpwatch` CLI',
      '## Host agent (`udpwatch-agent`)',
      '## Options',
      '## Options',
      'See [the CLI](cli.md#querying) and `[not a link](nowhere.md)`.',
      '```sh',
      '# not a heading',
      '[not a link](nowhere.md)',
      '```',
    ].join('\n');
    expect([...headingAnchors(page)]).toEqual([
      'querying-the-udpwatch-cli',
      'host-agent-udpwatch-agent',
      'options',
      'options-1',
    ]);
    expect(markdownLinks(page)).toEqual([{ target: 'cli.md#querying', line: 5 }]);
    expect(headingSlug('The connection log (wire format v1)')).toBe(
      'the-connection-log-wire-format-v1',
    );
  });

  it('finds a dead file and a dead anchor', () => {
    const readme = join(ROOT, 'README.md');
    expect(brokenReason(readme, 'docs/no-such-page.md')).toMatch(/no such file/);
    expect(brokenReason(readme, '#no-such-heading')).toMatch(/no heading/);
    expect(brokenReason(readme, 'https://example.com/x.md#y')).toBeUndefined();
  });

  it('has README.md and the docs/ pages, and they link to each other', () => {
    expect(PAGES.length).toBeGreaterThan(5);
    const readmeTargets = markdownLinks(readFileSync(PAGES[0]!, 'utf8')).map((l) => l.target);
    for (const page of PAGES.slice(1)) {
      const name = relative(ROOT, page);
      expect(
        readmeTargets.some((t) => t.split('#')[0] === name),
        `README.md links to ${name}`,
      ).toBe(true);
    }
  });

  for (const page of PAGES) {
    it(`${relative(ROOT, page)}: every relative link and anchor resolves`, () => {
      const links = markdownLinks(readFileSync(page, 'utf8'));
      const broken = links
        .map((link) => ({ link, why: brokenReason(page, link.target) }))
        .filter((b) => b.why !== undefined)
        .map((b) => `line ${b.link.line}: (${b.link.target}) ${b.why}`);
      expect(broken).toEqual([]);
    });
  }
});
