/**
 * IP address validation and normalization shared by every part of udpwatch.
 *
 * One canonical text form per address keeps flow keys, table keys and query
 * parameters comparable: IPv4 in dotted quad, IPv6 in RFC 5952 form
 * (lowercase, longest zero run compressed), and IPv4-mapped IPv6
 * (`::ffff:192.0.2.1`) folded to plain IPv4, since a dual-stack socket
 * reports IPv4 peers that way.
 */

/** A canonical dotted-quad IPv4 address as an unsigned 32-bit number, or -1 when it is not one. */
export function ipv4Number(text: string): number {
  const n = text.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      // Canonical form only: no leading zeros.
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/** Parses dotted-quad IPv4 (decimal octets, no leading zeros) into its four bytes, or null. */
export function parseIpv4(text: string): number[] | null {
  const n = ipv4Number(text);
  if (n < 0) return null;
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

const COLON = 58;

/** The value of hex digit `c` (a char code), or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Parses IPv6 text (with optional embedded IPv4 tail) into eight 16-bit
 * words, or null. One pass and one array: sealing a block parses every IPv6
 * client address, and the split-and-test parse it replaced made about 2 KB
 * of garbage an address.
 */
export function parseIpv6(text: string): number[] | null {
  const n = text.length;
  if (n < 2 || n > 45) return null;
  const words: number[] = [];
  /** Where "::" stands among the words, or -1. */
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === COLON) {
    if (text.charCodeAt(1) !== COLON) return null;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    // A group: 1 to 4 hex digits; or, after the last colon, a dotted-quad tail.
    if (text.indexOf(':', i) < 0 && text.indexOf('.', i) >= 0) {
      const v4 = ipv4Number(text.slice(i));
      if (v4 < 0 || words.length > 6) return null;
      words.push(Math.floor(v4 / 65536), v4 & 0xffff);
      break;
    }
    let value = 0;
    let digits = 0;
    for (; i < n; i++) {
      const d = hexDigit(text.charCodeAt(i));
      if (d < 0) break;
      if (++digits > 4) return null;
      value = value * 16 + d;
    }
    if (digits === 0 || words.length === 8) return null;
    words.push(value);
    if (i === n) break;
    // Only a colon may follow a group, and a group must follow a single colon.
    if (text.charCodeAt(i) !== COLON) return null;
    i++;
    if (text.charCodeAt(i) === COLON) {
      if (gap >= 0) return null;
      gap = words.length;
      i++;
    } else if (i === n) {
      return null;
    }
  }
  if (gap < 0) return words.length === 8 ? words : null;
  if (words.length > 7) return null;
  const zeros = 8 - words.length;
  const out = new Array<number>(8);
  for (let k = 0; k < 8; k++) {
    out[k] = k < gap ? words[k]! : k < gap + zeros ? 0 : words[k - zeros]!;
  }
  return out;
}

/** Formats eight 16-bit words as RFC 5952 IPv6 text. */
export function formatIpv6(words: readonly number[]): string {
  // Longest run of two or more zero words, first one on ties.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // One pass, no intermediate arrays: the eBPF source formats two addresses a tuple every drain.
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (i > 0 && i !== bestStart + bestLen) out += ':';
    out += words[i]!.toString(16);
  }
  return out;
}

/** Formats eight IPv6 words, folding IPv4-mapped addresses to dotted quad. */
export function formatIpWords(words: readonly number[]): string {
  if (
    words[0] === 0 &&
    words[1] === 0 &&
    words[2] === 0 &&
    words[3] === 0 &&
    words[4] === 0 &&
    words[5] === 0xffff
  ) {
    const a = words[6]!;
    const b = words[7]!;
    return `${a >> 8}.${a & 0xff}.${b >> 8}.${b & 0xff}`;
  }
  return formatIpv6(words);
}

/** Returns the canonical form of an IPv4 or IPv6 address, or null when it is not one. */
export function normalizeIp(text: string): string | null {
  // Dotted quad is accepted only in canonical form: the text is its own canonical form.
  if (ipv4Number(text) >= 0) return text;
  const v6 = parseIpv6(text);
  if (v6) return formatIpWords(v6);
  return null;
}

/** 4 for IPv4, 6 for IPv6, given a canonical address. */
export function ipFamily(canonical: string): 4 | 6 {
  return canonical.includes(':') ? 6 : 4;
}

/** Formats an endpoint as `ip:port`, bracketing IPv6 (`[::1]:53`). */
export function formatEndpoint(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
