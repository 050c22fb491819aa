/**
 * Small DOM helpers. Views update nodes in place (a keyed row keeps its
 * element), so a refresh changes text, not the tree: no flicker, and focus
 * and scroll position survive.
 */

type Child = Node | string | null | undefined | false;

/** Creates an element with attributes and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? '' : value);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** Sets an element's text only when it changed (no layout work otherwise). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** A table column: its heading and how a row's cell shows. */
export interface Column<R> {
  title: string;
  /** Cell text (plain text keeps updates cheap). */
  text(row: R): string;
  /** A link target for the cell, when it leads to another view. */
  href?(row: R): string | undefined;
  numeric?: boolean;
}

/**
 * A table whose rows are keyed: update() reuses each key's <tr>, changes only
 * the cells whose text changed, and puts rows in the given order.
 */
export class KeyedTable<R> {
  readonly element: HTMLTableElement;
  private readonly body: HTMLTableSectionElement;
  private readonly rows = new Map<string, { tr: HTMLTableRowElement; cells: HTMLElement[] }>();

  constructor(
    caption: string,
    private readonly columns: Column<R>[],
    private readonly key: (row: R) => string,
    headCell?: (column: Column<R>, index: number) => HTMLTableCellElement,
  ) {
    this.body = h('tbody');
    const head = h(
      'tr',
      {},
      ...columns.map(
        (c, i) =>
          headCell?.(c, i) ??
          h('th', { scope: 'col', class: c.numeric ? 'num' : undefined }, c.title),
      ),
    );
    this.element = h('table', {}, h('caption', {}, caption), h('thead', {}, head), this.body);
  }

  /** Shows exactly these rows, in this order. */
  update(list: readonly R[]): void {
    const keep = new Set<string>();
    let previous: HTMLTableRowElement | null = null;
    for (const row of list) {
      const k = this.key(row);
      keep.add(k);
      let entry = this.rows.get(k);
      if (!entry) {
        const cells = this.columns.map((c) => {
          const td = h('td', { class: c.numeric ? 'num' : undefined });
          if (c.href) {
            const a = h('a');
            td.append(a);
            return a;
          }
          return td;
        });
        const tr = h(
          'tr',
          {},
          ...cells.map((c) => (c instanceof HTMLAnchorElement ? c.parentElement : c)),
        );
        entry = { tr, cells };
        this.rows.set(k, entry);
      }
      this.columns.forEach((c, i) => {
        const cell = entry.cells[i]!;
        setText(cell, c.text(row));
        if (c.href) {
          const target = c.href(row);
          if (target && cell.getAttribute('href') !== target) cell.setAttribute('href', target);
        }
      });
      // Move only rows that are out of place.
      const expected: ChildNode | null = previous ? previous.nextSibling : this.body.firstChild;
      if (expected !== entry.tr) this.body.insertBefore(entry.tr, expected);
      previous = entry.tr;
    }
    for (const [k, entry] of this.rows) {
      if (!keep.has(k)) {
        entry.tr.remove();
        this.rows.delete(k);
      }
    }
  }
}
