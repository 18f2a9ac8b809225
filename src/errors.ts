/**
 * Errors a user can cause and fix: a bad flag, a port in use, a host that does not answer.
 *
 * Each has a stable `code` (for tests and scripts) and an exit status from BSD's
 * sysexits.h, so a shell script can tell "you typed it wrong" from "the network said no".
 * The CLI prints `message` as one line, with no stack trace: these are not bugs.
 */

/** Exit statuses, from sysexits(3). */
export const ExitCode = {
  ok: 0,
  /**
   * A lab ran, but the kernel did not do what the textbook predicts (not from sysexits,
   * which has no code for "the experiment disagreed"; 1 is the shell's plain "failed").
   */
  labFailed: 1,
  /** The command was used incorrectly: a bad flag, port or protocol name. */
  usage: 64,
  /** Input data was incorrect: the echo that came back differs from what was sent. */
  dataError: 65,
  /** A host name could not be resolved. */
  noHost: 68,
  /** A service is unavailable: the port is in use, or nothing answered. */
  unavailable: 69,
  /** An internal error: a bug in lab-server. Please report it. */
  software: 70,
  /** Permission denied: a privileged port without root. */
  noPermission: 77,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class LabError extends Error {
  override readonly name = 'LabError';

  constructor(
    /** Stable identifier, e.g. `ERR_PORT_IN_USE`. */
    readonly code: string,
    message: string,
    readonly exitCode: ExitCodeValue,
  ) {
    super(message);
  }
}

export const usageError = (code: string, message: string): LabError =>
  new LabError(code, message, ExitCode.usage);
