/**
 * Saving packets to a pcap file as they come (`--pcap FILE`), for `tcpdump -r` or Wireshark.
 * The file is created when the writer is: a path that cannot be written fails before a lab or a
 * capture starts, not after it.
 */
import { closeSync, writeSync } from 'node:fs';
import { LabError } from '../errors.js';
import { openForWriting } from '../framework/named-files.js';
import { pcapFileHeader, pcapRecord, type PcapRecord } from './pcap.js';

/** Link type 1, Ethernet: what Linux's lo is captured as, and the header of a file left empty. */
const ETHERNET = 1;

export class PcapFileWriter {
  private readonly fd: number;
  private headerWritten = false;
  /** Packets written so far. */
  packets = 0;

  constructor(readonly path: string) {
    // A FIFO would block the open until a reader came, and then every packet on that reader's pace.
    this.fd = this.attempt(() =>
      openForWriting(path, {
        append: false,
        refuse: (why) => new LabError('ERR_PCAP_WRITE', `cannot write ${path}: ${why}`),
        instead: 'give a file name (a live capture shows its packets with trace --port)',
      }),
    );
  }

  /** Appends one packet; the file header, which names the link type, goes before the first. */
  write(record: PcapRecord, linkType: number): void {
    this.attempt(() => {
      if (!this.headerWritten) this.writeHeader(linkType);
      writeSync(this.fd, pcapRecord(record));
    });
    this.packets += 1;
  }

  /** Closes the file; one without packets still gets its header, so that tools read it as empty. */
  close(): void {
    this.attempt(() => {
      if (!this.headerWritten) this.writeHeader(ETHERNET);
      closeSync(this.fd);
    });
  }

  private writeHeader(linkType: number): void {
    writeSync(this.fd, pcapFileHeader(linkType));
    this.headerWritten = true;
  }

  private attempt<T>(io: () => T): T {
    try {
      return io();
    } catch (error) {
      if (error instanceof LabError) throw error;
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new LabError('ERR_PCAP_WRITE', `cannot write ${this.path}: ${reason}; choose a path in a folder you can write to`);
    }
  }
}
