/**
 * The PROXY protocol (HAProxy's doc/proxy-protocol.txt), versions 1 and 2. A load balancer that
 * accepts the client's connection opens its own to us, so getpeername(2) here names the balancer,
 * not the client. With `send-proxy` (v1, one text line) or `send-proxy-v2` (binary) it first
 * writes a header saying which socket pair the client used; we read that header before anything
 * else and serve, log and limit the connection as the client's.
 *
 * The spec's rules for a receiver, which this follows:
 *   - it is configured, never guessed: a header is required on every connection, and a header
 *     from an address not trusted to send one is refused (anyone could claim any address);
 *   - nothing is sent before the whole header has arrived (daytime speaks first: it waits);
 *   - a v1 header is at most 107 bytes, CRLF included; `UNKNOWN`, and v2's `LOCAL` command (a
 *     health check from the balancer itself), are served as direct connections.
 */
import type { Socket } from 'node:net';
import net from 'node:net';
import { formatIPv4, formatIPv6, type Endpoint } from './endpoint.js';

/** Which header versions a listener accepts: `--proxy-protocol v1|v2|any`. */
export const PROXY_VERSIONS = ['v1', 'v2', 'any'] as const;
export type ProxyVersions = (typeof PROXY_VERSIONS)[number];

/** What a proxy said about the client's connection. */
export interface ProxyHeader {
  version: 1 | 2;
  /**
   * The client's socket pair as the proxy received it (`remote` the client, `local` the address
   * the client connected to); undefined for v2 LOCAL, v1 UNKNOWN, and families we do not serve
   * (UNIX sockets): the connection is then served as a direct one.
   */
  client?: { local: Endpoint; remote: Endpoint };
  /** The header's length in bytes: what follows is the client's own data. */
  length: number;
}

export type HeaderParse =
  | { status: 'incomplete' }
  | { status: 'complete'; header: ProxyHeader }
  | { status: 'malformed'; problem: string };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** The spec's maximum for a v1 line: "PROXY UNKNOWN" plus two IPv6 addresses and ports, and CRLF. */
export const V1_MAX_LENGTH = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED_LENGTH = 16;
/**
 * The most v2 address and TLV bytes we take after the fixed 16. The format allows 65,535; the
 * addresses need at most 216 (two UNIX paths), and HAProxy's TLVs (ALPN, authority, unique id, TLS
 * details) fit well within 512, the limit dnsdist also uses. More is refused, not buffered.
 */
export const V2_MAX_PAYLOAD = 512;
/** v2 command (low nibble of byte 13): LOCAL is the proxy's own connection, PROXY a client's. */
const V2_LOCAL = 0x0;
const V2_PROXY = 0x1;
/** v2 family and transport (byte 14): TCP over IPv4 and over IPv6 carry addresses we serve. */
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;

const PORT = /^(0|[1-9]\d{0,4})$/;

/**
 * Parses the start of a connection's bytes. `incomplete` until a whole header is there; malformed
 * as soon as the bytes cannot become one, so that a wrong client is refused at once, not after the
 * timeout.
 */
export function parseProxyHeader(bytes: Buffer, versions: ProxyVersions): HeaderParse {
  if (bytes.length === 0) return { status: 'incomplete' };
  const looksLikeV2 = bytes[0] === V2_SIGNATURE[0];
  if (looksLikeV2 && versions !== 'v1') return parseV2(bytes);
  if (!looksLikeV2 && versions !== 'v2') return parseV1(bytes);
  return { status: 'malformed', problem: `not a PROXY protocol ${versions} header` };
}

function parseV1(bytes: Buffer): HeaderParse {
  const prefix = Math.min(bytes.length, V1_PREFIX.length);
  if (!bytes.subarray(0, prefix).equals(V1_PREFIX.subarray(0, prefix))) return { status: 'malformed', problem: 'not a PROXY protocol header' };
  const end = bytes.subarray(0, V1_MAX_LENGTH).indexOf('\r\n');
  if (end === -1) {
    return bytes.length >= V1_MAX_LENGTH ? { status: 'malformed', problem: `no CRLF within a v1 header's ${V1_MAX_LENGTH} bytes` } : { status: 'incomplete' };
  }
  const fields = bytes.toString('latin1', V1_PREFIX.length, end).split(' ');
  const length = end + 2;
  if (fields[0] === 'UNKNOWN') return { status: 'complete', header: { version: 1, length } };
  const [family, source, destination, sourcePort, destinationPort, ...extra] = fields;
  const isAddress = family === 'TCP4' ? net.isIPv4 : family === 'TCP6' ? net.isIPv6 : undefined;
  if (isAddress === undefined) return { status: 'malformed', problem: 'a v1 header whose protocol is not TCP4, TCP6 or UNKNOWN' };
  const ports = [sourcePort, destinationPort].map((port) => (port !== undefined && PORT.test(port) && Number(port) <= 65535 ? Number(port) : undefined));
  if (extra.length > 0 || !isAddress(source ?? '') || !isAddress(destination ?? '') || ports.includes(undefined)) {
    return { status: 'malformed', problem: `a v1 ${family} header without two ${family === 'TCP4' ? 'IPv4' : 'IPv6'} addresses and two ports` };
  }
  return {
    status: 'complete',
    header: { version: 1, length, client: { remote: { address: source!, port: ports[0]! }, local: { address: destination!, port: ports[1]! } } },
  };
}

function parseV2(bytes: Buffer): HeaderParse {
  const prefix = Math.min(bytes.length, V2_SIGNATURE.length);
  if (!bytes.subarray(0, prefix).equals(V2_SIGNATURE.subarray(0, prefix))) return { status: 'malformed', problem: 'not a PROXY protocol header' };
  if (bytes.length < V2_FIXED_LENGTH) return { status: 'incomplete' };
  const version = bytes[12]! >> 4;
  const command = bytes[12]! & 0x0f;
  const familyAndTransport = bytes[13]!;
  const payload = bytes.readUInt16BE(14);
  if (version !== 2) return { status: 'malformed', problem: `a binary header of version ${version}, not 2` };
  if (command !== V2_LOCAL && command !== V2_PROXY) return { status: 'malformed', problem: `a v2 header with command ${command}, neither LOCAL nor PROXY` };
  // The spec defines families 0 to 3 (UNSPEC, INET, INET6, UNIX) and transports 0 to 2 (UNSPEC, STREAM, DGRAM).
  if (familyAndTransport >> 4 > 3 || (familyAndTransport & 0x0f) > 2) return { status: 'malformed', problem: 'a v2 header with an undefined address family or transport' };
  if (payload > V2_MAX_PAYLOAD) return { status: 'malformed', problem: `a v2 header of ${V2_FIXED_LENGTH + payload} bytes, more than ${V2_FIXED_LENGTH + V2_MAX_PAYLOAD}` };
  const length = V2_FIXED_LENGTH + payload;
  if (bytes.length < length) return { status: 'incomplete' };
  if (command === V2_LOCAL) return { status: 'complete', header: { version: 2, length } };
  const addresses = bytes.subarray(V2_FIXED_LENGTH, length);
  const client = familyAndTransport === V2_TCP4 ? v2Addresses(addresses, 4, formatIPv4) : familyAndTransport === V2_TCP6 ? v2Addresses(addresses, 16, formatIPv6) : null;
  if (client === undefined) return { status: 'malformed', problem: 'a v2 header too short for its addresses' };
  return { status: 'complete', header: { version: 2, length, ...(client !== null && { client }) } };
}

/** Source address, destination address, source port, destination port, in network byte order. */
function v2Addresses(bytes: Buffer, size: number, format: (bytes: ArrayLike<number>) => string): ProxyHeader['client'] {
  if (bytes.length < 2 * size + 4) return undefined;
  return {
    remote: { address: format(bytes.subarray(0, size)), port: bytes.readUInt16BE(2 * size) },
    local: { address: format(bytes.subarray(size, 2 * size)), port: bytes.readUInt16BE(2 * size + 2) },
  };
}

const ignoreError = (): void => {};

export type HeaderOutcome = { header: ProxyHeader } | { problem: string; incomplete: boolean };

/**
 * Reads a header from a paused socket (the listener's pauseOnConnect): resumes it, gathers bytes
 * until a header is whole, pauses it again and puts back (unshift) whatever the client sent after
 * the header, for the protocol to read. Gives up after `timeoutMs`, or when the peer closes first.
 */
export function readProxyHeader(socket: Socket, versions: ProxyVersions, timeoutMs: number): Promise<HeaderOutcome> {
  return new Promise((resolve) => {
    let received: Buffer = Buffer.alloc(0);
    const finish = (outcome: HeaderOutcome): void => {
      clearTimeout(timer);
      socket.off('data', onData).off('end', onEnd).off('error', onEnd);
      // Until the connection's own handlers are on (connection.ts, or the refusal), an error must not crash the server.
      socket.on('error', ignoreError);
      socket.pause();
      resolve(outcome);
    };
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const parsed = parseProxyHeader(received, versions);
      if (parsed.status === 'incomplete') return;
      if (parsed.status === 'malformed') return finish({ problem: parsed.problem, incomplete: false });
      finish({ header: parsed.header });
      if (received.length > parsed.header.length) socket.unshift(received.subarray(parsed.header.length));
    };
    const onEnd = (): void => finish({ problem: 'the peer closed before its header was complete', incomplete: true });
    const timer = setTimeout(() => finish({ problem: `no complete header within ${timeoutMs / 1000} s`, incomplete: true }), timeoutMs);
    socket.on('data', onData).on('end', onEnd).on('error', onEnd);
    socket.resume();
  });
}
