/**
 * RFC 868 Time: send the time as a 32-bit unsigned binary number, big-endian (network byte
 * order), counting seconds since 1900-01-01 00:00 UTC; then close. Over UDP, any datagram
 * is answered with those 4 bytes.
 *
 * What it teaches: a binary protocol and byte order (htonl), and a counter that wraps: 32 bits
 * of seconds from 1900 run out on 2036-02-07 06:28:16 UTC, and the value starts again at 0.
 */
import { defineProtocol } from '../framework/protocol.js';

/** Seconds from 1900-01-01 to 1970-01-01 (the Unix epoch), as RFC 868 tabulates. */
export const SECONDS_1900_TO_1970 = 2_208_988_800;
const TWO_TO_THE_32 = 2 ** 32;

/** The RFC 868 value for `date`: seconds since 1900, modulo 2^32. */
export function rfc868Seconds(date: Date): number {
  const seconds = Math.floor(date.getTime() / 1000) + SECONDS_1900_TO_1970;
  return ((seconds % TWO_TO_THE_32) + TWO_TO_THE_32) % TWO_TO_THE_32;
}

/**
 * The date an RFC 868 value stands for. 32 bits cannot say which 136-year era they count in;
 * like NTP, we read values with the top bit set as 1968–2036, and the rest as 2036–2104.
 */
export function decodeTime(value: number): Date {
  const secondsSince1900 = value >= 2 ** 31 ? value : value + TWO_TO_THE_32;
  return new Date((secondsSince1900 - SECONDS_1900_TO_1970) * 1000);
}

export function encodeTime(date: Date): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(rfc868Seconds(date)); // big-endian: network byte order
  return bytes;
}

export const time = defineProtocol({
  name: 'time',
  rfc: 868,
  summary: 'sends the time as 4 binary bytes (seconds since 1900), then closes first',
  wellKnownPort: 37,
  defaultPort: 37,
  closesFirst: true,
  options: {},
  createHandlers: (_settings, { now }) => ({
    tcp: (conn) => {
      conn.socket.resume(); // input is ignored
      conn.close(encodeTime(now()));
    },
    udp: () => encodeTime(now()),
  }),
});
