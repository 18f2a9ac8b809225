/**
 * `lab-server lab <name>` runs one experiment (src/labs/); `lab-server lab --list` lists them.
 * Exit status 0 when the kernel agreed with the textbook, 1 (ExitCode.labFailed) when not, 77
 * (ExitCode.noPermission, "skipped") when the lab needs what this user lacks, such as root; a quiz
 * score never changes it. The lab's records (src/labs/records.ts) are shown as narration, or
 * collected into one JSON document (--json), after the class modes (--step, --quiz) have had them.
 */
import { createInterface } from 'node:readline';
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { ExitCode, LabError, usageError } from '../errors.js';
import { inClass, Queue, type ClassModes } from '../labs/class-modes.js';
import { findLab, labs } from '../labs/index.js';
import type { LabResult } from '../labs/lab.js';
import { answersFromLines, readAnswersFile, type LineInput } from '../labs/quiz.js';
import { narrationLines, runDocument, type LabRecord } from '../labs/records.js';
import { interruption, runLab, type RunLabOptions } from '../labs/runner.js';
import { watchKernelStates, type KernelStateReporter } from '../observers/kernel-states.js';
import { DASHBOARD_OPTION } from './arguments.js';
import { colourMarks, wantsColour, wrapText } from './terminal.js';
import { closest } from './suggest.js';

const labNames = labs.map((lab) => lab.name).join(', ');

function builder(y: Argv) {
  return y
    .positional('name', { type: 'string', describe: `The lab to run: ${labNames}` })
    .options({
      list: { alias: 'l', type: 'boolean', default: false, describe: 'List the labs, one a line' },
      ladder: {
        type: 'boolean',
        default: true,
        describe: "Draw the lab's connections as ladder diagrams, from packets captured with tcpdump (needs root or a tcpdump with CAP_NET_RAW), else inferred from the server's events; --no-ladder for none",
      },
      pcap: { type: 'string', normalize: true, describe: "Also save the lab's packets to this pcap file (for tcpdump -r or Wireshark)" },
      quiz: {
        type: 'boolean',
        default: false,
        describe: "Before each prediction is shown, ask for yours from a short list (a TCP state, an error, ...), then show the kernel's; score at the end. Answers are typed, or read one a line from stdin when it is not a terminal",
      },
      answers: {
        type: 'string',
        normalize: true,
        describe: "With --quiz: the answers, from this file: one a line in question order (a choice's number or text; empty for none), or a JSON object of answers by observation id",
      },
      step: { type: 'boolean', default: false, describe: 'Pause before each step until Enter, for projecting in class (stdin not a terminal: one line per step)' },
      json: {
        type: 'boolean',
        default: false,
        describe: 'Print the whole run as one JSON document on stdout (records, observations, quiz score, verdict) instead of the narration',
      },
      dashboard: {
        ...DASHBOARD_OPTION,
        describe: "Also show the lab live in a browser: its steps, predictions, kernel readings, connections and ladders, at ADDRESS:PORT (127.0.0.1:8080 if none given); the page stays up after the lab until Ctrl-C",
      },
    })
    .check(({ answers, quiz }) => {
      if (answers !== undefined && !quiz) throw usageError('ERR_USAGE', '--answers goes with --quiz: lab-server lab NAME --quiz --answers FILE');
      return true;
    })
    .example('$0 lab time-wait', 'see TIME_WAIT on the side that closed first')
    .example('$0 lab rst --pcap rst.pcap', 'also save the packets, for Wireshark')
    .example('$0 lab time-wait --quiz', 'predict each state before the kernel shows it')
    .example('$0 lab time-wait --quiz --answers a.txt --json', "grade a student's answers")
    .example('$0 lab time-wait --dashboard', 'watch it in the browser, at http://127.0.0.1:8080/')
    .strict();
}

type LabArguments = Awaited<ReturnType<typeof builder>['argv']>;

const say = (line: string): void => void process.stdout.write(`${line}\n`);

/** Where the narration goes, for a person: wrapped at the terminal's width, the ✓ and ✗ in colour. */
interface Screen {
  line(text: string): void;
  /** A question or a pause, left open for the answer typed after it. */
  prompt(text: string): void;
}

/** A terminal's width; undefined for a pipe, and for a terminal that does not say (0 columns: a pty with no size, as under script(1)). */
const terminalWidth = (stream: NodeJS.WriteStream): number | undefined => (stream.isTTY && stream.columns > 0 ? stream.columns : undefined);

function screenOn(stream: NodeJS.WriteStream): Screen {
  return {
    line(text) {
      const width = terminalWidth(stream);
      const indent = `${/^ */.exec(text)![0]}  `;
      const wrapped = width === undefined ? text : wrapText(text, width, indent);
      stream.write(`${wantsColour(stream) ? colourMarks(wrapped) : wrapped}\n`);
    },
    prompt: (text) => void stream.write(text),
  };
}

/**
 * stdin, a line at a time, for --step and --quiz. readline without `terminal`: the terminal keeps
 * its own line editing and echo, and Ctrl-C stays a SIGINT (in raw mode readline would take it).
 */
function stdinLines(signal: AbortSignal): LineInput & { close(): void } {
  const lines = new Queue<string>();
  const reader = createInterface({ input: process.stdin, terminal: false, crlfDelay: Infinity });
  reader.on('line', lines.push).on('close', lines.end);
  return { next: () => lines.next(signal), close: () => reader.close() };
}

/** The class modes asked for, reading stdin only when one of them needs it (an --answers file is read now: a bad one fails before the lab starts). */
function classModes({ quiz, answers, step }: LabArguments, screen: Screen | undefined, signal: AbortSignal): { modes: ClassModes; close(): void } {
  const fromFile = answers === undefined ? undefined : readAnswersFile(answers);
  const needsStdin = step || (quiz && fromFile === undefined);
  if (!needsStdin) return { modes: fromFile === undefined ? {} : { quiz: fromFile }, close: () => {} };
  const input = stdinLines(signal);
  // Prompts only for a person at a terminal; piped lines are taken as they come.
  const person = process.stdin.isTTY === true && screen !== undefined ? screen : undefined;
  const modes: ClassModes = {};
  if (step) modes.step = { input, prompt: (n) => person?.prompt(`-- press Enter for step ${n} -- `) };
  if (quiz) {
    modes.quiz =
      fromFile ??
      answersFromLines(
        input,
        person &&
          ((question, again) =>
            person.prompt(`   ${again ? 'none of the choices; type' : 'your prediction:'} 1-${question.choices.length} or its name (Enter to skip): `)),
      );
  }
  return { modes, close: input.close };
}

async function lab(args: ArgumentsCamelCase<LabArguments>): Promise<void> {
  const { name, list, ladder, pcap, json } = args;
  if (list) {
    const width = Math.max(...labs.map((l) => l.name.length));
    for (const l of labs) say(`${l.name.padEnd(width)}  ${l.summary}`);
    return;
  }
  if (name === undefined) throw usageError('ERR_USAGE', `name a lab to run: ${labNames} (or --list)`);
  const chosen = findLab(name);
  if (chosen === undefined) {
    const meant = closest(name, labs.map((l) => l.name));
    throw usageError('ERR_UNKNOWN_LAB', `unknown lab ${JSON.stringify(name)}: ${meant === undefined ? `choose one of ${labNames}` : `did you mean ${meant}? (lab-server lab --list lists them)`}`);
  }
  // With --json, stdout holds the document alone; the narration goes to stderr only where a person must answer or press Enter.
  const personAnswers = process.stdin.isTTY === true && (args.step || (args.quiz && args.answers === undefined));
  const narrationStream = !json ? process.stdout : personAnswers ? process.stderr : undefined;
  const screen = narrationStream === undefined ? undefined : screenOn(narrationStream);
  const stop = new AbortController();
  const { modes, close } = classModes(args, screen, stop.signal);
  const wantsPackets = ladder || pcap !== undefined;
  // The ladders' lines are in the JSON document too: there, plain and 80 columns wide.
  const drawing = json ? { draw: ladder } : { draw: ladder, width: terminalWidth(process.stdout), colour: wantsColour(process.stdout) };

  // Ctrl-C (or SIGTERM) stops the lab and its servers, or a pause; a second one exits at once.
  const onSignal = (): void => {
    stop.abort(interruption());
    process.once('SIGINT', () => process.exit(ExitCode.interrupted));
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  // With --json, stdout holds the document alone: the page's lines go where the narration goes, or to stderr.
  const page = args.dashboard === undefined ? undefined : await openLabPage(args.dashboard, screen?.line ?? ((line) => void process.stderr.write(`${line}\n`)));
  const records = new Queue<LabRecord>();
  const running: Promise<{ result?: LabResult; error?: unknown }> = runLab(chosen, {
    onRecord: records.push,
    signal: stop.signal,
    ...(wantsPackets ? { ladder: { ...drawing, pcapPath: pcap } } : {}),
    ...page?.hooks,
  }).then(
    (result) => ({ result }),
    (error: unknown) => ({ error }),
  );
  void running.then(records.end);

  const shown: LabRecord[] = [];
  let stopped: unknown;
  try {
    for await (const record of inClass(records, modes)) {
      shown.push(record);
      for (const line of narrationLines(record)) {
        screen?.line(line);
        page?.show(line);
      }
    }
  } catch (error) {
    // Interrupted while waiting for Enter or an answer: the lab itself may still be stopping.
    stopped = error;
  }
  const { result, error } = await running;
  close();
  process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  const failure = stopped ?? error;
  if (json) {
    if (stopped instanceof LabError && !shown.some((r) => r.type === 'error')) shown.push({ type: 'error', code: stopped.code, message: stopped.message });
    say(JSON.stringify(runDocument(shown), null, 2));
  }
  await page?.keepOpen(stopped === undefined);
  if (failure !== undefined) throw failure;
  if (result!.skipped !== undefined) throw new LabError('ERR_LAB_NEEDS_PRIVILEGES', `lab ${chosen.name} needs ${result!.skipped}`);
  if (!result!.passed) {
    throw new LabError('ERR_LAB_FAILED', `lab ${chosen.name}: the kernel disagreed with the textbook (${json ? 'see .verdict.disagreed' : 'see the ✗ lines above'})`);
  }
}

/**
 * --dashboard: the same run, with the narration and each lab server's events also on the page.
 * The lab's servers close with the lab; their kernel states are read after each close, as
 * `lab-server <protocol>` does, so the page shows TIME_WAIT where the lab saw it. At the end the
 * page stays up until Ctrl-C (not after an interrupted lab: the user wants out).
 */
async function openLabPage(listen: { address: string; port: number }, tell: (line: string) => void): Promise<{
  hooks: Pick<RunLabOptions, 'onServer' | 'onCaptured'>;
  show(line: string): void;
  keepOpen(ended: boolean): Promise<void>;
}> {
  // Loaded only for --dashboard: a lab without it starts no slower.
  const { Dashboard } = await import('../observers/dashboard/server.js');
  const page = await Dashboard.start({ listen });
  const reporters: KernelStateReporter[] = [];
  tell(`dashboard: ${page.url} (this lab, live; read-only)`);
  return {
    hooks: {
      onServer: (events) => {
        page.state.follow(events);
        const reporter = watchKernelStates(events);
        if (reporter !== undefined) reporters.push(reporter);
      },
      onCaptured: (connection) => page.state.addCaptured(connection),
    },
    show: (line) => page.state.addLabLine(line),
    async keepOpen(ended) {
      await Promise.all(reporters.map((reporter) => reporter.stop()));
      if (ended) {
        tell(`the lab is over; its page stays at ${page.url} until Ctrl-C`);
        await interrupted();
      }
      await page.close();
    },
  };
}

/** Resolves on Ctrl-C (SIGINT) or SIGTERM. */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

export const labCommand: CommandModule<object, LabArguments> = {
  command: 'lab [name]',
  describe: 'Run a one-command experiment that shows real kernel TCP states next to the textbook (--list to list them); Linux only',
  builder,
  handler: lab,
};
