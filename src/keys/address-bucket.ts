import { isIPv4, isIPv6 } from 'node:net';

/**
 * The bucket a client address is counted in by the failure budget.
 *
 * IPv4 addresses count one by one. An IPv6 client usually holds a whole /64 (SLAAC, privacy
 * addresses, one prefix per customer), so counting each address alone would give one attacker
 * 2^64 budgets: IPv6 addresses count per /64. IPv4-mapped IPv6 (`::ffff:192.0.2.1`, which is
 * what a dual-stack socket reports for an IPv4 peer) counts as the IPv4 address. Anything
 * that is not an IP address (a Unix socket, an unknown peer) shares one bucket per string.
 */
export function addressBucket(address: string): string {
  // A zone id (fe80::1%eth0) names an interface, not a different peer.
  const bare = address.includes('%') ? address.slice(0, address.indexOf('%')) : address;
  if (isIPv4(bare)) return bare;
  if (!isIPv6(bare)) return `other:${address}`;
  const groups = ipv6Groups(bare);
  if (groups === null) return `other:${address}`;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of an address that `isIPv6` accepted (`::` and a dotted tail expanded). */
function ipv6Groups(address: string): number[] | null {
  let text = address.toLowerCase();
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    // A dotted IPv4 tail is the last two groups written in decimal.
    if (!isIPv4(last)) return null;
    const [a = 0, b = 0, c = 0, d = 0] = last.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string | undefined): number[] =>
    part === undefined || part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16));
  const head = parse(halves[0]);
  const rest = parse(halves[1]);
  let groups = head;
  if (halves.length === 2) {
    const zeros = 8 - head.length - rest.length;
    if (zeros < 0) return null;
    groups = [...head, ...new Array<number>(zeros).fill(0), ...rest];
  }
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff))
    return null;
  return groups;
}
