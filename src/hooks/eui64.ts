// IPv6 addresses by modified EUI-64 (RFC 4291 appendix A), as Synnefo's `mac2eui64`: the interface
// identifier is the MAC with `ff:fe` inserted between its 3rd and 4th octets and the universal/local
// bit (0x02 of the first octet) flipped, appended to the first 64 bits of an IPv6 /64 prefix.
// Pure and dependency-free: the hook imports it on Ganeti's critical path.

export class Eui64Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Eui64Error';
  }
}

const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

export function isMac(text: string): boolean {
  return MAC_RE.test(text);
}

/** The 6 octets of a MAC written `xx:xx:xx:xx:xx:xx`, or an Eui64Error. */
export function parseMac(text: string): number[] {
  if (!MAC_RE.test(text)) throw new Eui64Error(`${JSON.stringify(text)} is not a MAC address (6 hex octets separated by ':')`);
  return text.split(':').map((h) => parseInt(h, 16));
}

/** Parses an IPv6 address (with `::` and an optional dotted IPv4 tail) into its 8 16-bit groups, or undefined. */
export function parseIpv6(text: string): number[] | undefined {
  if (text.length === 0 || text.length > 45 || /[^0-9a-fA-F:.]/.test(text)) return undefined;
  let head = text;
  let tail: number[] = [];
  // A dotted IPv4 in the last 32 bits (`::ffff:192.0.2.1`).
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    const v4 = text.slice(lastColon + 1).split('.');
    if (v4.length !== 4 || v4.some((p) => !/^(?:0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255)) return undefined;
    const b = v4.map(Number) as [number, number, number, number];
    tail = [(b[0] << 8) | b[1], (b[2] << 8) | b[3]];
    head = text.slice(0, lastColon + 1);
    // `::1.2.3.4` leaves `::`, `1::1.2.3.4` leaves `1::`, `1:2:3:4:5:6:1.2.3.4` leaves `1:2:3:4:5:6:`.
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const parseGroups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const parts = s.split(':');
    const out: number[] = [];
    for (const p of parts) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  const dbl = head.indexOf('::');
  let groups: number[];
  if (dbl === -1) {
    const g = parseGroups(head);
    if (!g) return undefined;
    groups = [...g, ...tail];
    if (groups.length !== 8) return undefined;
  } else {
    if (head.indexOf('::', dbl + 1) !== -1) return undefined;
    const left = parseGroups(head.slice(0, dbl));
    const right = parseGroups(head.slice(dbl + 2));
    if (!left || !right) return undefined;
    const known = left.length + right.length + tail.length;
    if (known > 7) return undefined;
    groups = [...left, ...new Array<number>(8 - known).fill(0), ...right, ...tail];
  }
  return groups;
}

/** RFC 5952 text: lower-case, no leading zeros, the longest run (≥ 2, first on a tie) of zero groups as `::`. */
export function formatIpv6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: readonly number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** Parses `address/64`; anything else (not IPv6, no length, another length) is an Eui64Error. */
export function parsePrefix64(text: string): number[] {
  const slash = text.indexOf('/');
  const bad = (why: string): never => {
    throw new Eui64Error(`${JSON.stringify(text)} is not an IPv6 /64 prefix (${why})`);
  };
  if (slash === -1) return bad('no prefix length');
  const groups = parseIpv6(text.slice(0, slash));
  if (!groups) return bad('not an IPv6 address');
  const len = text.slice(slash + 1);
  if (len !== '64') return bad(/^\d+$/.test(len) ? `prefix length ${len}, must be 64` : 'bad prefix length');
  return groups;
}

/**
 * The modified EUI-64 address of `mac` in `prefix` (`2001:db8::/64`). Host bits set in the prefix
 * are ignored: only its first 64 bits are used, as in Synnefo.
 */
export function eui64(mac: string, prefix: string): string {
  const m = parseMac(mac);
  const net = parsePrefix64(prefix);
  const o = [(m[0] ?? 0) ^ 0x02, m[1] ?? 0, m[2] ?? 0, 0xff, 0xfe, m[3] ?? 0, m[4] ?? 0, m[5] ?? 0];
  const iid = [0, 2, 4, 6].map((i) => ((o[i] ?? 0) << 8) | (o[i + 1] ?? 0));
  return formatIpv6([...net.slice(0, 4), ...iid]);
}
