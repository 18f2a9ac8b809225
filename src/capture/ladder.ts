/**
 * The ladder (sequence) diagram of one TCP connection, for a terminal: the textbook's central picture
 * of TCP (Stevens UNP fig. 2.5, TCP/IP Illustrated vol. 1 ch. 13), drawn from real packets. Time runs
 * down the page, the client is on the left and the server on the right, and each segment is an arrow
 * from its sender to its receiver, labelled with its flags, its sequence and acknowledgement numbers
 * (relative, as Wireshark shows them) and its length. Each end's state (RFC 9293 §3.3.2, worked out
 * in tcp-machine.ts) is written on its own side, on the row where it changes: the sender's when it
 * sends, the receiver's when the segment arrives. Kernel readings taken meanwhile appear at their
 * time, checked against the ladder (cross-check.ts). Daytime's close, as it comes out:
 *
 *     +0.154 ms              ◀───── PSH,ACK seq=1 ack=1 len=25 ─
 *                              "Tue Dec  1 21:18:06 2026\n"
 *     +0.162 ms              ─ ACK seq=1 ack=26 ───────────────▶
 *     +0.183 ms  CLOSE_WAIT  ◀─────────── FIN,ACK seq=26 ack=1 ─ FIN_WAIT1
 *     +0.223 ms              ─ ACK seq=1 ack=27 ───────────────▶ FIN_WAIT2
 *     +0.335 ms  LAST_ACK    ─ FIN,ACK seq=1 ack=27 ───────────▶ TIME_WAIT (60 s)
 *     +0.345 ms  CLOSED      ◀─────────────── ACK seq=27 ack=2 ─
 *
 * A socket connected to itself (connection-tracker.ts, selfConnected) has no client and no server, and
 * no listener: it is one end that sends every segment and receives every one. Its ladder keeps the
 * two columns, named for that: the left is the socket as a segment leaves it, the right the same
 * socket as the segment comes back. Each arrow still runs from sending to receiving, time still runs
 * down the page and, within a row, left to right, so its states read in the order it went through
 * them, RFC 9293's simultaneous open: SYN_SENT (left) as its SYN leaves, SYN_RECV (right) as it
 * arrives, ESTABLISHED (right) as its SYN,ACK arrives. We chose this over a single column with
 * arrows looping back to it: the student reads it as every other ladder, row by row, with nothing
 * invented (no listener, no second socket), and a loop would need two rows for every segment.
 *
 * Every payload byte is escaped before it is shown (escapeForLog): a client's bytes could otherwise
 * recolour, move or rewrite what the student's terminal shows.
 */
import { formatEndpoint } from '../framework/endpoint.js';
import { escapeForLog } from '../framework/escape.js';
import { colourMarks, displayWidth, truncateToWidth, wrapText } from '../cli/terminal.js';
import type { Connection, LadderStep, OmittedSteps } from './connection-tracker.js';
import { crossCheck, type CrossCheck, type KernelReading } from './cross-check.js';
import { TCP_FLAGS, flagNames, hasFlags } from './segment.js';
import { LINUX_TIME_WAIT_MS, isOver, otherEnd, type End, type LadderState } from './tcp-machine.js';

export interface LadderOptions {
  /** What the ladder is drawn from, for its title: 'captured with tcpdump', or "inferred from the server's events (no capture: ...)". */
  source: string;
  /** Columns; no line is wider (default 80). */
  width?: number;
  /** ANSI colours (default false): client→server arrows cyan, server→client yellow, resets red. */
  colour?: boolean;
  /** Kernel readings, drawn at their time and checked against the ladder. */
  readings?: readonly KernelReading[];
}

const DEFAULT_WIDTH = 80;
/** The longest arrow drawn: on a wide terminal, longer arrows only take the server's column away from the eye. */
const MAX_ARROW = 56;
/** The shortest useful arrow. Below it the time column goes; below that lines are cut at the width. */
const MIN_ARROW = 16;
/** Under the arrow, where its details start: past the arrow's first `─ `. */
const DETAIL_INDENT = 2;

type Style = 'client' | 'server' | 'reset' | 'state' | 'detail' | 'note' | 'kernel' | 'title';
/** Part of a line, coloured as one. Lines are measured and cut as plain text, then coloured. */
type Piece = { text: string; style?: Style };

const ANSI: Record<Exclude<Style, 'kernel'>, string> = {
  client: '\x1b[36m', // cyan
  server: '\x1b[33m', // yellow
  reset: '\x1b[31m', // red
  state: '\x1b[1m', // bold
  detail: '\x1b[2m', // dim
  note: '\x1b[35m', // magenta
  title: '\x1b[1m',
};

/** Where the columns are: [time] [client's states] [arrows] [server's states]. */
interface Layout {
  width: number;
  /** 0 when the line is too narrow for it. */
  time: number;
  client: number;
  arrow: number;
}

export function renderLadder(connection: Connection, options: LadderOptions): string[] {
  const { width = DEFAULT_WIDTH, colour = false, readings = [] } = options;
  const checks = crossCheck(connection, readings);
  const layout = layOut(connection, checks, width);
  const lines: Piece[][] = [...header(connection, options.source, layout)];

  let pendingChecks = 0;
  let previousIndex = 0;
  for (const step of connection.steps) {
    for (; pendingChecks < checks.length && checks[pendingChecks]!.reading.timeUs < step.segment.timeUs; pendingChecks++) {
      lines.push(...kernelLines(checks[pendingChecks]!, connection, layout));
    }
    if (step.index > previousIndex + 1) {
      const run = connection.omitted.find((omitted) => omitted.firstIndex === previousIndex + 1);
      if (run !== undefined) lines.push(omittedLine(run, layout));
    }
    lines.push(...stepLines(step, layout));
    previousIndex = step.index;
  }
  for (const check of checks.slice(pendingChecks)) lines.push(...kernelLines(check, connection, layout));
  if (!isOver(connection.states.client) || !isOver(connection.states.server)) {
    lines.push(...prose('… not seen to close: the capture ended, or missed its last segments', stateColumn('client', layout), layout));
  }
  return lines.map((pieces) => paint(fit(pieces, width), colour));
}

/**
 * The columns for this connection and width: the state columns as wide as the states written in
 * them, the time column as wide as its times, and the arrows the rest, within MAX_ARROW. Where the
 * width allows, the server's column is wide enough for its name above it; on narrower terminals the
 * name moves left, and then the time column goes.
 */
function layOut(connection: Connection, checks: readonly CrossCheck[], width: number): Layout {
  const widest = (texts: string[]): number => Math.max(...texts.map(displayWidth));
  const written = (end: End): string[] => [connection.initialStates[end], ...connection.steps.map((step) => writtenState(step, end) ?? '')];
  const [client, server] = [widest(written('client')), widest(written('server'))];
  const time = widest([...connection.steps.map((step) => step.offsetMs), ...checks.map((check) => check.offsetMs)].map(formatOffset));
  const serverWithName = Math.max(server, displayWidth(endName('server', connection)));
  for (const candidate of [{ time, server: serverWithName }, { time, server }, { time: 0, server }]) {
    const timeSpan = candidate.time > 0 ? candidate.time + 2 : 0;
    const arrow = Math.min(MAX_ARROW, width - timeSpan - (client + 1) - (1 + candidate.server));
    if (arrow >= MIN_ARROW) return { width, time: candidate.time, client, arrow };
  }
  return { width, time: 0, client, arrow: MIN_ARROW };
}

/** `client 127.0.0.1:40312`, over the client's column; for a socket connected to itself, its two roles. */
function endName(end: End, connection: Connection): string {
  if (!connection.selfConnected) return `${end} ${formatEndpoint(connection[end])}`;
  return end === 'client' ? `socket ${formatEndpoint(connection.client)} sends` : 'the same socket receives';
}

/** What a kernel reading of `end` is about, in words: `client`, `server`, or the one socket connected to itself. */
const whose = (end: End, connection: Connection): string => (connection.selfConnected ? 'the socket' : end);

/** Where each column starts. */
const stateColumn = (end: End, layout: Layout): number => (end === 'client' ? timeSpan(layout) : arrowColumn(layout) + layout.arrow + 1);
const timeSpan = (layout: Layout): number => (layout.time > 0 ? layout.time + 2 : 0);
const arrowColumn = (layout: Layout): number => timeSpan(layout) + layout.client + 1;
const indent = (columns: number): string => ' '.repeat(columns);

/** The title, the two ends, and the states they start in. */
function header(connection: Connection, source: string, layout: Layout): Piece[][] {
  const lines: Piece[][] = [];
  const client = formatEndpoint(connection.client);
  const server = formatEndpoint(connection.server);
  const title = `#${connection.id} ${client} → ${server}: ${source}`;
  lines.push(...prose(title, 0, layout, 'title'));
  if (connection.selfConnected) {
    lines.push(...prose('one socket connected to itself: each segment leaves it (left) and comes back to it (right); its state is written where it changes, as the segment leaves or as it arrives', 0, layout));
  }
  if (connection.joinedLate) {
    lines.push(...prose('the capture began mid-connection: its states are assumed ESTABLISHED before it, its numbers count from the first segment seen', 0, layout));
  }

  const clientAt = stateColumn('client', layout);
  const [clientName, serverName] = [endName('client', connection), endName('server', connection)];
  // The server's name over its column, or as far right as the width allows, or on a line of its own.
  const serverAt = Math.min(stateColumn('server', layout), layout.width - displayWidth(serverName));
  if (serverAt > clientAt + displayWidth(clientName)) {
    lines.push([{ text: indent(clientAt) + clientName.padEnd(serverAt - clientAt) + serverName }]);
  } else {
    lines.push([{ text: indent(clientAt) + clientName }], [{ text: indent(Math.max(0, serverAt)) + serverName }]);
  }
  // One socket has one state to start from: written once, on the left.
  const initial = connection.selfConnected ? { client: connection.initialStates.client } : connection.initialStates;
  lines.push(stateRow('', [], initial, layout));
  return lines;
}

/** A row: the time, the client's state, what goes between, the server's state (each end's only if given). */
function stateRow(time: string, between: Piece[], states: Partial<Record<End, string>>, layout: Layout): Piece[] {
  const pieces: Piece[] = [timeCell(time, layout)];
  pieces.push({ text: states.client ?? '', style: 'state' }, { text: indent(layout.client - displayWidth(states.client ?? '') + 1) });
  pieces.push(...between);
  if (states.server !== undefined) {
    const used = between.reduce((sum, piece) => sum + displayWidth(piece.text), 0);
    pieces.push({ text: indent(layout.arrow - used + 1) }, { text: states.server, style: 'state' });
  }
  return pieces;
}

/** The time column's cell: nothing when the width left no room for it. */
const timeCell = (time: string, layout: Layout): Piece => ({ text: layout.time > 0 ? `${time.padStart(layout.time)}  ` : '' });

/** A state as the ladder writes it: TIME_WAIT with how long Linux keeps it. */
const stateLabel = (state: LadderState): string => (state === 'TIME_WAIT' ? `TIME_WAIT (${LINUX_TIME_WAIT_MS / 1000} s)` : state);

/** What a step writes on one end's side: its new state, if it has one, and the state it passed through on the way. */
function writtenState(step: LadderStep, end: End): string | undefined {
  if (!step.changed[end]) return undefined;
  const via = step.via?.[end];
  return via === undefined ? stateLabel(step.states[end]) : `${via} → ${stateLabel(step.states[end])}`;
}

/** `+0.052 ms`, and seconds from one second on: `+61.002 s`. */
export function formatOffset(ms: number): string {
  const sign = ms < 0 ? '-' : '+';
  const magnitude = Math.abs(ms);
  return magnitude < 1000 ? `${sign}${magnitude.toFixed(3)} ms` : `${sign}${(magnitude / 1000).toFixed(3)} s`;
}

/** The arrow's row, then what does not fit on the arrow: the numbers if need be, the SYN's options, a preview of the payload, the notes. */
function stepLines(step: LadderStep, layout: Layout): Piece[][] {
  const flags = flagNames(step.segment.flags);
  const numbers = [`seq=${step.relativeSeq}`, step.relativeAck === undefined ? '' : `ack=${step.relativeAck}`, step.payloadLength > 0 ? `len=${step.payloadLength}` : '']
    .filter((part) => part !== '')
    .join(' ');
  const fullLabel = `${flags} ${numbers}`;
  const numbersFit = displayWidth(fullLabel) <= layout.arrow - 5;
  const style: Style = hasFlags(step.segment, TCP_FLAGS.RST) ? 'reset' : step.from;
  const arrow = { text: drawArrow(numbersFit ? fullLabel : flags, layout.arrow, step.from), style };

  const states = { client: writtenState(step, 'client'), server: writtenState(step, 'server') };
  const lines = [stateRow(formatOffset(step.offsetMs), [arrow], states, layout)];

  const detailAt = arrowColumn(layout) + DETAIL_INDENT;
  const room = layout.width - detailAt;
  const details: Piece[] = [];
  if (!numbersFit) details.push({ text: numbers, style: 'detail' });
  const options = synOptions(step);
  if (options !== undefined) {
    for (const line of wrapText(options, room, '').split('\n')) details.push({ text: line, style: 'detail' });
  }
  if (step.segment.payload.length > 0) details.push({ text: preview(step, room), style: 'detail' });
  if (step.notes.length > 0) {
    for (const line of wrapText(step.notes.map((note) => `[${note}]`).join(' '), room, '').split('\n')) details.push({ text: line, style: 'note' });
  }
  return [...lines, ...details.map((detail) => [{ text: indent(detailAt) }, detail])];
}

/** `─ SYN seq=0 ─────▶` from the client, `◀───── SYN,ACK seq=0 ack=1 ─` from the server: the label at the sender's end. */
function drawArrow(label: string, length: number, from: End): string {
  const shown = truncateToWidth(label, length - 5);
  const line = '─'.repeat(length - displayWidth(shown) - 4);
  return from === 'client' ? `─ ${shown} ${line}▶` : `◀${line} ${shown} ─`;
}

/** What a SYN announces (RFC 9293 §3.2, RFC 7323, RFC 2018): its window, unscaled, and its options. */
function synOptions(step: LadderStep): string | undefined {
  if (!hasFlags(step.segment, TCP_FLAGS.SYN) || step.segment.inferred === true) return undefined;
  const { options, window } = step.segment;
  return [
    `win ${window}`,
    options.mss === undefined ? '' : `mss ${options.mss}`,
    options.sackPermitted === true ? 'sackOK' : '',
    options.timestamps === undefined ? '' : 'TS',
    options.windowScale === undefined ? '' : `wscale ${options.windowScale}`,
  ]
    .filter((part) => part !== '')
    .join(', ');
}

/** One escape sequence of escapeForLog (`\x1b`, `\u{202e}`, `\n`), or one character: the payload is cut between them, never inside one. */
const ESCAPED_UNIT = /\\x[0-9a-f]{2}|\\u\{[0-9a-f]+\}|\\[\\nrt]|[^]/gu;

/**
 * The payload, escaped, in quotes, within `room` columns. An … after the closing quote says there
 * was more: cut here, or not kept by the capture. (Inside the quotes it could be the payload's own.)
 */
function preview(step: LadderStep, room: number): string {
  const units = escapeForLog(step.segment.payload).match(ESCAPED_UNIT) ?? [];
  const budget = room - 3; // the quotes and the …
  let shown = '';
  let used = 0;
  let cut = step.segment.payload.length < step.payloadLength;
  for (const unit of units) {
    if (used + displayWidth(unit) > budget) {
      cut = true;
      break;
    }
    shown += unit;
    used += displayWidth(unit);
  }
  return `"${shown}"${cut ? '…' : ''}`;
}

/** Text from column `x`, wrapped at the width, in a style (dim by default). */
function prose(text: string, x: number, layout: Layout, style: Style = 'detail'): Piece[][] {
  return wrapText(text, layout.width - x, '  ')
    .split('\n')
    .map((line) => [{ text: indent(x) }, { text: line, style }]);
}

/** `… 4,180 segments, 12 MB, not drawn …`, where the tracker kept no steps: among the arrows if it fits. */
function omittedLine(run: OmittedSteps, layout: Layout): Piece[] {
  const data = run.bytes > 0 ? `, ${formatBytes(run.bytes)}` : '';
  const text = `… ${count(run.segments, 'segment')}${data}, not drawn …`;
  return [{ text: indent(Math.max(0, Math.min(arrowColumn(layout), layout.width - displayWidth(text)))) }, { text, style: 'detail' }];
}

/**
 * `┄┄ kernel (/proc/net/tcp): server TIME_WAIT ✓ agrees`, at the reading's time. Where the kernel
 * disagrees, the kernel is right: the ladder is worked out from packets the capture may have missed.
 */
function kernelLines(check: CrossCheck, connection: Connection, layout: Layout): Piece[][] {
  const { reading, ladderState, agrees } = check;
  const source = reading.source ?? (connection.ipVersion === 6 ? '/proc/net/tcp6' : '/proc/net/tcp');
  const end = whose(reading.end, connection);
  const kernelSays = reading.state === 'none' ? `${end} has no socket` : `${end} ${reading.state}`;
  const verdict = agrees ? '✓ agrees' : `✗ the ladder says ${ladderState}: the kernel wins`;
  const at = layout.time > 0 ? '' : ` at ${formatOffset(check.offsetMs)}`;
  const text = `┄┄ kernel (${source})${at}: ${kernelSays} ${verdict}`;
  const x = stateColumn('client', layout);
  return wrapText(text, layout.width - x, '   ')
    .split('\n')
    .map((line, index) => [timeCell(index === 0 ? formatOffset(check.offsetMs) : '', layout), { text: line, style: 'kernel' }]);
}

/** The pieces cut to `width` columns, the last kept one ending in …, and trailing spaces dropped. */
function fit(pieces: Piece[], width: number): Piece[] {
  const fitted: Piece[] = [];
  let used = 0;
  for (const piece of pieces) {
    const room = width - used;
    const pieceWidth = displayWidth(piece.text);
    if (pieceWidth > room) {
      fitted.push({ ...piece, text: truncateToWidth(piece.text, room) });
      break;
    }
    fitted.push(piece);
    used += pieceWidth;
  }
  while (fitted.length > 0 && fitted.at(-1)!.text.trim() === '') fitted.pop();
  const last = fitted.pop();
  return last === undefined ? fitted : [...fitted, { ...last, text: last.text.trimEnd() }];
}

function paint(pieces: Piece[], colour: boolean): string {
  return pieces
    .map(({ text, style }) => {
      if (!colour || style === undefined || text.trim() === '') return text;
      return style === 'kernel' ? colourMarks(text) : `${ANSI[style]}${text}\x1b[0m`;
    })
    .join('');
}

const count = (n: number, noun: string): string => `${n.toLocaleString('en-US')} ${noun}${n === 1 ? '' : 's'}`;

/** `25 bytes`, `1.5 kB`, `12 MB` (powers of 1000, as network counts are given). */
function formatBytes(bytes: number): string {
  if (bytes < 1000) return count(bytes, 'byte');
  const [unit, size] = bytes < 1e6 ? ['kB', 1e3] : bytes < 1e9 ? ['MB', 1e6] : ['GB', 1e9];
  const value = bytes / size;
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}

/**
 * One line per connection, for a lab with many:
 * `#3 127.0.0.1:40312 → 127.0.0.1:1313: 8 segments, 25 bytes ←, server closed first (FIN), server TIME_WAIT`.
 * The arrows say which way the bytes went: → from client to server, ← back.
 */
export function summarizeConnection(connection: Connection): string {
  const { bytes } = connection;
  const data = [bytes.client > 0 ? `${formatBytes(bytes.client)} →` : '', bytes.server > 0 ? `${formatBytes(bytes.server)} ←` : ''].filter((part) => part !== '');
  const parts = [count(connection.segments, 'segment'), data.length > 0 ? data.join(', ') : 'no data', howItEnded(connection), finalStates(connection)];
  if (connection.selfConnected) parts.unshift('one socket connected to itself');
  if (connection.joinedLate) parts.push('joined late');
  return `#${connection.id} ${formatEndpoint(connection.client)} → ${formatEndpoint(connection.server)}: ${parts.join(', ')}`;
}

/** Who ended it, and how: the first FIN or RST. The steps that change a state are always kept, so they are all here. */
function howItEnded(connection: Connection): string {
  const ending = connection.steps.find((step) => hasFlags(step.segment, TCP_FLAGS.FIN) || hasFlags(step.segment, TCP_FLAGS.RST));
  if (ending === undefined) return 'not closed';
  if (connection.selfConnected) return hasFlags(ending.segment, TCP_FLAGS.RST) ? 'reset (RST)' : 'closed (FIN): a simultaneous close with itself';
  if (hasFlags(ending.segment, TCP_FLAGS.RST)) {
    return ending.notes.includes('no listener: the kernel answered the SYN with RST') ? 'refused: no listener (RST)' : `${ending.from} reset it (RST)`;
  }
  const simultaneous = connection.steps.some((step) => step.notes.includes('simultaneous close'));
  return simultaneous ? 'both closed at once (simultaneous close)' : `${ending.from} closed first (FIN)`;
}

function finalStates({ states, selfConnected }: Connection): string {
  if (selfConnected) return `the socket ${states.client}`;
  if (states.client === states.server) return `both ${states.client}`;
  const waiting = (['client', 'server'] as const).find((end) => states[end] === 'TIME_WAIT' && states[otherEnd(end)] === 'CLOSED');
  return waiting !== undefined ? `${waiting} TIME_WAIT` : `client ${states.client}, server ${states.server}`;
}
