/**
 * Host-wide UDP counters from /proc/net/snmp (`Udp:` header line followed by
 * a `Udp:` value line) and /proc/net/snmp6 (`Udp6InDatagrams  123` lines).
 * These are the kernel's totals since boot for the whole network namespace:
 * receive-buffer overflows show up here even when no single socket is blamed.
 */
import { readFile } from 'node:fs/promises';
import { type LineError, splitFields } from './proc-net-udp.js';

/** UDP MIB counters; a field the kernel does not print is absent. */
export interface UdpCounters {
  inDatagrams?: number;
  noPorts?: number;
  inErrors?: number;
  outDatagrams?: number;
  rcvbufErrors?: number;
  sndbufErrors?: number;
  inCsumErrors?: number;
  ignoredMulti?: number;
  memErrors?: number;
}

/** Kernel MIB names -> our field names. */
const FIELDS: Record<string, keyof UdpCounters> = {
  InDatagrams: 'inDatagrams',
  NoPorts: 'noPorts',
  InErrors: 'inErrors',
  OutDatagrams: 'outDatagrams',
  RcvbufErrors: 'rcvbufErrors',
  SndbufErrors: 'sndbufErrors',
  InCsumErrors: 'inCsumErrors',
  IgnoredMulti: 'ignoredMulti',
  MemErrors: 'memErrors',
};

const DEC_RE = /^[0-9]+$/;

/** UDP counters of IPv4 (snmp) and IPv6 (snmp6), with any malformed lines. */
export interface UdpSnmp {
  udp?: UdpCounters;
  udp6?: UdpCounters;
  errors: LineError[];
}

/** Parses /proc/net/snmp text, keeping the `Udp:` pair of lines. Never throws. */
export function parseProcNetSnmp(
  text: string,
  path = '/proc/net/snmp',
): { udp?: UdpCounters; errors: LineError[] } {
  const errors: LineError[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('Udp:')) continue;
    const header = splitFields(lines[i]!);
    const valueLine = lines[i + 1];
    if (valueLine === undefined || !valueLine.startsWith('Udp:')) {
      errors.push({ path, line: i + 1, reason: 'Udp: header without a value line' });
      return { errors };
    }
    const values = splitFields(valueLine);
    if (values.length !== header.length) {
      errors.push({
        path,
        line: i + 2,
        reason: `expected ${header.length - 1} values, got ${values.length - 1}`,
      });
      return { errors };
    }
    const udp: UdpCounters = {};
    for (let k = 1; k < header.length; k++) {
      const field = FIELDS[header[k]!];
      if (!field) continue;
      if (!DEC_RE.test(values[k]!)) {
        errors.push({
          path,
          line: i + 2,
          reason: `bad value ${JSON.stringify(values[k])} for ${header[k]}`,
        });
        continue;
      }
      udp[field] = Number(values[k]);
    }
    return { udp, errors };
  }
  return { errors };
}

/** Parses /proc/net/snmp6 text, keeping the `Udp6*` lines. Never throws. */
export function parseProcNetSnmp6(
  text: string,
  path = '/proc/net/snmp6',
): { udp6?: UdpCounters; errors: LineError[] } {
  const errors: LineError[] = [];
  let udp6: UdpCounters | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith('Udp6')) continue;
    const f = splitFields(line);
    const field = FIELDS[f[0]!.slice(4)];
    if (!field) continue;
    if (f.length !== 2 || !DEC_RE.test(f[1]!)) {
      errors.push({
        path,
        line: i + 1,
        reason: `bad value line ${JSON.stringify(line.slice(0, 80))}`,
      });
      continue;
    }
    udp6 ??= {};
    udp6[field] = Number(f[1]);
  }
  return udp6 ? { udp6, errors } : { errors };
}

/** Reads both files under `${procRoot}/net` (a missing snmp6 means IPv6 is off). */
export async function readUdpSnmp(
  opts: { procRoot?: string; netDir?: string } = {},
): Promise<UdpSnmp> {
  const netDir = opts.netDir ?? `${opts.procRoot ?? '/proc'}/net`;
  const errors: LineError[] = [];
  const read = (path: string) =>
    readFile(path, 'latin1').catch((err: NodeJS.ErrnoException) => {
      if (!path.endsWith('6') || err.code !== 'ENOENT') {
        errors.push({ path, line: 0, reason: `cannot read: ${err.code ?? err}` });
      }
      return '';
    });
  const [snmp, snmp6] = await Promise.all([read(`${netDir}/snmp`), read(`${netDir}/snmp6`)]);
  const v4 = parseProcNetSnmp(snmp, `${netDir}/snmp`);
  const v6 = parseProcNetSnmp6(snmp6, `${netDir}/snmp6`);
  const out: UdpSnmp = { errors: errors.concat(v4.errors, v6.errors) };
  if (v4.udp) out.udp = v4.udp;
  if (v6.udp6) out.udp6 = v6.udp6;
  return out;
}
