/**
 * Reading and writing pcap files: the "savefile" format of tcpdump and libpcap, which Wireshark
 * and every capture tool read. Its reference is tcpdump's pcap-savefile(5) man page and the IETF
 * draft that writes it down, draft-ietf-opsawg-pcap.
 *
 * A pcap file is a 24-byte file header, then one record per captured packet, back to back:
 *
 *     file header    magic (4) · version 2.4 (2+2) · 8 reserved bytes · snapshot length (4) · link type (4)
 *     record header  seconds (4) · microseconds or nanoseconds (4) · captured length (4) · original length (4)
 *     record data    the first `captured length` bytes of the packet, link-layer header first
 *
 * The magic number says both the byte order the writer used (every field is in that order) and
 * whether the fraction of a second counts microseconds or nanoseconds. The snapshot length is the
 * most a record may hold: a longer packet is cut, and its original length says how long it was.
 * The link type (https://www.tcpdump.org/linktypes.html) says what comes before the IP header;
 * decode.ts reads it.
 *
 * `tcpdump -w - -U` writes this format to its stdout one packet at a time, so PcapReader takes
 * the bytes in whatever chunks the pipe delivers them.
 */
import { LabError } from '../errors.js';
import { readRegularFile } from '../framework/named-files.js';

const FILE_HEADER_LENGTH = 24;
const RECORD_HEADER_LENGTH = 16;

/** The magic numbers, read as a little-endian 32-bit word: a pcap file starts with one of them. */
const MAGIC = {
  /** Microseconds, and the file's byte order is little-endian. */
  microsecondLittleEndian: 0xa1b2c3d4,
  /** Microseconds, big-endian: the same bytes read in the other order. */
  microsecondBigEndian: 0xd4c3b2a1,
  /** Nanoseconds (libpcap 1.5 and later, `tcpdump --time-stamp-precision=nano`). */
  nanosecondLittleEndian: 0xa1b23c4d,
  nanosecondBigEndian: 0x4d3cb2a1,
  /** pcapng's Section Header Block type (a different format; it reads the same in either byte order). */
  pcapng: 0x0a0d0d0a,
} as const;

/**
 * The most a record can hold: libpcap's largest snapshot length (MAXIMUM_SNAPLEN in pcap-int.h,
 * 256 KiB), which is also tcpdump's default. A record claiming more is corrupt.
 */
export const MAXIMUM_SNAPLEN = 262_144;

/** The version this module writes, and the only major version there is. */
const VERSION = { major: 2, minor: 4 } as const;

type ByteOrder = 'little-endian' | 'big-endian';

export interface PcapHeader {
  /** The writer's byte order; every header field of the file is in it (the packets are in network order). */
  byteOrder: ByteOrder;
  /** True when the records count nanoseconds rather than microseconds. */
  nanosecond: boolean;
  versionMajor: number;
  versionMinor: number;
  /** The most bytes of a packet that a record holds. */
  snapLength: number;
  /** What the records start with: 1 is Ethernet (what `tcpdump -i lo` gives on Linux). See decode.ts. */
  linkType: number;
}

export interface PcapRecord {
  /** When it was captured: microseconds since the Unix epoch (nanosecond files are rounded). */
  timeUs: number;
  /** The bytes the record holds: `data.length`. */
  capturedLength: number;
  /** The packet's length on the wire; more than capturedLength when the snapshot length cut it. */
  originalLength: number;
  data: Buffer;
}

/**
 * Reads a pcap stream as it arrives. Push each chunk; get back the records it completed. Only
 * the unparsed tail is kept between chunks, so memory stays bounded however long the capture.
 */
export class PcapReader {
  /** The file header, once its 24 bytes have arrived. */
  header: PcapHeader | undefined;
  /** Bytes received and not yet parsed, in arrival order; joined only when a whole piece is there. */
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** The file offset of the first pending byte, and the number of the next record (1-based, as tcpdump and Wireshark count). */
  private offset = 0;
  private recordNumber = 1;

  /** `source` names the capture in error messages: a file name, or e.g. "tcpdump's output". */
  constructor(private readonly source?: string) {}

  /** Adds `chunk`; returns every record it completed, in order. Throws ERR_BAD_PCAP on a malformed stream. */
  push(chunk: Buffer): PcapRecord[] {
    this.pending.push(chunk);
    this.pendingLength += chunk.length;
    if (this.header === undefined) {
      const bytes = this.take(FILE_HEADER_LENGTH);
      if (bytes === undefined) return [];
      this.header = parseFileHeader(bytes, this.source);
    }
    const header = this.header;
    const records: PcapRecord[] = [];
    for (;;) {
      const recordHeader = this.peek(RECORD_HEADER_LENGTH);
      if (recordHeader === undefined) break;
      const capturedLength = readUInt32(header.byteOrder, recordHeader, 8);
      this.checkCapturedLength(capturedLength, header);
      const bytes = this.take(RECORD_HEADER_LENGTH + capturedLength);
      if (bytes === undefined) break;
      const seconds = readUInt32(header.byteOrder, bytes, 0);
      const fraction = readUInt32(header.byteOrder, bytes, 4);
      records.push({
        timeUs: seconds * 1e6 + (header.nanosecond ? Math.round(fraction / 1000) : fraction),
        capturedLength,
        originalLength: readUInt32(header.byteOrder, bytes, 12),
        // A copy, so that a record kept for later does not keep alive the whole chunk it came in.
        data: Buffer.from(bytes.subarray(RECORD_HEADER_LENGTH)),
      });
      this.recordNumber++;
    }
    return records;
  }

  /** The stream has ended: throws ERR_BAD_PCAP if it stopped inside the file header or a record. */
  end(): void {
    if (this.header === undefined) {
      // A short file that is not pcap at all (pcapng, text) is named for what it is, not as truncated.
      if (this.pendingLength >= 4) formatOf(Buffer.concat(this.pending), this.source);
      throw badPcap(
        this.pendingLength === 0
          ? `${this.name} is empty: a pcap file starts with a ${FILE_HEADER_LENGTH}-byte header (did the capture start?)`
          : `${this.name} is truncated: a pcap file starts with a ${FILE_HEADER_LENGTH}-byte header, and it has only ${this.pendingLength} bytes`,
      );
    }
    if (this.pendingLength === 0) return;
    const recordHeader = this.peek(RECORD_HEADER_LENGTH);
    const needed = RECORD_HEADER_LENGTH + (recordHeader === undefined ? 0 : readUInt32(this.header.byteOrder, recordHeader, 8));
    throw badPcap(`${this.name} is truncated: record ${this.recordNumber} needs ${needed} bytes, only ${this.pendingLength} are left (was the capture stopped mid-write?)`);
  }

  private get name(): string {
    return this.source ?? 'the capture';
  }

  /**
   * A record cannot hold more than the snapshot length (nor more than any libpcap writes): a
   * larger length means the bytes are not where a record header should be.
   */
  private checkCapturedLength(capturedLength: number, header: PcapHeader): void {
    // A snapshot length of 0 is left unset by some writers: then only libpcap's own limit applies.
    const limit = Math.min(header.snapLength || MAXIMUM_SNAPLEN, MAXIMUM_SNAPLEN);
    if (capturedLength <= limit) return;
    throw badPcap(
      `${this.name} is corrupt: record ${this.recordNumber} (at byte ${this.offset}) claims ${capturedLength} bytes, ` +
        `more than the ${limit} a record can hold: the file is damaged (record it again)`,
    );
  }

  /** The first `length` pending bytes, without consuming them; undefined until they have all arrived. */
  private peek(length: number): Buffer | undefined {
    if (this.pendingLength < length) return undefined;
    if (this.pending[0]!.length < length) this.pending = [Buffer.concat(this.pending)];
    return this.pending[0]!.subarray(0, length);
  }

  /** Consumes and returns the first `length` pending bytes; undefined (and nothing consumed) until they have all arrived. */
  private take(length: number): Buffer | undefined {
    const bytes = this.peek(length);
    if (bytes === undefined) return undefined;
    const rest = this.pending[0]!.subarray(length);
    this.pending = rest.length > 0 ? [rest, ...this.pending.slice(1)] : this.pending.slice(1);
    this.pendingLength -= length;
    this.offset += length;
    return bytes;
  }
}

/**
 * The largest pcap file read: 256 MiB, held in memory whole with its records. A lab's capture is a
 * few KiB; a longer one can be cut with `tcpdump -r big.pcap -w part.pcap -c N`. The cap, checked
 * before reading, is what keeps `--read /dev/zero` or a runaway file from filling the memory.
 */
export const MAX_PCAP_FILE_BYTES = 256 * 1024 * 1024;

/**
 * Every record of the pcap file at `path`, a regular file of at most MAX_PCAP_FILE_BYTES (a pipe,
 * a FIFO or a device is refused before reading: see readRegularFile). Throws ERR_BAD_PCAP, naming
 * the file, if it cannot be read or is not a whole pcap file.
 */
export function readPcapFile(path: string): { header: PcapHeader; records: PcapRecord[] } {
  let contents: Buffer;
  try {
    contents = readRegularFile(path, {
      maxBytes: MAX_PCAP_FILE_BYTES,
      wanted: 'a saved capture (tcpdump -w FILE), or --port for a live one',
      capOf: 'a pcap file',
      refuse: (why) => badPcap(`cannot use ${path}: ${why}`),
    });
  } catch (error) {
    if (error instanceof LabError) throw error;
    throw badPcap(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const reader = new PcapReader(path);
  const records = reader.push(contents);
  reader.end();
  return { header: reader.header!, records };
}

/**
 * A pcap file header for records of `linkType`: version 2.4, microseconds, little-endian (the
 * magic tells readers the order, so any order is standard; this is the one x86 and ARM use).
 */
export function pcapFileHeader(linkType: number, snapLength = MAXIMUM_SNAPLEN): Buffer {
  const header = Buffer.alloc(FILE_HEADER_LENGTH); // the two reserved words (bytes 8 to 15) stay 0
  header.writeUInt32LE(MAGIC.microsecondLittleEndian, 0);
  header.writeUInt16LE(VERSION.major, 4);
  header.writeUInt16LE(VERSION.minor, 6);
  header.writeUInt32LE(snapLength, 16);
  header.writeUInt32LE(linkType, 20);
  return header;
}

/** One record, header and data, to follow a pcapFileHeader: append these to the file one by one. */
export function pcapRecord(record: Pick<PcapRecord, 'timeUs' | 'originalLength' | 'data'>): Buffer {
  const header = Buffer.alloc(RECORD_HEADER_LENGTH);
  const seconds = Math.floor(record.timeUs / 1e6);
  header.writeUInt32LE(seconds, 0);
  header.writeUInt32LE(record.timeUs - seconds * 1e6, 4);
  header.writeUInt32LE(record.data.length, 8);
  header.writeUInt32LE(record.originalLength, 12);
  return Buffer.concat([header, record.data]);
}

/** Header fields are in the writer's byte order: read them in it. */
const readUInt16 = (order: ByteOrder, bytes: Buffer, offset: number): number =>
  order === 'little-endian' ? bytes.readUInt16LE(offset) : bytes.readUInt16BE(offset);
const readUInt32 = (order: ByteOrder, bytes: Buffer, offset: number): number =>
  order === 'little-endian' ? bytes.readUInt32LE(offset) : bytes.readUInt32BE(offset);

/** The format the magic number at the start names; throws for pcapng and for anything else. */
function formatOf(bytes: Buffer, source: string | undefined) {
  const name = source ?? 'the capture';
  const magic = bytes.readUInt32LE(0);
  if (magic === MAGIC.pcapng) {
    const pcap = source === undefined ? 'FILE.pcap' : source.replace(/(\.pcapng)?$/, '.pcap');
    throw badPcap(`${name} is pcapng, not pcap: convert it with \`tcpdump -r ${source ?? 'FILE.pcapng'} -w ${pcap}\` (or save as pcap in Wireshark)`);
  }
  const format = MAGIC_FORMATS.get(magic);
  if (format === undefined) throw badPcap(`${name} is not a pcap file: ${describeStart(bytes)}`);
  return format;
}

function parseFileHeader(bytes: Buffer, source: string | undefined): PcapHeader {
  const name = source ?? 'the capture';
  const format = formatOf(bytes, source);
  const versionMajor = readUInt16(format.byteOrder, bytes, 4);
  const versionMinor = readUInt16(format.byteOrder, bytes, 6);
  if (versionMajor !== VERSION.major) {
    throw badPcap(`${name} says pcap version ${versionMajor}.${versionMinor}, and only version 2 exists: the file is damaged (record it again)`);
  }
  return {
    ...format,
    versionMajor,
    versionMinor,
    snapLength: readUInt32(format.byteOrder, bytes, 16),
    // The low 16 bits are the link type; the upper ones may say whether frames end in an FCS, which we do not need.
    linkType: readUInt32(format.byteOrder, bytes, 20) & 0xffff,
  };
}

const MAGIC_FORMATS = new Map<number, Pick<PcapHeader, 'byteOrder' | 'nanosecond'>>([
  [MAGIC.microsecondLittleEndian, { byteOrder: 'little-endian', nanosecond: false }],
  [MAGIC.microsecondBigEndian, { byteOrder: 'big-endian', nanosecond: false }],
  [MAGIC.nanosecondLittleEndian, { byteOrder: 'little-endian', nanosecond: true }],
  [MAGIC.nanosecondBigEndian, { byteOrder: 'big-endian', nanosecond: true }],
]);

/**
 * What a file that is not pcap starts with. The commonest mistake gets its own hint: `tcpdump > FILE`
 * saves tcpdump's text, where `tcpdump -w FILE` saves the packets.
 */
function describeStart(bytes: Buffer): string {
  const start = bytes.subarray(0, 4);
  if (start.every((byte) => (byte >= 0x20 && byte < 0x7f) || byte === 0x09 || byte === 0x0a || byte === 0x0d)) {
    return `it starts with text, ${JSON.stringify(start.toString('latin1'))}, where a pcap file starts with a binary magic number (was it saved with \`tcpdump > FILE\` instead of \`tcpdump -w FILE\`?)`;
  }
  return `it starts with ${hexBytes(start)}, where a pcap file starts with ${hexBytes(magicBytes(MAGIC.microsecondLittleEndian))} or ${hexBytes(magicBytes(MAGIC.nanosecondLittleEndian))}, or those bytes reversed (save a capture with \`tcpdump -w FILE\`)`;
}

/** `d4 c3 b2 a1`: bytes as a hex dump shows them. */
const hexBytes = (bytes: Buffer): string => [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join(' ');

/** The four bytes a little-endian writer puts on disk for `magic`. */
function magicBytes(magic: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(magic);
  return bytes;
}

const badPcap = (message: string): LabError => new LabError('ERR_BAD_PCAP', message);
