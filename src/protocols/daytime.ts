/**
 * RFC 867 Daytime: on connect, send the date and time as a line of text, then close.
 *
 * What it teaches: the active close. The server closes first, so the server's end of the
 * socket pair goes FIN_WAIT_1 → FIN_WAIT_2 → TIME_WAIT and stays there for 60 s (Linux's fixed
 * TIME_WAIT; RFC 793 says 2×MSL), while the client's end just closes. `lab-server states` shows it.
 * `conn.close(line)` writes the line and closes in one step; the framework reports it as `sent`.
 */
import { formatAsctime } from './asctime.js';
import { defineProtocol } from '../framework/protocol.js';

export const daytime = defineProtocol({
  name: 'daytime',
  rfc: 867,
  summary: 'writes the date and time as one line, then closes first (active close)',
  wellKnownPort: 13,
  defaultPort: 13,
  closesFirst: true,
  options: {
    utc: { type: 'boolean', default: false, describe: 'Send UTC instead of local time (local time follows TZ)' },
    crlf: { type: 'boolean', default: false, describe: 'End the line with CRLF, as BSD inetd does, instead of LF' },
  },
  createHandlers: ({ utc, crlf }, { now }) => {
    const daytimeLine = (): string => formatAsctime(now(), { utc });
    const ending = crlf ? '\r\n' : '\n';
    return {
      tcp: (conn) => {
        // RFC 867: "any data received is thrown away". Reading it matters: closing a socket
        // with unread data in its receive buffer makes the kernel send RST instead of FIN.
        conn.socket.resume();
        conn.close(daytimeLine() + ending);
      },
      // Over UDP, any datagram asks for the time; the reply is one datagram.
      udp: () => Buffer.from(daytimeLine() + ending),
    };
  },
});
