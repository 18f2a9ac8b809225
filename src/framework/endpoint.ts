/**
 * One end of a TCP connection: an IP address and a port.
 *
 * A connection is identified by its *socket pair*, the 4-tuple of both ends (Stevens, UNP §2.10).
 * Stevens writes a listening socket as `{*:5000, *:*}`: any local address, any remote end.
 */
export interface Endpoint {
  address: string;
  port: number;
}

/**
 * A dual-stack (`::`) listener receives IPv4 clients as IPv4-mapped IPv6 addresses,
 * `::ffff:127.0.0.1`; we show them as the IPv4 address a student typed.
 */
export function unmapIPv4(address: string): string {
  if (!address.startsWith('::')) return address; // most addresses: checked first, as it is cheap
  return address.toLowerCase().startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** 127.0.0.0/8 or ::1 (IPv4-mapped too): an address only this machine can reach. */
export const isLoopback = (address: string): boolean => {
  const plain = unmapIPv4(address);
  return plain === '::1' || plain.startsWith('127.');
};

type SocketAddresses = { localAddress?: string; localPort?: number; remoteAddress?: string; remotePort?: number };

/** A connected socket's own end, as the kernel reports it (getsockname). */
export const localEndpoint = (socket: SocketAddresses): Endpoint => ({ address: socket.localAddress ?? '', port: socket.localPort ?? 0 });

/** A connected socket's peer, as the kernel reports it (getpeername). */
export const remoteEndpoint = (socket: SocketAddresses): Endpoint => ({ address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 });

/** The two ends of a connected socket. */
export function socketEnds(socket: SocketAddresses): { local: Endpoint; remote: Endpoint } {
  return { local: localEndpoint(socket), remote: remoteEndpoint(socket) };
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && unmapIPv4(a.address) === unmapIPv4(b.address);
}

/** An IPv4 address's 4 bytes as text: `127.0.0.1`. */
export const formatIPv4 = (bytes: ArrayLike<number>): string => Array.from(bytes).join('.');

/**
 * An IPv6 address's 16 bytes as Node's `net` shows them (RFC 5952): 8 groups of 16 bits in
 * lower-case hex without leading zeros, the longest run of two or more zero groups (the first, on
 * a tie) written `::`, and an IPv4 address inside an IPv4-mapped (`::ffff:127.0.0.1`, a dual-stack
 * socket's view of an IPv4 peer) or IPv4-compatible (`::1.2.3.4`) one written dotted.
 */
export function formatIPv6(bytes: ArrayLike<number>): string {
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let best = { start: -1, length: 0 };
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length >= 2 && length > best.length) best = { start, length };
    start += length;
  }
  if (best.start === 0 && (best.length === 6 || (best.length === 5 && groups[5] === 0xffff))) {
    return `::${best.length === 5 ? 'ffff:' : ''}${formatIPv4(Array.from(bytes).slice(12, 16))}`;
  }
  const hex = groups.map((group) => group.toString(16));
  if (best.start === -1) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`;
}

/** `127.0.0.1:5000`, or `[::1]:5000` for IPv6 (brackets keep the port apart from the colons). */
export function formatEndpoint({ address, port }: Endpoint): string {
  const shown = unmapIPv4(address);
  return shown.includes(':') ? `[${shown}]:${port}` : `${shown}:${port}`;
}

const WILDCARD_ADDRESSES = new Set(['::', '0.0.0.0']);

/** The listening socket's local end in Stevens' notation: `*:5000` for a wildcard bind. */
export function formatListeningEndpoint(endpoint: Endpoint): string {
  return WILDCARD_ADDRESSES.has(endpoint.address) ? `*:${endpoint.port}` : formatEndpoint(endpoint);
}

/** The socket pair as Stevens writes it: `{local, remote}`. */
export function formatSocketPair(local: Endpoint, remote: Endpoint): string {
  return `{${formatEndpoint(local)}, ${formatEndpoint(remote)}}`;
}
