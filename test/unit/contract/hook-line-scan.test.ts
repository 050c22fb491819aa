import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  HOOK_ROW_NUMBERS,
  type HookColumns,
  HookLineScanner,
  hookColumns,
  type ScannedHookLine,
} from '../../../contract/hook-line-scan.js';
import {
  HOOK_PROTOCOL_VERSION,
  MAX_DROP_COUNTER,
  MAX_EPOCH_MS,
  MAX_HOOK_ROWS,
  MAX_PID,
  MAX_ROW_BYTES,
  MAX_ROW_PACKETS,
  MIN_EPOCH_MS,
  parseHookMessage,
} from '../../../contract/hook-protocol.js';
import { normalizeIp } from '../../../contract/ip-address.js';
import { liveHeapBytes } from '../../support/live-heap.js';

const T = 1_700_000_000_000;

/** A row as the hook writes it. */
const row = (i: number, tag?: string | null): unknown[] => {
  const r: unknown[] = [
    i % 3 === 0 ? '2001:db8::7' : '127.0.0.1',
    5000,
    i % 2 === 0 ? `192.0.2.${i % 250}` : '2001:db8::1:2',
    40000 + (i % 1000),
    i,
    i * 64,
    i % 5,
    (i % 5) * 100,
    T - 500,
    T - 100,
  ];
  if (tag !== undefined) r.push(tag);
  return r;
};
/** A message as the hook writes it (its field order). */
const message = (flows: unknown[][], over: Record<string, unknown> = {}) => ({
  v: HOOK_PROTOCOL_VERSION,
  pid: 4242,
  process: 'node',
  at: T,
  flows,
  overflowPackets: 3,
  droppedFlows: 5,
  droppedPackets: 17,
  line: 9,
  ...over,
});

/** Plain arrays of columns, for comparing: the numbers of its rows (an allocator may hand out more). */
function plain(c: HookColumns) {
  expect(c.numbers.length).toBeGreaterThanOrEqual(c.rows * HOOK_ROW_NUMBERS);
  return {
    rows: c.rows,
    numbers: [...c.numbers.subarray(0, c.rows * HOOK_ROW_NUMBERS)],
    localIps: c.localIps,
    remoteIps: c.remoteIps,
    clientIds: c.clientIds === null ? null : [...c.clientIds],
  };
}

/** What the schema's path makes of a line: envelope and columns, or null when it skips or refuses anything. */
function viaSchema(line: string): ScannedHookLine | null {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return null;
  }
  const r = parseHookMessage(json);
  if (!r.ok || r.skipped.length > 0) return null;
  const { flows, ...envelope } = r.message;
  return { envelope, columns: hookColumns(flows) };
}

/** Asserts the scanner took `line` and read exactly what the schema reads. */
function expectSameAsSchema(scanned: ScannedHookLine | null, line: string): void {
  const schema = viaSchema(line);
  expect(schema, `schema refuses a line the scanner took: ${line.slice(0, 200)}`).not.toBeNull();
  expect(scanned!.envelope).toEqual(schema!.envelope);
  expect(plain(scanned!.columns)).toEqual(plain(schema!.columns));
}

describe('HookLineScanner', () => {
  it('reads a line as the hook writes it into the same values as the schema', () => {
    const flows = [row(0), row(1, 'cust-1'), row(2, null), row(3), row(4, 'é')];
    const line = JSON.stringify(message(flows));
    const scanned = new HookLineScanner().scan(line);
    expect(scanned).not.toBeNull();
    expectSameAsSchema(scanned, line);
    expect(scanned!.columns.rows).toBe(5);
    expect(scanned!.columns.clientIds).toEqual([undefined, 'cust-1', undefined, undefined, 'é']);
    expect(scanned!.envelope.line).toBe(9);
  });

  it('reads rows straight into one array of its allocator a line, as long as the brackets left in the line allow', () => {
    const asked: number[] = [];
    const scanner = new HookLineScanner((length) => {
      asked.push(length);
      return new Float64Array(length);
    });
    const plainLine = scanner.scan(JSON.stringify(message([row(0), row(1), row(2)])));
    expect(plainLine?.columns.rows).toBe(3);
    // A tag with brackets in it gives room for rows that are not there, never less.
    const tagged = JSON.stringify(message([row(0, '[a][b]'), row(1)]));
    const withTag = scanner.scan(tagged);
    expectSameAsSchema(withTag, tagged);
    expect(withTag?.columns.clientIds).toEqual(['[a][b]', undefined]);
    expect(asked).toEqual([3 * HOOK_ROW_NUMBERS, 4 * HOOK_ROW_NUMBERS]);
  });

  it('reads a full message of MAX_HOOK_ROWS rows and refuses one more', () => {
    const scanner = new HookLineScanner();
    const flows = Array.from({ length: MAX_HOOK_ROWS }, (_, i) => row(i));
    const line = JSON.stringify(message(flows));
    const scanned = scanner.scan(line);
    expect(scanned?.columns.rows).toBe(MAX_HOOK_ROWS);
    expect(scanned!.columns.numbers.length).toBe(MAX_HOOK_ROWS * HOOK_ROW_NUMBERS);
    expectSameAsSchema(scanned, line);
    // A second, smaller line's columns are its own.
    const small = scanner.scan(JSON.stringify(message([row(7)])));
    expect(small?.columns.numbers.length).toBe(HOOK_ROW_NUMBERS);
    expect(small!.columns.numbers[2]).toBe(7);
    expect(scanned!.columns.numbers[2]).toBe(0);
    expect(scanner.scan(JSON.stringify(message([...flows, row(1)])))).toBeNull();
  });

  it('shares one string per address across rows and lines', () => {
    const scanner = new HookLineScanner();
    const a = scanner.scan(JSON.stringify(message([row(1), row(3)])))!;
    const b = scanner.scan(JSON.stringify(message([row(5)])))!;
    expect(a.columns.remoteIps[0]).toBe('2001:db8::1:2');
    expect(b.columns.remoteIps[0]).toBe(a.columns.remoteIps[1]);
  });

  it.each([
    ['whitespace', (l: string) => l.replace(':', ': ')],
    ['a trailing space', (l: string) => `${l} `],
    ['an unknown field', (l: string) => l.replace('{', '{"extra":1,')],
    ['a repeated field', (l: string) => l.replace('{', '{"pid":1,')],
    ['an escaped process name', (l: string) => l.replace('"node"', '"no\\u0064e"')],
    ['a non-canonical address', (l: string) => l.replace('"127.0.0.1"', '"::FFFF:127.0.0.1"')],
    ['a fraction', (l: string) => l.replace('"pid":4242', '"pid":4242.0')],
    ['an exponent', (l: string) => l.replace('"pid":4242', '"pid":4.242e3')],
    ['twelve row positions', (l: string) => l.replace(`${T - 100}]`, `${T - 100},null,1]`)],
  ])('leaves %s to the schema, which still reads the line', (_, change) => {
    const line = change(JSON.stringify(message([row(1)])));
    expect(new HookLineScanner().scan(line)).toBeNull();
    expect(viaSchema(line), line).not.toBeNull();
  });

  it.each([
    ['not JSON', '{"v":1,'],
    ['a leading zero (not JSON)', JSON.stringify(message([row(1)])).replace(':4242', ':04242')],
    [
      'a negative count',
      JSON.stringify(message([row(1)])).replace('"droppedFlows":5', '"droppedFlows":-5'),
    ],
    ['a later major version', JSON.stringify(message([row(1)], { v: 2 }))],
    ['a pid out of range', JSON.stringify(message([row(1)], { pid: MAX_PID + 1 }))],
    ['a row after the window', JSON.stringify(message([row(1)], { at: T - 200 }))],
    [
      'a port out of range',
      JSON.stringify(message([[...row(1).slice(0, 3), 70000, ...row(1).slice(4)]])),
    ],
    ['no rows field', JSON.stringify({ ...message([]), flows: undefined })],
    ['a control character', JSON.stringify(message([row(1)], { process: 'a\u0085b' }))],
  ])('refuses %s (the schema then says why)', (_, line) => {
    expect(new HookLineScanner().scan(line)).toBeNull();
  });

  const arbRow = fc.tuple(
    fc.oneof(fc.ipV4(), fc.constant('2001:db8::5'), fc.constant('::1')),
    fc.integer({ min: 0, max: 65_535 }),
    fc.oneof(fc.ipV4(), fc.ipV6()),
    fc.integer({ min: 0, max: 65_535 }),
    fc.integer({ min: 0, max: MAX_ROW_PACKETS }),
    fc.integer({ min: 0, max: MAX_ROW_BYTES }),
    fc.integer({ min: 0, max: MAX_ROW_PACKETS }),
    fc.integer({ min: 0, max: MAX_ROW_BYTES }),
    // Mostly before the window's end below, sometimes after it.
    fc.integer({ min: MIN_EPOCH_MS, max: MIN_EPOCH_MS + 2_000 }),
    fc.integer({ min: MIN_EPOCH_MS, max: MIN_EPOCH_MS + 2_000 }),
    fc.option(fc.string({ minLength: 0, maxLength: 4 }), { nil: undefined }),
  );
  const arbMessage = fc.record({
    pid: fc.integer({ min: 0, max: MAX_PID + 1 }),
    process: fc.string({ maxLength: 6 }),
    at: fc.integer({ min: MIN_EPOCH_MS + 1_900, max: MAX_EPOCH_MS }),
    counters: fc.array(fc.integer({ min: 0, max: MAX_DROP_COUNTER }), {
      minLength: 3,
      maxLength: 3,
    }),
    line: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }),
    flows: fc.array(arbRow, { maxLength: 6 }),
  });
  type Message = typeof arbMessage extends fc.Arbitrary<infer M> ? M : never;
  const lineOf = (m: Message): string =>
    JSON.stringify({
      v: HOOK_PROTOCOL_VERSION,
      pid: m.pid,
      process: m.process,
      at: m.at,
      flows: m.flows.map((r) => (r[10] === undefined ? r.slice(0, 10) : r)),
      overflowPackets: m.counters[0],
      droppedFlows: m.counters[1],
      droppedPackets: m.counters[2],
      ...(m.line === undefined ? {} : { line: m.line }),
    });

  test.prop([arbMessage], { numRuns: 400 })(
    'takes a generated line exactly when the schema takes it whole, with the same values',
    (m) => {
      const line = lineOf(m);
      const scanned = new HookLineScanner().scan(line);
      if (scanned !== null) {
        expectSameAsSchema(scanned, line);
        return;
      }
      // Left to the schema: a line it reads whole must be outside the scanner's subset
      // (non-canonical addresses or escapes are the only such lines generated here).
      if (viaSchema(line) !== null) {
        const outside =
          line.includes('\\') ||
          m.flows.some((r) => normalizeIp(r[0]) !== r[0] || normalizeIp(r[2]) !== r[2]);
        expect(outside, line).toBe(true);
      }
    },
  );

  // IPv4-like texts: canonical ones are read as numbers (and remembered), every other
  // spelling (leading zeros, short or hex forms, out-of-range octets) goes to the text path.
  const arbV4Text = fc.oneof(
    fc.ipV4(),
    fc.ipV4Extended(),
    fc.stringMatching(/^[0-9]{1,4}(\.[0-9]{1,4}){0,4}\.?$/),
    fc.constantFrom('0.0.0.0', '255.255.255.255', '256.0.0.1', '1.2.3.04', '1.2.3', '1..2.3'),
  );
  const shared = new HookLineScanner();
  test.prop([fc.array(arbV4Text, { minLength: 1, maxLength: 4 })], { numRuns: 400 })(
    'reads IPv4 texts as the schema does, canonical or not, remembered or new',
    (ips) => {
      const line = JSON.stringify(
        message(
          ips.map((ip, i) => {
            const r = row(2 * i);
            r[0] = ips[ips.length - 1 - i];
            r[2] = ip;
            return r;
          }),
        ),
      );
      // Twice: the second read finds the addresses remembered.
      for (let pass = 0; pass < 2; pass++) {
        const scanned = shared.scan(line);
        const canonical = ips.every((ip) => normalizeIp(ip) === ip);
        expect(scanned !== null, line).toBe(canonical);
        if (scanned !== null) expectSameAsSchema(scanned, line);
      }
    },
  );

  it('takes most generated lines, so the properties above test its reading', () => {
    const scanner = new HookLineScanner();
    const lines = fc.sample(arbMessage, { numRuns: 300, seed: 7 }).map(lineOf);
    const taken = lines.filter((l) => scanner.scan(l) !== null).length;
    const whole = lines.filter((l) => viaSchema(l) !== null).length;
    expect(whole).toBeGreaterThan(60);
    expect(taken).toBeGreaterThan(whole / 2);
  });

  test.prop(
    [
      arbMessage,
      fc.array(
        fc.tuple(
          fc.nat(),
          fc.nat({ max: 3 }),
          fc.constantFrom(...'{}[],:"0179.e-\\ nul'.split('')),
        ),
        { minLength: 1, maxLength: 3 },
      ),
    ],
    { numRuns: 1500 },
  )('never takes a mutated line the schema would not read the same', (m, edits) => {
    let line = lineOf(m);
    for (const [pos, kind, ch] of edits) {
      const p = pos % (line.length + 1);
      if (kind === 0) line = line.slice(0, p) + line.slice(p + 1);
      else if (kind === 1) line = line.slice(0, p) + ch + line.slice(p);
      else line = line.slice(0, p) + ch + line.slice(p + 1);
    }
    const scanned = new HookLineScanner().scan(line);
    if (scanned !== null) expectSameAsSchema(scanned, line);
  });
});

describe('HookLineScanner memory', () => {
  it('keeps no line alive through the addresses it hands out and remembers', () => {
    const scanner = new HookLineScanner();
    // A full message of 10,000 rows (about 700 KB) whose first row alone has a new address.
    const line = (n: number) =>
      JSON.stringify(
        message(
          Array.from({ length: MAX_HOOK_ROWS }, (_, i) => {
            const r = row(2 * i);
            r[2] = i === 0 ? `198.51.100.${100 + n}` : '192.0.2.1';
            return r;
          }),
        ),
      );
    // Grows the scanner's scratch to a full message before measuring.
    expect(scanner.scan(line(0))).not.toBeNull();
    const before = liveHeapBytes();
    const kept: string[] = [];
    for (let n = 1; n <= 24; n++) kept.push(scanner.scan(line(n))!.columns.remoteIps[0]!);
    const grown = liveHeapBytes() - before;
    expect(new Set(kept).size).toBe(24);
    expect(kept[23]).toBe('198.51.100.124');
    // A slice of its line per address would keep 24 lines, about 17 MB.
    expect(grown).toBeLessThan(4 * 2 ** 20);
  });
});
