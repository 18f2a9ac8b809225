/**
 * `lab-server lab <name>` runs one experiment (src/labs/); `lab-server lab --list` lists them.
 * Exit status 0 when the kernel agreed with the textbook, 1 (ExitCode.labFailed) when not.
 */
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { LabError, usageError } from '../errors.js';
import { findLab, labs } from '../labs/index.js';
import type { Lab, LabResult } from '../labs/lab.js';
import { runLab, type RunLabOptions } from '../labs/runner.js';
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
      dashboard: {
        ...DASHBOARD_OPTION,
        describe: "Also show the lab live in a browser: its steps, predictions, kernel readings, connections and ladders, at ADDRESS:PORT (127.0.0.1:8080 if none given); the page stays up after the lab until Ctrl-C",
      },
    })
    .example('$0 lab time-wait', 'see TIME_WAIT on the side that closed first')
    .example('$0 lab rst --pcap rst.pcap', 'also save the packets, for Wireshark')
    .example('$0 lab time-wait --dashboard', 'watch it in the browser, at http://127.0.0.1:8080/')
    .strict();
}

type LabArguments = Awaited<ReturnType<typeof builder>['argv']>;

const say = (line: string): void => void process.stdout.write(`${line}\n`);

/** The narration, for a person: wrapped at the terminal's width, the ✓ and ✗ in colour. */
function narrate(line: string): void {
  const width = process.stdout.isTTY ? process.stdout.columns : undefined;
  const indent = `${/^ */.exec(line)![0]}  `;
  const wrapped = width === undefined ? line : wrapText(line, width, indent);
  say(wantsColour(process.stdout) ? colourMarks(wrapped) : wrapped);
}

async function lab({ name, list, ladder, pcap, dashboard }: ArgumentsCamelCase<LabArguments>): Promise<void> {
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
  const wantsPackets = ladder || pcap !== undefined;
  const options: RunLabOptions = {
    write: narrate,
    ...(wantsPackets ? { ladder: { draw: ladder, pcapPath: pcap, width: process.stdout.isTTY ? process.stdout.columns : undefined, colour: wantsColour(process.stdout) } } : {}),
  };
  const result = dashboard === undefined ? await runLab(chosen, options) : await runLabWithDashboard(chosen, options, dashboard);
  if (!result.passed) {
    throw new LabError('ERR_LAB_FAILED', `lab ${chosen.name}: the kernel disagreed with the textbook (see the ✗ lines above)`);
  }
}

/**
 * --dashboard: the same run, with the narration and each lab server's events also on the page.
 * The lab's servers close with the lab; their kernel states are read after each close, as
 * `lab-server <protocol>` does, so the page shows TIME_WAIT where the lab saw it.
 */
async function runLabWithDashboard(chosen: Lab, options: RunLabOptions, listen: { address: string; port: number }): Promise<LabResult> {
  // Loaded only for --dashboard: a lab without it starts no slower.
  const { Dashboard } = await import('../observers/dashboard/server.js');
  const page = await Dashboard.start({ listen });
  const reporters: KernelStateReporter[] = [];
  say(`dashboard: ${page.url} (this lab, live; read-only)`);
  let result: LabResult;
  try {
    result = await runLab(chosen, {
      ...options,
      write: (line) => {
        options.write(line);
        page.state.addLabLine(line);
      },
      onServer: (events) => {
        page.state.follow(events);
        const reporter = watchKernelStates(events);
        if (reporter !== undefined) reporters.push(reporter);
      },
      onCaptured: (connection) => page.state.addCaptured(connection),
    });
    await Promise.all(reporters.map((reporter) => reporter.stop()));
  } catch (error) {
    await page.close();
    throw error;
  }
  say(`the lab is over; its page stays at ${page.url} until Ctrl-C`);
  await interrupted();
  await page.close();
  return result;
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
