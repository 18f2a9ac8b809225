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
