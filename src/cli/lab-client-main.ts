/**
 * `lab-client <protocol> [host] [port]`: the classic clients, with their socket pair on request.
 * What the server sends goes to stdout; what the client itself says goes to stderr.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { formatAsctime } from '../protocols/asctime.js';
import { askOverUdp, sendDatagram } from '../clients/datagram.js';
import { describeReset } from '../clients/connect.js';
import { fetchDaytime } from '../clients/daytime.js';
import { sendAll } from '../clients/discard.js';
import { runEchoClient } from '../clients/echo.js';
import { readFromServer, type StreamReply } from '../clients/stream.js';
import { formatEndpoint, formatSocketPair, type Endpoint } from '../framework/endpoint.js';
import { escapeForLog } from '../framework/escape.js';
import { ExitCode, LabError } from '../errors.js';
import { findProtocol, protocols } from '../protocols/index.js';
import { decodeTime } from '../protocols/time.js';
import { MAX_REPLY_BYTES } from '../framework/datagram-server.js';
import { NUMBER_VALUE, parseServerPort, parseTarget, positiveIntegerOption, secondsOption, type Target } from './arguments.js';
import { lastValueWins, noStrayArguments, runCli, skipHelpRendering, usageErrors, VERSION } from './run.js';

const PROGRAM = 'lab-client';
const DEFAULT_TIMEOUT_SECONDS = 10;
const DEFAULT_CHARGEN_BYTES = 1024;
/** A time server sends exactly this: seconds since 1900, 32 bits, network byte order (RFC 868). */
const TIME_BYTES = 4;
/**
 * How much of a time reply we read: more than 4, so that a server that sends something else (a
 * daytime server's 25-byte line) is caught and shown, rather than its first 4 bytes decoded as a date.
 */
const TIME_READ_LIMIT = 512;
/** A time server that sends its 4 bytes but never closes (--no-close): stop after this much silence. */
const TIME_QUIET_MS = 200;
/** At most this many bytes of a wrong or broken reply are shown, escaped, in the error. */
const PREVIEW_BYTES = 64;

const EXIT_CODES_HELP =
  `Exit status: 0 on success, also when the server reset the connection after its whole reply (said on stderr); ${ExitCode.usage} bad usage; ` +
  `${ExitCode.dataError} the echo differed from what was sent, or a reply was malformed; ${ExitCode.noHost} unknown host; ` +
  `${ExitCode.unavailable} could not connect, no reply, or the connection was reset or failed before the reply was whole; ${ExitCode.osError} ulimit -n too low to start.`;

const say = (line: string): void => void process.stderr.write(`${line}\n`);
/** A warning: something the user should know, though the command did its job. */
const warn = (line: string): void => say(`${PROGRAM}: ${line}`);

/** Options every client has; the default port is the protocol's own. */
function clientOptions(y: Argv, protocolName: string) {
  const protocol = findProtocol(protocolName)!;
  return y
    .positional('host', {
      type: 'string', default: 'localhost',
      describe: 'Server host name or address, or host:port ([::1]:5000 for IPv6); every address it resolves to is tried in turn',
    })
    .positional('port-number', { type: 'string', describe: 'Server port, as telnet and nc take it (the same as --port)' })
    .options({
      port: {
        ...NUMBER_VALUE, alias: 'p', defaultDescription: String(protocol.defaultPort), coerce: (value: unknown) => parseServerPort(value),
        describe: 'Server port',
      },
      udp: { type: 'boolean', default: false, describe: 'Ask over UDP: one datagram out, one back (if any)' },
      timeout: { ...NUMBER_VALUE, default: DEFAULT_TIMEOUT_SECONDS, coerce: secondsOption('timeout'), describe: 'Seconds to wait for a connection or a reply' },
      verbose: { alias: 'v', type: 'boolean', default: false, describe: "Print each address tried and this client's socket pair (its ephemeral port)" },
    })
    .strict();
}

type ClientArguments = Awaited<ReturnType<typeof clientOptions>['argv']>;

/** The host and port from wherever they were typed (see parseTarget); checked before any socket is made. */
function targetOf(args: ClientArguments, protocolName: string): Target {
  return parseTarget({ host: args.host, portArgument: args.portNumber, portOption: args.port, defaultPort: findProtocol(protocolName)!.defaultPort });
}

/** The connection part of every TCP client's options, with what --verbose adds. */
function connection(args: ClientArguments, protocolName: string) {
  const { host, port } = targetOf(args, protocolName);
  return {
    host,
    port,
    timeoutMs: args.timeout,
    hint: `is ${/^[aeiou]/.test(protocolName) ? 'an' : 'a'} ${protocolName} server running? (lab-server ${protocolName} --port ${port})`,
    onAttempt: args.verbose ? (target: Endpoint, outcome: string) => say(`trying ${formatEndpoint(target)}: ${outcome}`) : undefined,
    onConnected: args.verbose
      ? (local: Endpoint, remote: Endpoint) =>
          say(`socket pair ${formatSocketPair(local, remote)}: local ${formatEndpoint(local)} (ephemeral port ${local.port}), remote ${formatEndpoint(remote)}`)
      : undefined,
  };
}

/** One datagram out, one reply back; a clear error when none comes. */
async function askUdp(args: ClientArguments, protocolName: string, payload: Buffer): Promise<Buffer> {
  const { host, port } = targetOf(args, protocolName);
  const reply = await askOverUdp({ host, port, payload, timeoutMs: args.timeout });
  if (reply === undefined) {
    throw new LabError('ERR_NO_REPLY', `no UDP reply from ${host} port ${port} within ${args.timeout / 1000} s (no server there, or it chose not to answer)`);
  }
  return reply;
}

/** Standard input, at most `limit` bytes (a datagram's worth). */
async function readInput(limit: number): Promise<Buffer> {
  if (process.stdin.isTTY) say(`Type the datagram's text, then Ctrl-D (at most ${limit} bytes are sent).`);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).subarray(0, limit);
}

/**
 * A server's reply, to stdout. Into a pipe or a file it goes as it came, byte for byte. On a
 * terminal, its lines are escaped first (a stray ESC would otherwise move the cursor or recolour
 * the screen), and each line still ends in a newline, without the CR of a CRLF.
 */
function printReply(data: Buffer | string): void {
  if (!process.stdout.isTTY) return void process.stdout.write(data);
  const lines = Buffer.from(data).toString('latin1').split('\n');
  const escaped = lines.map((line) => escapeForLog(Buffer.from(line.replace(/\r$/, ''), 'latin1')));
  process.stdout.write(escaped.join('\n'));
}

/** The first bytes of what a server sent, escaped: safe on any terminal. */
function preview(data: Buffer): string {
  return `"${escapeForLog(data.subarray(0, PREVIEW_BYTES))}${data.length > PREVIEW_BYTES ? '...' : ''}"`;
}

/**
 * A TCP reply, judged by how it ended. A reply that arrived whole is printed even if the server then
 * reset the connection: an abortive close (--close rst) is still a close, and the reply is complete;
 * stderr says what happened. A reply cut short by a reset is not printed as if it were whole: the
 * error shows its start instead, and the status is 69.
 */
function wholeReply({ data, stoppedBy, conn }: StreamReply, isWhole: (data: Buffer) => boolean): Buffer {
  if (stoppedBy !== 'rst') return data;
  const reset = describeReset(conn, { received: data.length });
  if (!isWhole(data)) {
    throw new LabError('ERR_CONNECTION_RESET', `${reset}${data.length > 0 ? `, before the whole reply: ${preview(data)}` : ''}`);
  }
  warn(reset);
  return data;
}

const endsALine = (data: Buffer): boolean => data.at(-1) === 0x0a;

async function daytime(args: ClientArguments & { hold: number; close: boolean }): Promise<void> {
  if (args.udp) return printReply(await askUdp(args, 'daytime', Buffer.alloc(0)));
  const result = await fetchDaytime({ ...connection(args, 'daytime'), holdMs: args.hold, close: args.close, onLine: printReply });
  // The line came whole (fetchDaytime fails otherwise); a reset after it is said, not an error.
  if (result.serverClose === 'rst') warn(describeReset(result, { received: result.bytesReceived }));
  if (!args.verbose) return;
  if (result.serverClose === 'rst') return; // nothing left to close: the reset closed the socket
  if (result.serverClose === 'fin') say(`the server closed the connection (FIN) after sending ${result.bytesReceived} bytes`);
  say(args.close ? 'closed the socket' : 'exiting without close(): the kernel closes the socket for us');
}

async function echo(args: ClientArguments): Promise<void> {
  if (args.udp) {
    const sent = await readInput(MAX_REPLY_BYTES);
    const reply = await askUdp(args, 'echo', sent);
    printReply(reply);
    if (!reply.equals(sent)) throw new LabError('ERR_ECHO_MISMATCH', `the echoed datagram differs from the one sent`);
    return;
  }
  const interactive = process.stdin.isTTY === true;
  if (interactive) say('Type a line and press Enter to see it echoed; Ctrl-D sends FIN and ends.');
  const { sentBytes, echoedBytes } = await runEchoClient({ ...connection(args, 'echo'), input: process.stdin, output: process.stdout });
  // Like telnet's "Connection closed by foreign host.", for someone typing; scripts get silence.
  if (interactive || args.verbose) say(`the server closed the connection (FIN) after our FIN; we sent ${sentBytes} bytes and all ${echoedBytes} came back intact`);
}

async function discard(args: ClientArguments): Promise<void> {
  if (args.udp) {
    const payload = await readInput(MAX_REPLY_BYTES);
    const { host, port } = targetOf(args, 'discard');
    await sendDatagram({ host, port, payload });
    return say(`sent a ${payload.length}-byte datagram; discard never answers`);
  }
  if (process.stdin.isTTY) say('Type lines to send; Ctrl-D sends FIN and ends.');
  const sent = await sendAll({ ...connection(args, 'discard'), input: process.stdin });
  say(`sent ${sent} bytes; the server closed the connection (FIN) after our FIN, so it read them all`);
}

async function qotd(args: ClientArguments): Promise<void> {
  printReply(args.udp ? await askUdp(args, 'qotd', Buffer.alloc(0)) : wholeReply(await readFromServer(connection(args, 'qotd')), endsALine));
}

async function time(args: ClientArguments): Promise<void> {
  let reply: Buffer;
  if (args.udp) reply = await askUdp(args, 'time', Buffer.alloc(0));
  else {
    const read = await readFromServer({ ...connection(args, 'time'), maxBytes: TIME_READ_LIMIT, quietMs: TIME_QUIET_MS });
    // Too many bytes is a wrong server however the connection ended; too few may be a reset's doing.
    if (read.data.length > TIME_BYTES) throw badTimeReply(read.data);
    reply = wholeReply(read, (data) => data.length === TIME_BYTES);
  }
  if (reply.length !== TIME_BYTES) throw badTimeReply(reply);
  const value = reply.readUInt32BE(); // network byte order: ntohl
  process.stdout.write(`${formatAsctime(decodeTime(value), { utc: true })} UTC (${value} seconds since 1900, bytes ${reply.toString('hex')})\n`);
}

/** Not 4 bytes: say what came instead, so a daytime or chargen server on the port is recognised. */
function badTimeReply(reply: Buffer): LabError {
  const count = reply.length >= TIME_READ_LIMIT ? `${TIME_READ_LIMIT} or more` : String(reply.length);
  const isText = reply.length > 0 && reply.every((byte) => (byte >= 0x20 && byte < 0x7f) || byte === 0x09 || byte === 0x0a || byte === 0x0d);
  const what =
    reply.length === 0 ? 'the server closed without sending the time'
    : isText ? `is this a time server? it looks like text: ${preview(reply)}`
    : `is this a time server? it sent ${reply.subarray(0, 16).toString('hex')}${reply.length > 16 ? '...' : ''}`;
  return new LabError('ERR_BAD_REPLY', `expected ${TIME_BYTES} bytes, got ${count}: ${what}`);
}

async function chargen(args: ClientArguments & { bytes: number }): Promise<void> {
  if (args.udp) return printReply(await askUdp(args, 'chargen', Buffer.alloc(0)));
  const reply = await readFromServer({ ...connection(args, 'chargen'), maxBytes: args.bytes });
  printReply(wholeReply(reply, (data) => data.length >= args.bytes));
}

async function main(): Promise<void> {
  const usage = usageErrors(PROGRAM, protocols.map((p) => p.name));
  /** Help lists the options in this order; help and version come last. */
  const grouped = <T>(y: Argv<T>, own: string[] = []): Argv<T> => y.group(['port', 'udp', 'timeout', 'verbose', ...own, 'help', 'version'], 'Options:');
  const cli = yargs(hideBin(process.argv));
  skipHelpRendering(cli);
  await cli
    .scriptName(PROGRAM)
    .usage('$0 <protocol> [host] [port] [options]\n\nThe classic clients: connect, talk, and show the socket pair.')
    .command(
      'daytime [host] [port-number]',
      "print the server's date and time line, like the classic daytime.c (RFC 867)",
      (y) =>
        grouped(
          clientOptions(y, 'daytime').options({
            hold: { ...NUMBER_VALUE, default: 0, coerce: secondsOption('hold'), describe: 'After reading, keep the socket open this many seconds, then close' },
            close: { type: 'boolean', default: true, describe: 'Call close(); --no-close exits without it, and the kernel closes the socket' },
          }),
          ['hold', 'close'],
        ),
      (args) => daytime(args),
    )
    .command(
      'echo [host] [port-number]',
      'send stdin (or typed lines) and print what comes back, checking it byte for byte (RFC 862)',
      (y) => grouped(clientOptions(y, 'echo')),
      (args) => echo(args),
    )
    .command('discard [host] [port-number]', 'send stdin; nothing comes back (RFC 863)', (y) => grouped(clientOptions(y, 'discard')), (args) => discard(args))
    .command('qotd [host] [port-number]', 'print the quote of the day (RFC 865)', (y) => grouped(clientOptions(y, 'qotd')), (args) => qotd(args))
    .command(
      'chargen [host] [port-number]',
      'print the first bytes of the character generator (RFC 864)',
      (y) =>
        grouped(
          clientOptions(y, 'chargen').options({
            bytes: { ...NUMBER_VALUE, default: DEFAULT_CHARGEN_BYTES, coerce: positiveIntegerOption('bytes'), describe: 'Read this many bytes, then close (TCP)' },
          }),
          ['bytes'],
        ),
      (args) => chargen(args),
    )
    .command(
      'time [host] [port-number]',
      "print the time server's 32-bit value and the date it means (RFC 868)",
      (y) => grouped(clientOptions(y, 'time')),
      (args) => time(args),
    )
    .demandCommand(1, 'name a protocol: daytime, echo, discard, qotd, chargen or time')
    .strictCommands()
    .middleware(lastValueWins, true)
    .middleware(usage.remember, true)
    .check(noStrayArguments)
    .fail(usage.fail)
    .epilog(EXIT_CODES_HELP)
    .help()
    .alias('help', 'h')
    .version(VERSION)
    .wrap(Math.min(110, process.stdout.columns || 80))
    .parseAsync();
}

await runCli(PROGRAM, main);
// Exit even if stdin (a terminal) or a --no-close socket would keep the process alive:
// the kernel closes any socket still open, as it does for a C program that returns from main.
process.exit();
