/**
 * RFC 862 Echo: "any data received is sent back". Port 7 in the RFC; we default to the
 * tutorial's 5000, which needs no root.
 *
 * What it teaches:
 * - TCP carries a byte stream, not messages: a 'data' chunk is whatever the kernel had ready,
 *   so lines are split and joined freely. We send back bytes, not lines.
 * - Flow control (backpressure): when the client stops reading, its receive window and our
 *   send buffer fill, write() starts returning false, and we stop reading until 'drain'.
 *   The client's own writes then block. Memory stays bounded for everyone.
 * - The passive close: the server never closes first. When the client sends FIN (we read EOF),
 *   we finish sending and close our side: the client, which closed first, gets TIME_WAIT.
 */
import { LinePreview, type LoggedLine } from '../framework/escape.js';
import type { Connection } from '../framework/connection.js';
import { defineProtocol } from '../framework/protocol.js';
import { RateLimiter } from '../framework/token-bucket.js';

/** How much of each received line the log shows; the rest is counted, not kept. */
const MESSAGE_PREVIEW_BYTES = 80;
/** Log at most this many messages per connection per second (after a burst): a flood must not make logging the bottleneck. */
const MESSAGE_LOGS_PER_SECOND = 20;
const MESSAGE_LOG_BURST = 40;
/** And this many for the whole server: 100 connections within their own budgets would still log 2,000 lines a second. */
const SERVER_MESSAGE_LOGS_PER_SECOND = 100;
const SERVER_MESSAGE_LOG_BURST = 200;

export const echo = defineProtocol({
  name: 'echo',
  rfc: 862,
  summary: 'sends back every byte it receives; closes only after the client does',
  wellKnownPort: 7,
  defaultPort: 5000,
  closesFirst: false,
  options: {},
  createHandlers: () => {
    const serverLogBudget = new RateLimiter(SERVER_MESSAGE_LOGS_PER_SECOND, SERVER_MESSAGE_LOG_BURST);
    // Over UDP, the reply to a datagram is the datagram itself.
    return { tcp: (conn) => serveEcho(conn, serverLogBudget), udp: (request) => request };
  },
});

function serveEcho(conn: Connection, serverLogBudget: RateLimiter): void {
  const { socket } = conn;
  const logsMessages = conn.log.isLevelEnabled('info');
  const lines = new LinePreview(MESSAGE_PREVIEW_BYTES);
  const messageLogBudget = new RateLimiter(MESSAGE_LOGS_PER_SECOND, MESSAGE_LOG_BURST);
  /** Lines seen whole but not logged since the last one logged. */
  let skipped = 0;
  // Decide before doing the work: once this connection's budget is spent, its next token is
  // 1/20 s away, and until then we pass chunks through without looking for lines in them
  // (LinePreview#skip); when the whole server's budget is spent, we wait a second, as many
  // connections share it. The bytes are counted, not examined, and the next logged message
  // says how many there were.
  let quietUntil = 0;
  let unexaminedBytes = 0;

  /** 0 if this line may be logged; otherwise how long to stop looking for lines. */
  const quietPeriodMs = (): number => {
    // This connection's budget first, so a flooding client spends only its own tokens.
    if (messageLogBudget.take() === undefined) return 1000 / MESSAGE_LOGS_PER_SECOND;
    if (serverLogBudget.take() === undefined) return 1000;
    return 0;
  };

  // Like the tutorial's Perl server, which prints "message: ..." for each line it reads.
  const logMessage = ({ text, length, truncated }: LoggedLine): void => {
    const quietMs = quietPeriodMs();
    if (quietMs > 0) {
      skipped += 1;
      quietUntil = Date.now() + quietMs;
      lines.skip();
      return;
    }
    const [notLogged, unlogged] = [skipped, unexaminedBytes];
    [skipped, unexaminedBytes] = [0, 0];
    conn.log.info(
      { event: 'message', text, length, truncated, ...(notLogged > 0 && { skipped: notLogged }), ...(unlogged > 0 && { unexaminedBytes: unlogged }) },
      `message: ${text}${truncated ? ` … (${length} bytes)` : ''}${notLogged > 0 ? ` (${notLogged} earlier messages not logged)` : ''}` +
        `${unlogged > 0 ? ` (${unlogged} earlier bytes not logged)` : ''}`,
    );
  };

  socket.on('data', (chunk: Buffer) => {
    if (logsMessages) {
      if (Date.now() < quietUntil) {
        lines.skip();
        unexaminedBytes += chunk.length;
      } else {
        unexaminedBytes += chunk.length - lines.push(chunk, logMessage);
      }
    }
    // write() queues the chunk either way; false means the queue is past its high-water mark.
    if (!socket.write(chunk)) socket.pause();
  });
  socket.on('drain', () => socket.resume());

  // The client's FIN. end() sends ours after everything still queued: the passive close.
  socket.on('end', () => {
    if (logsMessages) lines.flush(logMessage);
    socket.end();
  });
}
