/**
 * The size DynamoDB bills an item by (its write units, its share of a Query's
 * read units, its storage): per attribute, the UTF-8 bytes of its name plus
 * its value's size. A string is its UTF-8 bytes, a binary its bytes, a number
 * about one byte per two significant digits plus one, a boolean or null one.
 */

/** A plain attribute value of the items the benchmark stores. */
export type PlainAttribute = string | number | boolean | null | Uint8Array;

/** Billed size of a number: leading and trailing zeros trimmed, a byte per two significant digits, plus one. */
export function numberBytes(n: number): number {
  const digits = Math.abs(n).toString().replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
  return Math.ceil(Math.max(1, digits.length) / 2) + 1;
}

/** Billed size of one attribute value. */
export function valueBytes(v: PlainAttribute): number {
  if (typeof v === 'string') return Buffer.byteLength(v, 'utf8');
  if (typeof v === 'number') return numberBytes(v);
  if (typeof v === 'boolean' || v === null) return 1;
  return v.byteLength;
}

/** Billed size of an item: names plus values of all its attributes, keys included. */
export function itemBytes(item: Readonly<Record<string, PlainAttribute>>): number {
  let total = 0;
  for (const [name, value] of Object.entries(item)) {
    total += Buffer.byteLength(name, 'utf8') + valueBytes(value);
  }
  return total;
}
