/**
 * `lab-server`: serve a protocol, look at the kernel's TCP states, or run a lab.
 * This file only wires the commands together; each lives in its own module.
 * The CLI is the only place that touches `process` (argv, signals, exit status).
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ExitCode, usageError } from '../errors.js';
import { protocols } from '../protocols/index.js';
import { lastValueWins, noStrayArguments, runCli, skipHelpRendering, usageErrors, VERSION } from './run.js';
import { allCommand, protocolCommand } from './serve-command.js';
import { closest } from './suggest.js';

const PROGRAM = 'lab-server';
const protocolNames = protocols.map((p) => p.name).join(', ');

const EXIT_CODES_HELP = `Exit status: 0 after a graceful shutdown; ${ExitCode.labFailed} a lab's prediction disagreed with the kernel; ${ExitCode.usage} bad usage (flag, port, protocol); ${ExitCode.noHost} unknown host; ${ExitCode.unavailable} port in use, address unavailable, no socket from systemd/inetd, or no tcpdump (trace); ${ExitCode.dataError} a pcap file that cannot be read, or is not a regular file (trace --read); ${ExitCode.noInput} a --config file that cannot be read; ${ExitCode.config} a --config file that is not valid; ${ExitCode.cantCreate} a --pcap or --log-file that cannot be written, or is a FIFO; ${ExitCode.noPermission} privileged port without root, no right to capture (trace), or a lab that needs root (skipped); ${ExitCode.software} internal error; ${ExitCode.osError} ulimit -n too low to start; ${ExitCode.interrupted} a lab stopped by Ctrl-C; 128+n a second signal n forced the exit.`;

/** Every command: the protocols, then the others. */
const commandNames = [...protocols.map((p) => p.name), 'all', 'serve', 'states', 'lab', 'trace', 'completion'];

/**
 * The commands that do not serve, and the labs and packet capture behind them, which `lab-server
 * echo` never uses (as many modules again as serving needs). They load only when the first word is not a serving
 * command (another command, --help, completion, a typo), and then one after another: the ESM loader
 * opens a module graph's files all at once, and under a low `ulimit -n` (64 in
 * test/stress/fd-exhaustion) the whole program at once is more than a server has.
 */
async function withOtherCommands(cli: Argv): Promise<Argv> {
  const [first] = hideBin(process.argv);
  if (first === 'all' || protocols.some((protocol) => protocol.name === first)) return cli;
  const { serveCommand } = await import('./serve-config.js');
  if (first === 'serve') return cli.command(serveCommand);
  const { statesCommand } = await import('./states-command.js');
  const { labCommand } = await import('./lab-command.js');
  const { traceCommand } = await import('./trace-command.js');
  return cli.command(serveCommand).command(statesCommand).command(labCommand).command(traceCommand);
}

async function main(): Promise<void> {
  const usage = usageErrors(PROGRAM, commandNames);
  let cli = yargs(hideBin(process.argv));
  skipHelpRendering(cli);
  cli = cli
    .scriptName(PROGRAM)
    .usage(`$0 <protocol> [options]\n\nServe a classic protocol for experiments. Protocols: ${protocolNames}.\nAlso: $0 all (every protocol at once), $0 serve --config FILE (the services a file lists), $0 states (the kernel's TCP sockets), $0 lab <name> (one-command experiments), $0 trace (ladder diagrams of real packets).`)
    .strictCommands()
    .middleware(lastValueWins, true)
    .middleware(usage.remember, true)
    .check(noStrayArguments)
    .fail(usage.fail)
    .epilog(`${EXIT_CODES_HELP}\nDocs: docs/README.md`)
    .help()
    .alias('help', 'h')
    .version(VERSION)
    .wrap(Math.min(110, process.stdout.columns || 80));
  for (const protocol of protocols) cli = cli.command(protocolCommand(protocol));
  cli = await withOtherCommands(cli.command(allCommand));
  await cli
    // `lab-server completion >> ~/.bashrc` (or ~/.zshrc): yargs writes a script that asks this
    // program for the words that can come next (`--get-yargs-completions`).
    .completion('completion', 'Print a shell completion script for bash or zsh (add it to ~/.bashrc or ~/.zshrc)')
    // The default command catches `lab-server <unknown>` to list the protocols there are.
    .command('$0', false, {}, ({ _: [protocol] }) => {
      if (protocol === undefined) throw usageError('ERR_USAGE', `name a protocol to serve: ${protocolNames} (see ${PROGRAM} --help)`);
      const meant = closest(String(protocol), commandNames);
      const choice = meant === undefined ? `choose one of ${protocolNames}` : `did you mean ${meant}?`;
      throw usageError('ERR_UNKNOWN_PROTOCOL', `unknown protocol ${JSON.stringify(protocol)}: ${choice} (see ${PROGRAM} --help)`);
    })
    .parseAsync();
}

await runCli(PROGRAM, main);
process.exit();
