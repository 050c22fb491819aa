/** Plain aligned text tables for the terminal. */

/** One column: its heading, how to get its cell, and which side it hugs. */
export interface Column<Row> {
  header: string;
  cell: (row: Row) => string;
  /** Numbers read best right-aligned; text left-aligned (the default). */
  align?: 'left' | 'right';
}

/** Control characters could move the cursor or recolour the terminal: show them escaped. */
function printable(text: string): string {
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** Terminal columns a string takes (code points; the data is names, addresses and numbers). */
function width(text: string): number {
  return [...text].length;
}

function pad(text: string, to: number, align: 'left' | 'right'): string {
  const fill = ' '.repeat(Math.max(0, to - width(text)));
  return align === 'right' ? fill + text : text + fill;
}

/**
 * Renders rows under an upper-case heading, columns separated by two spaces,
 * without trailing spaces. Returns the lines (no trailing newline).
 */
export function renderTable<Row>(columns: readonly Column<Row>[], rows: readonly Row[]): string[] {
  const cells = rows.map((row) => columns.map((c) => printable(c.cell(row))));
  const widths = columns.map((c, i) =>
    Math.max(width(c.header), ...cells.map((r) => width(r[i] ?? ''))),
  );
  const line = (values: readonly string[]) =>
    columns
      .map((c, i) => pad(values[i] ?? '', widths[i] ?? 0, c.align ?? 'left'))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)];
}

/** Cuts a line to `max` terminal columns, marking the cut with `…`. */
export function truncateLine(text: string, max: number): string {
  const chars = [...text];
  if (chars.length <= max) return text;
  return max <= 1 ? chars.slice(0, max).join('') : `${chars.slice(0, max - 1).join('')}…`;
}
