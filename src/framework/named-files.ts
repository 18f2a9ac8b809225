/**
 * Files an operator names on the command line (--quotes, trace --read, --log-file, --pcap), opened
 * so that a wrong path fails at once, with a line saying why, instead of hanging or eating memory:
 *
 * - open(2) of a FIFO waits for the other end (a writer, for reading; a reader, for writing), and
 *   the process, blocked in the syscall, cannot even handle a signal. O_NONBLOCK makes open return
 *   at once (for writing with no reader, ENXIO), and fstat(2) then says what was opened.
 * - /dev/zero, /dev/urandom, or a pipe never end: an input is read only from a regular file whose
 *   size is under a cap, checked before reading; reading stops one byte past that size, should the
 *   file grow in between.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import type { LabError } from '../errors.js';

/** What a path is, in words, for a file that is not a regular one. */
export function describeFileKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isFIFO()) return 'a named pipe (FIFO)';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** `1048576` → `1 MiB`, for messages about a cap. */
const mebibytes = (bytes: number): string => `${bytes / 2 ** 20} MiB`;

export interface InputFile {
  maxBytes: number;
  /** What the file should be, for the message: "a text file of quotes". */
  wanted: string;
  /** Whose cap it is, for the message: "a quotes file". */
  capOf: string;
  /** The error for a file refused, given why in words. */
  refuse(why: string): LabError;
}

/**
 * The contents of a regular file of at most `maxBytes`; anything else is refused (`refuse`) before
 * a byte is read. A file that cannot be opened or read throws fs's own error, with its errno code.
 */
export function readRegularFile(path: string, { maxBytes, wanted, capOf, refuse }: InputFile): Buffer {
  const overCap = `the ${maxBytes}-byte (${mebibytes(maxBytes)}) limit for ${capOf}`;
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw refuse(`it is ${describeFileKind(stats)}; give ${wanted}`);
    if (stats.size > maxBytes) throw refuse(`it is ${stats.size} bytes, over ${overCap}`);
    const buffer = Buffer.alloc(stats.size + 1);
    let length = 0;
    while (length < buffer.length) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break; // end of file
      length += n;
    }
    if (length > stats.size) throw refuse(`it grew while being read; give ${wanted} that stays as it is`);
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

/**
 * A descriptor open for writing `path`, appended to or truncated, created if missing: a regular
 * file, or a character device such as /dev/null or a terminal. A FIFO or a socket is refused
 * (`refuse` gets why, in words, and `instead` says what to do): a reader that stops reading would
 * stop every write, and the whole program with it. Other failures throw fs's own error.
 */
export function openForWriting(path: string, { append, refuse, instead }: { append: boolean; refuse(why: string): LabError; instead: string }): number {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO with no reader fails with ENXIO instead of waiting for one. The flag stays
    // on the descriptor, where it changes nothing for a regular file.
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NONBLOCK | (append ? constants.O_APPEND : constants.O_TRUNC), 0o666);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENXIO') throw refuse(`it is a named pipe (FIFO) or a socket; ${instead}`);
    throw error;
  }
  const stats = fstatSync(fd);
  if (stats.isFile() || stats.isCharacterDevice()) return fd;
  closeSync(fd);
  throw refuse(`it is ${describeFileKind(stats)}; ${instead}`);
}
