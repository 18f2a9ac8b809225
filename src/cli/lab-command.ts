/**
 * `lab-server lab <name>` runs one experiment (src/labs/); `lab-server lab --list` lists them.
 * Exit status 0 when the kernel agreed with the textbook, 1 (ExitCode.labFailed) when not, 77
 * (ExitCode.noPermission, "skipped") when the lab needs what this user lacks, such as root.
 */
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { LabError, usageError } from '../errors.js';
import { findLab, labs } from '../labs/index.js';
import { runLab } from '../labs/runner.js';
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
    })
    .example('$0 lab time-wait', 'see TIME_WAIT on the side that closed first')
    .example('$0 lab rst --pcap rst.pcap', 'also save the packets, for Wireshark')
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

async function lab({ name, list, ladder, pcap }: ArgumentsCamelCase<LabArguments>): Promise<void> {
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
  // Ctrl-C stops the lab, but only after it has stopped what it started and deleted its namespaces.
  const interrupt = new AbortController();
  const onInterrupt = (): void => interrupt.abort();
  process.once('SIGINT', onInterrupt);
  const result = await runLab(chosen, {
    write: narrate,
    interrupted: interrupt.signal,
    ...(wantsPackets ? { ladder: { draw: ladder, pcapPath: pcap, width: process.stdout.isTTY ? process.stdout.columns : undefined, colour: wantsColour(process.stdout) } } : {}),
  }).finally(() => process.off('SIGINT', onInterrupt));
  if (result.skipped !== undefined) throw new LabError('ERR_LAB_NEEDS_PRIVILEGES', `lab ${chosen.name} needs ${result.skipped}`);
  if (!result.passed) {
    throw new LabError('ERR_LAB_FAILED', `lab ${chosen.name}: the kernel disagreed with the textbook (see the ✗ lines above)`);
  }
}

export const labCommand: CommandModule<object, LabArguments> = {
  command: 'lab [name]',
  describe: 'Run a one-command experiment that shows real kernel TCP states next to the textbook (--list to list them); Linux only',
  builder,
  handler: lab,
};
