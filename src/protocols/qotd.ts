/**
 * RFC 865 Quote of the Day: send one short message, then close. Over UDP, any datagram
 * is answered with one quote. The RFC asks for fewer than 512 characters, printable ASCII,
 * space, CR and LF only; `--quotes FILE` is checked against that when the server starts.
 *
 * What it teaches: like daytime, an active close: the server's side enters TIME_WAIT.
 */
import { LabError, usageError } from '../errors.js';
import { readRegularFile } from '../framework/named-files.js';
import { defineProtocol } from '../framework/protocol.js';

/** RFC 865: "the message should be limited to the ASCII printing characters, space, carriage return, and line feed". */
const ALLOWED_QUOTE = /^[\x20-\x7e\r\n]+$/;
export const MAX_QUOTE_LENGTH = 511;

const BUILT_IN_QUOTES = [
  'The Internet is a network of networks. -- paraphrasing RFC 1122',
  'Be conservative in what you do, be liberal in what you accept from others. -- RFC 761',
  'A TCP connection is identified by a pair of sockets. -- RFC 793',
  'The side that closes first waits in TIME_WAIT. -- W. Richard Stevens, in spirit',
  'There is no such thing as a TCP message: only a stream of bytes.',
];

/**
 * The largest --quotes file read: 1 MiB, room for about two thousand quotes of the RFC's
 * longest (511 characters), and far more of usual ones. It is a guard, not a format limit:
 * a path to /dev/zero or a huge log would otherwise be read into memory whole (gigabytes in
 * seconds) before any check could refuse it. The size is checked before reading.
 */
export const MAX_QUOTES_FILE_BYTES = 1024 * 1024;

/**
 * The text of a quotes file, refused before any byte is read unless it is a regular file of at
 * most MAX_QUOTES_FILE_BYTES (see readRegularFile: a FIFO or a device is never waited on or read).
 */
function readQuotesFile(path: string): string {
  try {
    return readRegularFile(path, {
      maxBytes: MAX_QUOTES_FILE_BYTES,
      wanted: 'a text file of quotes',
      capOf: 'a quotes file',
      refuse: (why) => usageError('ERR_QUOTES_FILE', `cannot use --quotes ${JSON.stringify(path)}: ${why}`),
    }).toString('latin1');
  } catch (error) {
    if (error instanceof LabError) throw error;
    throw usageError('ERR_QUOTES_FILE', `cannot read --quotes ${JSON.stringify(path)}: ${(error as NodeJS.ErrnoException).code}`);
  }
}

/**
 * Quotes from a file: separated by lines holding only `%` (the fortune(6) format) or by blank lines.
 * Each must fit the RFC's rules; a bad file is a usage error before the server starts.
 */
export function loadQuotes(path: string): string[] {
  const text = readQuotesFile(path);
  const quotes: string[] = [];
  let current: string[] = [];
  const endQuote = (): void => {
    if (current.length > 0) quotes.push(current.join('\r\n'));
    current = [];
  };
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '' || line.trim() === '%') endQuote();
    else current.push(line.trimEnd());
  }
  endQuote();
  if (quotes.length === 0) throw usageError('ERR_QUOTES_FILE', `--quotes ${JSON.stringify(path)} holds no quotes`);
  quotes.forEach((quote, i) => {
    const where = `quote ${i + 1} in ${path} breaks RFC 865`;
    if (quote.length + 2 > MAX_QUOTE_LENGTH) {
      throw usageError('ERR_QUOTES_FILE', `${where}: ${quote.length} characters, but at most ${MAX_QUOTE_LENGTH - 2} fit (with its CRLF, a quote must stay under 512)`);
    }
    if (!ALLOWED_QUOTE.test(quote)) {
      throw usageError('ERR_QUOTES_FILE', `${where}: use only printable ASCII characters and spaces (no tabs, control or non-ASCII characters)`);
    }
  });
  return quotes;
}

export const qotd = defineProtocol({
  name: 'qotd',
  rfc: 865,
  summary: 'sends one short quote, then closes first (active close)',
  wellKnownPort: 17,
  defaultPort: 17,
  closesFirst: true,
  options: {
    quotes: { type: 'string', requiresArg: true, describe: 'A file of quotes, separated by % lines or blank lines [default: a small built-in set]' },
  },
  createHandlers: ({ quotes: path }) => {
    const quotes = path === undefined ? BUILT_IN_QUOTES : loadQuotes(path);
    let next = 0;
    // Lines end in CRLF on the wire, as in every text protocol of its time.
    const nextQuote = (): Buffer => Buffer.from(`${quotes[next++ % quotes.length]}\r\n`, 'latin1');
    return {
      tcp: (conn) => {
        conn.socket.resume(); // input is ignored
        conn.close(nextQuote());
      },
      udp: nextQuote,
    };
  },
});
