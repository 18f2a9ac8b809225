/**
 * RFC 864 Character Generator: send characters until the client goes away; input is discarded.
 *
 * The stream is the RFC's "rotating" pattern: the 95 printable ASCII characters (space to `~`)
 * as a ring, 72 characters a line, then CRLF; each line starts one character later than the
 * one before, so the pattern repeats every 95 lines.
 *
 * What it teaches: backpressure from the sending side. chargen could produce data forever;
 * it writes only while the connection can take more, and waits until it can again. "Can take
 * more" has two parts. Node's: write() returns false once Node holds more than its high-water
 * mark, and 'drain' says when the kernel took it. The kernel's: left alone, Linux grows the send
 * buffer of a client that never reads up to net.ipv4.tcp_wmem's maximum (4 MiB), kernel memory
 * outside the server's RSS; so conn.write() also says stop once the client has --max-send-queue
 * bytes (256 KiB) unacknowledged, read from the kernel's Send-Q (src/framework/send-queue.ts;
 * a client that keeps up earns more). A client that stops reading stops the stream, and memory stays flat on both counts
 * (docs/reliability.md).
 */
import { defineProtocol } from '../framework/protocol.js';

const FIRST_PRINTABLE = 0x20;
const PRINTABLE_COUNT = 95; // 0x20 (space) to 0x7e (~)
const LINE_LENGTH = 72;
/** The largest UDP reply (RFC 864 says "a random number between 0 and 512"). */
const MAX_UDP_CHARACTERS = 512;

/** Line `n` of the pattern, with its CRLF. */
export function chargenLine(n: number): string {
  let line = '';
  for (let i = 0; i < LINE_LENGTH; i++) line += String.fromCharCode(FIRST_PRINTABLE + ((n + i) % PRINTABLE_COUNT));
  return `${line}\r\n`;
}

/** One full cycle of 95 lines, built once: the TCP stream is this block, over and over. */
const CYCLE = Buffer.from(Array.from({ length: PRINTABLE_COUNT }, (_, n) => chargenLine(n)).join(''), 'latin1');
/** What one TCP write hands the socket: the whole cycle. */
export const CHARGEN_WRITE_BYTES = CYCLE.length;

export const chargen = defineProtocol({
  name: 'chargen',
  rfc: 864,
  summary: 'sends a rotating pattern of printable characters until the client closes',
  wellKnownPort: 19,
  defaultPort: 19,
  closesFirst: false,
  options: {},
  createHandlers: (_settings, { shutdown }) => ({
    tcp: (conn) => {
      const { socket } = conn;
      socket.resume(); // input is discarded
      let sending = true;
      const send = (): void => {
        // Write until the send queue is full; onWritable calls us again when there is room.
        while (sending && conn.write(CYCLE));
      };
      // Stop generating and close our side: after the client's FIN (a passive close), or when
      // the server shuts down (then we close first, and the client sees the end of the stream).
      const stop = (): void => {
        sending = false;
        socket.end();
      };
      conn.onWritable(send);
      socket.on('end', stop);
      shutdown.addEventListener('abort', stop);
      socket.on('close', () => {
        sending = false;
        shutdown.removeEventListener('abort', stop);
      });
      send();
    },
    // Over UDP, each datagram is answered with 0 to 512 characters of the pattern.
    udp: () => {
      const length = Math.floor(Math.random() * (MAX_UDP_CHARACTERS + 1));
      return CYCLE.subarray(0, length);
    },
  }),
});
