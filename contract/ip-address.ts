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

/** Parses IPv6 text (with optional embedded IPv4 tail) into eight 16-bit words, or null. */
export function parseIpv6(text: string): number[] | null {
  if (text.length < 2 || text.length > 45 || text.includes('%')) return null;
  let head = text;
  const tailWords: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.indexOf('.', lastColon) > lastColon) {
    const v4 = parseIpv4(text.slice(lastColon + 1));
    if (!v4) return null;
    tailWords.push(((v4[0]! << 8) | v4[1]!) >>> 0, ((v4[2]! << 8) | v4[3]!) >>> 0);
    head = text.slice(0, lastColon + 1);
    // "::1.2.3.4" leaves "::" and "a:b::c:1.2.3.4" leaves "a:b::c:"; a single
    // trailing colon that is not part of "::" is the separator before the tail.
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const parts = head.split('::');
  if (parts.length > 2) return null;
  const parseGroup = (g: string): number[] | null => {
    if (g === '') return [];
    const words: number[] = [];
    for (const w of g.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return null;
      words.push(Number.parseInt(w, 16));
    }
    return words;
  };
  const left = parseGroup(parts[0]!);
  const right = parts.length === 2 ? parseGroup(parts[1]!) : [];
  if (!left || !right) return null;
  const explicit = left.length + right.length + tailWords.length;
  if (parts.length === 2) {
    if (explicit > 7) return null;
    return [...left, ...new Array<number>(8 - explicit).fill(0), ...right, ...tailWords];
  }
  if (explicit !== 8) return null;
  return [...left, ...tailWords];
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
