import { describe, expect, it } from 'vitest';
import { renderTable, truncateLine } from '../../../cli/tables.js';

describe('renderTable', () => {
  const columns = [
    { header: 'name', cell: (r: { name: string; n: number }) => r.name },
    {
      header: 'count',
      align: 'right' as const,
      cell: (r: { name: string; n: number }) => String(r.n),
    },
    { header: 'note', cell: () => '' },
  ];

  it('aligns columns: text left, numbers right, headings upper-case, no trailing spaces', () => {
    const lines = renderTable(columns, [
      { name: 'dns', n: 5 },
      { name: 'syslog-relay', n: 12_345 },
    ]);
    expect(lines).toEqual([
      'NAME          COUNT  NOTE',
      'dns               5',
      'syslog-relay  12345',
    ]);
  });

  it('prints only the heading for no rows', () => {
    expect(renderTable(columns, [])).toEqual(['NAME  COUNT  NOTE']);
  });

  it('escapes control characters so data cannot drive the terminal', () => {
    const [, row] = renderTable(columns, [{ name: 'a\u001b[2Jb\n', n: 1 }]);
    expect(row).toBe('a\\x1b[2Jb\\x0a      1');
    expect(row).not.toContain('\u001b');
  });
});

describe('truncateLine', () => {
  it('keeps short lines and marks cut ones', () => {
    expect(truncateLine('abc', 3)).toBe('abc');
    expect(truncateLine('abcdef', 4)).toBe('abc…');
  });
});
