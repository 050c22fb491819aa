/**
 * Strings kept for long from a larger text. V8 represents a substring of 13
 * characters or more as a slice that points into its parent, so an address
 * taken from a hook line or a command's output and held in a table keeps the
 * whole line (up to a megabyte) alive for as long as the table holds it.
 */

/**
 * A copy of `text` that points into no other string: for a string about to
 * be held long (a table's key or field), never per row.
 */
export function detached(text: string): string {
  // JSON.stringify then JSON.parse is exact for every string (lone surrogates
  // too) and builds the result afresh, where slice, concat and the like may
  // return views of the original.
  return JSON.parse(JSON.stringify(text)) as string;
}
