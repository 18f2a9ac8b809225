/**
 * The pcap reader and writer, and the segment decoder, on real captures: test/fixtures/pcap/
 * holds loopback captures of lab-server's own protocols, recorded with tcpdump (its README says
 * how, and what each shows). The byte-level cases (other magics, link types, IPv6 extension
 * headers, broken files) are built here from those real packets.
 *
 * The random cases are seeded: FUZZ_SEED=<seed> node --test dist/test/pcap.test.js replays them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { SocketAddress } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { checkLinkType, decodeSegment } from '../src/capture/decode.js';
import { formatIPv6 } from '../src/framework/endpoint.js';
import { MAXIMUM_SNAPLEN, PcapReader, pcapFileHeader, pcapRecord, readPcapFile, type PcapRecord } from '../src/capture/pcap.js';
import { TCP_FLAGS, flagNames, hasFlags, type Segment } from '../src/capture/segment.js';
import { LabError } from '../src/errors.js';
import { Random, seedFromEnvironment } from './helpers/random.js';

const seed = seedFromEnvironment();

// The compiled test runs from dist/test/, hence the ../../.
const FIXTURES = fileURLToPath(new URL('../../test/fixtures/pcap/', import.meta.url));
const fixturePath = (name: string): string => join(FIXTURES, name);
const FIXTURE_NAMES = ['daytime-ipv4.pcap', 'daytime-ipv6.pcap', 'echo-half-close.pcap', 'rst.pcap', 'closed-port.pcap'];

const LINKTYPE_ETHERNET = 1;
const ETHERNET_HEADER_LENGTH = 14;

/** The segments of a fixture; every record in them is TCP (tcpdump's filter was `tcp port N`), so each must decode. */
function segmentsOf(name: string): Segment[] {
  const { header, records } = readPcapFile(fixturePath(name));
  checkLinkType(header.linkType, name);
  return records.map((record, index) => {
    const segment = decodeSegment(header.linkType, record);
    assert.ok(segment, `${name}: record ${index + 1} did not decode`);
    return segment;
  });
}

/** Each segment as `client SYN` or `server PSH,ACK 25`: who sent it, its flags, and its payload length if any. */
const ladder = (segments: Segment[], serverPort: number): string[] =>
  segments.map((s) => `${s.source.port === serverPort ? 'server' : 'client'} ${flagNames(s.flags)}${s.payloadLength > 0 ? ` ${s.payloadLength}` : ''}`);

/** The index of the first segment from `port` with all of `flags`. */
const firstFrom = (segments: Segment[], port: number, flags: number): number => segments.findIndex((s) => s.source.port === port && hasFlags(s, flags));

/** `n` + 1, as 32-bit sequence arithmetic does it (RFC 9293 §3.4: it wraps). */
const next = (n: number, by = 1): number => (n + by) >>> 0;

/** The error `action` throws: a LabError with code ERR_BAD_PCAP and a one-line message. */
function badPcapMessage(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof LabError, `not a LabError: ${String(error)}`);
    assert.equal(error.code, 'ERR_BAD_PCAP');
    assert.doesNotMatch(error.message, /\n/);
    return error.message;
  }
  assert.fail('no error was thrown');
}

const readAll = (reader: PcapReader, bytes: Buffer): PcapRecord[] => {
  const records = reader.push(bytes);
  reader.end();
  return records;
};

// ---------------------------------------------------------------------------------------------
// The fixtures: what tcpdump recorded.

test('every fixture is pcap 2.4, microseconds, little-endian, Ethernet on lo, snapshot length 262144', () => {
  for (const name of FIXTURE_NAMES) {
    const { header } = readPcapFile(fixturePath(name));
    assert.deepEqual(
      header,
      { byteOrder: 'little-endian', nanosecond: false, versionMajor: 2, versionMinor: 4, snapLength: MAXIMUM_SNAPLEN, linkType: LINKTYPE_ETHERNET },
      name,
    );
  }
});

/** A daytime connection as both recordings have it: the server's FIN first, and the client's FIN carrying the ACK of it. */
const DAYTIME_CLOSE = ['client SYN', 'server SYN,ACK', 'client ACK', 'server PSH,ACK 25', 'client ACK', 'server FIN,ACK', 'client FIN,ACK', 'server ACK'];

test('daytime over IPv4: handshake, the line, the server closes first, the client closes, the last ACK', () => {
  const segments = segmentsOf('daytime-ipv4.pcap');
  assert.deepEqual(ladder(segments, 44013), DAYTIME_CLOSE);
  const [syn, synAck, , line] = segments as [Segment, Segment, Segment, Segment];
  assert.equal(syn.ipVersion, 4);
  assert.deepEqual(syn.source, { address: '127.0.0.1', port: 35714 });
  assert.deepEqual(syn.destination, { address: '127.0.0.1', port: 44013 });
  // Sequence numbers above 2^31 stay positive: they are unsigned 32-bit numbers.
  assert.equal(syn.seq, 3681326352);
  assert.equal(synAck.seq, 685291491);
  assert.equal(synAck.ack, next(syn.seq), 'the SYN takes one sequence number');
  assert.equal(line.payload.toString('latin1'), 'Wed Dec  2 05:53:36 2026\n');
  assert.equal(line.payloadLength, line.payload.length);
  assert.equal(line.seq, next(synAck.seq));

  const serverFin = firstFrom(segments, 44013, TCP_FLAGS.FIN);
  const clientFin = firstFrom(segments, 35714, TCP_FLAGS.FIN);
  assert.ok(serverFin < clientFin, 'daytime: the server closes first (active close)');
  assert.equal(segments[serverFin]!.seq, next(line.seq, 25), 'the FIN follows the 25 bytes');
  assert.equal(segments[clientFin]!.ack, next(segments[serverFin]!.seq), "the client's FIN acknowledges the server's: a FIN takes a sequence number");
  assert.equal(segments.at(-1)!.ack, next(segments[clientFin]!.seq), "the last ACK acknowledges the client's FIN");
});

test('the SYN and SYN,ACK negotiate MSS, window scale, SACK and timestamps; later segments carry only timestamps', () => {
  const [syn, synAck, ack] = segmentsOf('daytime-ipv4.pcap') as [Segment, Segment, Segment];
  assert.deepEqual(syn.options, { mss: 65495, sackPermitted: true, timestamps: { value: 1255350473, echo: 0 }, windowScale: 10 });
  assert.equal(syn.window, 65495);
  assert.equal(synAck.options.mss, 65495);
  assert.equal(synAck.options.windowScale, 10);
  assert.equal(synAck.options.timestamps?.echo, syn.options.timestamps?.value, 'the SYN,ACK echoes the SYN\'s timestamp');
  assert.deepEqual(ack.options, { timestamps: { value: 1255350473, echo: 4103416721 } });
  assert.equal(ack.window, 64, 'after the handshake the window field is scaled: 64 << 10 bytes');
});

test('timestamps are microseconds since the epoch and never go backwards', () => {
  const segments = segmentsOf('daytime-ipv4.pcap');
  // tcpdump -tt: 1796190816.109677 for the SYN.
  assert.equal(segments[0]!.timeUs, 1796190816109677);
  for (let i = 1; i < segments.length; i++) assert.ok(segments[i]!.timeUs >= segments[i - 1]!.timeUs);
});

test('daytime over IPv6: the same ladder between ::1 ports, and the IPv6 MSS', () => {
  const segments = segmentsOf('daytime-ipv6.pcap');
  assert.deepEqual(ladder(segments, 44613), DAYTIME_CLOSE);
  for (const segment of segments) {
    assert.equal(segment.ipVersion, 6);
    assert.equal(segment.source.address, '::1', 'the address as net shows it');
    assert.equal(segment.destination.address, '::1');
  }
  assert.deepEqual(segments[0]!.source, { address: '::1', port: 35118 });
  // 20 bytes less than over IPv4: the IPv6 header is 40 bytes, IPv4's 20.
  assert.equal(segments[0]!.options.mss, 65476);
  assert.equal(segments[3]!.payload.toString('latin1'), 'Wed Dec  2 05:53:38 2026\n');
  assert.ok(firstFrom(segments, 44613, TCP_FLAGS.FIN) < firstFrom(segments, 35118, TCP_FLAGS.FIN));
});

test('echo with a half-close: the server still sends after the client\'s FIN, then closes', () => {
  const segments = segmentsOf('echo-half-close.pcap');
  assert.deepEqual(ladder(segments, 44007), [
    'client SYN',
    'server SYN,ACK',
    'client ACK',
    'client PSH,ACK 6',
    'server ACK',
    'server PSH,ACK 6',
    'client ACK',
    'client PSH,ACK 6',
    'client FIN,ACK',
    'server PSH,ACK 6',
    'server FIN,ACK',
    'client ACK',
  ]);
  const text = (from: number): string[] => segments.filter((s) => s.source.port === from && s.payloadLength > 0).map((s) => s.payload.toString('latin1'));
  assert.deepEqual(text(60832), ['hello\n', 'world\n']);
  assert.deepEqual(text(44007), ['hello\n', 'world\n']);

  const clientFin = segments[firstFrom(segments, 60832, TCP_FLAGS.FIN)]!;
  const lateEcho = segments[9]!;
  assert.equal(lateEcho.payload.toString('latin1'), 'world\n');
  assert.ok(lateEcho.timeUs >= clientFin.timeUs);
  assert.equal(lateEcho.ack, next(clientFin.seq), "the echo after the half-close acknowledges the client's FIN");
  assert.ok(firstFrom(segments, 60832, TCP_FLAGS.FIN) < firstFrom(segments, 44007, TCP_FLAGS.FIN), 'echo: the client closes first');
});

test('rst: the line, then a reset instead of any FIN', () => {
  const segments = segmentsOf('rst.pcap');
  assert.deepEqual(ladder(segments, 44113), ['client SYN', 'server SYN,ACK', 'client ACK', 'server PSH,ACK 25', 'client ACK', 'server RST,ACK']);
  assert.ok(!segments.some((s) => hasFlags(s, TCP_FLAGS.FIN)));
  assert.equal(segments.at(-1)!.seq, next(segments[3]!.seq, 25), 'the RST carries the next sequence number after the line');
});

test('closed port: a SYN answered by RST,ACK, with sequence 0 and an ACK of the SYN', () => {
  const [syn, reset, ...rest] = segmentsOf('closed-port.pcap');
  assert.deepEqual(rest, []);
  assert.equal(flagNames(syn!.flags), 'SYN');
  assert.deepEqual(syn!.destination, { address: '127.0.0.1', port: 44999 });
  assert.equal(flagNames(reset!.flags), 'RST,ACK');
  assert.deepEqual(reset!.source, syn!.destination);
  assert.equal(reset!.seq, 0);
  assert.equal(reset!.ack, next(syn!.seq));
  assert.equal(reset!.window, 0);
});

// ---------------------------------------------------------------------------------------------
// Reading a stream: tcpdump's pipe gives the bytes in any chunks.

test('pushed one byte at a time, every fixture gives the same header and records', () => {
  for (const name of FIXTURE_NAMES) {
    const bytes = readFileSync(fixturePath(name));
    const whole = readPcapFile(fixturePath(name));
    const reader = new PcapReader(name);
    const records: PcapRecord[] = [];
    for (let i = 0; i < bytes.length; i++) {
      records.push(...reader.push(bytes.subarray(i, i + 1)));
      assert.equal(reader.header === undefined, i + 1 < 24, `${name}: the header is known once its 24 bytes are in`);
    }
    reader.end();
    assert.deepEqual(reader.header, whole.header);
    assert.deepEqual(records, whole.records, name);
  }
});

test(`pushed in random chunks, every fixture gives the same records (FUZZ_SEED=${seed})`, () => {
  const random = new Random(seed);
  for (const name of FIXTURE_NAMES) {
    const bytes = readFileSync(fixturePath(name));
    const { records: expected } = readPcapFile(fixturePath(name));
    for (let round = 0; round < 50; round++) {
      const reader = new PcapReader(name);
      const records: PcapRecord[] = [];
      for (let at = 0; at < bytes.length; ) {
        const size = random.logInt(0, 200);
        records.push(...reader.push(bytes.subarray(at, at + size)));
        at += size;
      }
      reader.end();
      assert.deepEqual(records, expected, `${name}, round ${round}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// The four magic numbers, built by hand around a real packet.

/** Numbers as bytes: in network (big-endian) order, or little-endian. */
const u16be = (value: number): Buffer => Buffer.from([value >> 8, value & 0xff]);
const u16le = (value: number): Buffer => Buffer.from(u16be(value).reverse());
const u32be = (value: number): Buffer => Buffer.concat([u16be(value >>> 16), u16be(value & 0xffff)]);
const u32le = (value: number): Buffer => Buffer.from(u32be(value).reverse());

/** A pcap file written field by field, in either byte order and either time unit, holding `frames` at `seconds`.`fraction`. */
function handMadePcap(options: { bigEndian: boolean; nanosecond: boolean; snapLength?: number }, frames: Array<{ seconds: number; fraction: number; data: Buffer; capturedLength?: number }>): Buffer {
  const [u16, u32] = options.bigEndian ? [u16be, u32be] : [u16le, u32le];
  const magic = options.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4;
  return Buffer.concat([
    u32(magic),
    u16(2),
    u16(4),
    u32(0),
    u32(0),
    u32(options.snapLength ?? MAXIMUM_SNAPLEN),
    u32(LINKTYPE_ETHERNET),
    ...frames.flatMap((frame) => [u32(frame.seconds), u32(frame.fraction), u32(frame.capturedLength ?? frame.data.length), u32(frame.data.length), frame.data]),
  ]);
}

const daytimeRecords = readPcapFile(fixturePath('daytime-ipv4.pcap')).records;
const ipv6Records = readPcapFile(fixturePath('daytime-ipv6.pcap')).records;
/** Real frames to build on: the daytime SYN, the PSH,ACK with the line, and a plain ACK (IPv4 and IPv6). */
const FRAMES = { syn: daytimeRecords[0]!.data, line: daytimeRecords[3]!.data, ack: daytimeRecords[2]!.data, line6: ipv6Records[3]!.data };

test('all four magics: either byte order, microseconds or nanoseconds (rounded to microseconds)', () => {
  for (const bigEndian of [false, true]) {
    for (const nanosecond of [false, true]) {
      const file = handMadePcap({ bigEndian, nanosecond }, [
        { seconds: 1_800_000_000, fraction: nanosecond ? 123_456_789 : 123_457, data: FRAMES.syn },
        // 999,999.6 µs rounds up into the next second.
        { seconds: 1_800_000_000, fraction: nanosecond ? 999_999_600 : 999_999, data: FRAMES.line },
      ]);
      const label = `${bigEndian ? 'big' : 'little'}-endian, ${nanosecond ? 'nano' : 'micro'}seconds`;
      const reader = new PcapReader(label);
      const records = readAll(reader, file);
      assert.equal(reader.header?.byteOrder, bigEndian ? 'big-endian' : 'little-endian', label);
      assert.equal(reader.header?.nanosecond, nanosecond, label);
      assert.equal(reader.header?.linkType, LINKTYPE_ETHERNET, label);
      assert.deepEqual(
        records.map((r) => r.timeUs),
        [1_800_000_000_123_457, nanosecond ? 1_800_000_001_000_000 : 1_800_000_000_999_999],
        label,
      );
      // The packets themselves are in network byte order whatever the file's order.
      assert.deepEqual(decodeSegment(LINKTYPE_ETHERNET, records[0]!), { ...decodeSegment(LINKTYPE_ETHERNET, daytimeRecords[0]!), timeUs: 1_800_000_000_123_457 }, label);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Broken files: one line saying what is wrong and what to do.

test('a file cut in the middle of a record: the record, how many bytes it needs and how many are left', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-'));
  t.after(() => rmSync(dir, { recursive: true }));
  const bytes = readFileSync(fixturePath('daytime-ipv4.pcap'));
  const cut = join(dir, 'tw.pcap');
  // The last record: a 16-byte record header and a 66-byte frame (14 Ethernet + 20 IP + 32 TCP).
  writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
  assert.equal(badPcapMessage(() => readPcapFile(cut)), `${cut} is truncated: record 8 needs 82 bytes, only 72 are left (was the capture stopped mid-write?)`);
  // Cut inside a record header: only the header's 16 bytes are known to be needed.
  const inHeader = new PcapReader('tw.pcap');
  inHeader.push(bytes.subarray(0, 24 + 5));
  assert.equal(badPcapMessage(() => inHeader.end()), 'tw.pcap is truncated: record 1 needs 16 bytes, only 5 are left (was the capture stopped mid-write?)');
  // Cut inside the file header, and nothing at all.
  assert.match(badPcapMessage(() => readAll(new PcapReader('tw.pcap'), bytes.subarray(0, 10))), /^tw\.pcap is truncated: .*only 10 bytes$/);
  assert.match(badPcapMessage(() => readAll(new PcapReader('tw.pcap'), Buffer.alloc(0))), /^tw\.pcap is empty/);
  // A header and no records is a whole capture of nothing, not a truncated one.
  assert.doesNotThrow(() => readAll(new PcapReader(), bytes.subarray(0, 24)));
});

test('pcapng: says so, and how to convert it', () => {
  // A pcapng Section Header Block: type 0x0a0d0d0a, length 28, byte-order magic, version 1.0, section length -1.
  const pcapng = Buffer.from('0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000', 'hex');
  assert.equal(
    badPcapMessage(() => readAll(new PcapReader('tw.pcapng'), pcapng)),
    'tw.pcapng is pcapng, not pcap: convert it with `tcpdump -r tw.pcapng -w tw.pcap` (or save as pcap in Wireshark)',
  );
});

test("tcpdump's text saved instead of its packets: says how to save packets", () => {
  const text = Buffer.from('05:53:36.109677 IP 127.0.0.1.35714 > 127.0.0.1.44013: Flags [S], seq 3681326352, win 65495\n');
  assert.match(badPcapMessage(() => readAll(new PcapReader('x.pcap'), text)), /^x\.pcap is not a pcap file: it starts with text, "05:5".*`tcpdump -w FILE`/);
  const elf = Buffer.from('7f454c46020101000000000000000000030003000100000000000000', 'hex');
  assert.match(badPcapMessage(() => readAll(new PcapReader('x.pcap'), elf)), /^x\.pcap is not a pcap file: it starts with 7f 45 4c 46, where a pcap file starts with d4 c3 b2 a1 or 4d 3c b2 a1/);
});

test('a record longer than the snapshot length, or than any libpcap writes, is corrupt', () => {
  const overSnapshot = handMadePcap({ bigEndian: false, nanosecond: false, snapLength: 80 }, [
    { seconds: 1, fraction: 0, data: FRAMES.ack },
    { seconds: 2, fraction: 0, data: FRAMES.line },
  ]);
  assert.equal(
    badPcapMessage(() => new PcapReader('x.pcap').push(overSnapshot)),
    'x.pcap is corrupt: record 2 (at byte 106) claims 91 bytes, more than the 80 a record can hold: the file is damaged (record it again)',
  );
  const huge = handMadePcap({ bigEndian: true, nanosecond: false }, [{ seconds: 1, fraction: 0, data: FRAMES.ack, capturedLength: 0x7fffffff }]);
  assert.match(badPcapMessage(() => new PcapReader('x.pcap').push(huge)), /record 1 \(at byte 24\) claims 2147483647 bytes, more than the 262144/);
});

test('a version other than 2 is refused', () => {
  const file = handMadePcap({ bigEndian: false, nanosecond: false }, []);
  file.writeUInt16LE(3, 4);
  assert.match(badPcapMessage(() => new PcapReader('x.pcap').push(file)), /^x\.pcap says pcap version 3\.4/);
});

test('a file that cannot be read: one line naming it', () => {
  assert.match(badPcapMessage(() => readPcapFile('/nonexistent/tw.pcap')), /^cannot read \/nonexistent\/tw\.pcap: ENOENT$/);
});

test(`random bytes, and fixtures with random bytes changed: an ERR_BAD_PCAP or records, never a crash (FUZZ_SEED=${seed})`, () => {
  const random = new Random(seed);
  const fixtures = FIXTURE_NAMES.map((name) => readFileSync(fixturePath(name)));
  let errors = 0;
  let segments = 0;
  for (let round = 0; round < 2000; round++) {
    let bytes: Buffer;
    if (random.chance(0.3)) bytes = random.bytes(random.logInt(0, 2000));
    else {
      bytes = Buffer.from(random.pick(fixtures));
      for (let flips = random.int(1, 8); flips > 0; flips--) bytes[random.int(0, bytes.length - 1)] = random.int(0, 255);
      if (random.chance(0.2)) bytes = bytes.subarray(0, random.int(0, bytes.length));
    }
    try {
      const reader = new PcapReader('fuzz.pcap');
      const records = readAll(reader, bytes);
      // The decoder must survive whatever a (possibly mangled) record holds, with any link type it reads.
      for (const record of records) {
        for (const linkType of [reader.header!.linkType, 0, 1, 12, 101, 108, 113, 276]) {
          try {
            if (decodeSegment(linkType, record) !== undefined) segments++;
          } catch (error) {
            assert.ok(error instanceof LabError && error.code === 'ERR_BAD_PCAP', `decodeSegment threw ${String(error)}`);
          }
        }
      }
    } catch (error) {
      assert.ok(error instanceof LabError, `round ${round}: ${String(error)}`);
      assert.equal(error.code, 'ERR_BAD_PCAP');
      assert.doesNotMatch(error.message, /\n/);
      errors++;
    }
  }
  assert.ok(errors > 0 && segments > 0, `both kinds of outcome happened (${errors} errors, ${segments} segments)`);
});

// ---------------------------------------------------------------------------------------------
// Writing: what the labs' --pcap saves.

test('written then read back: the same header and records; tcpdump wrote these very bytes', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-'));
  t.after(() => rmSync(dir, { recursive: true }));
  for (const name of FIXTURE_NAMES) {
    const original = readPcapFile(fixturePath(name));
    const written = join(dir, name);
    writeFileSync(written, Buffer.concat([pcapFileHeader(original.header.linkType), ...original.records.map(pcapRecord)]));
    const readBack = readPcapFile(written);
    assert.deepEqual(readBack, original, name);
    // tcpdump on a little-endian machine writes the same format, so the bytes are the same too.
    assert.deepEqual(readFileSync(written), readFileSync(fixturePath(name)), name);
  }
});

test('tcpdump reads a written file and prints the same segments as for the original', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-'));
  t.after(() => rmSync(dir, { recursive: true }));
  const original = readPcapFile(fixturePath('echo-half-close.pcap'));
  // Only the server's segments, written one at a time, as a lab writes the segments of its own connections.
  const servers = original.records.filter((record) => decodeSegment(LINKTYPE_ETHERNET, record)!.source.port === 44007);
  const written = join(dir, 'server-side.pcap');
  writeFileSync(written, Buffer.concat([pcapFileHeader(LINKTYPE_ETHERNET, 65535), ...servers.map(pcapRecord)]));

  const tcpdump = (file: string) => promisify(execFile)('tcpdump', ['-nn', '-r', file], { env: { ...process.env, TZ: 'UTC' } });
  let output: { stdout: string };
  try {
    output = await tcpdump(written);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return t.skip('tcpdump not installed: install it (Debian: apt-get install tcpdump) to check that it reads what we write');
    throw error;
  }
  const lines = output.stdout.trimEnd().split('\n');
  assert.equal(lines.length, servers.length);
  const allLines = (await tcpdump(fixturePath('echo-half-close.pcap'))).stdout.trimEnd().split('\n');
  assert.deepEqual(lines, allLines.filter((line) => line.includes('127.0.0.1.44007 >')));
});

// ---------------------------------------------------------------------------------------------
// Decoding: link types, IP, TCP.

test('every link type lab-server reads gives the same segment for the same packet', () => {
  for (const [ethernetFrame, version] of [[FRAMES.line, 4], [FRAMES.line6, 6]] as const) {
    const ip = ethernetFrame.subarray(ETHERNET_HEADER_LENGTH);
    const etherType = u16be(version === 4 ? 0x0800 : 0x86dd);
    const families = version === 4 ? [2] : [24, 28, 30];
    const frames: Array<[linkType: number, frame: Buffer]> = [
      // Ethernet with an 802.1Q tag, and with 802.1ad's two.
      [1, Buffer.concat([Buffer.alloc(12), Buffer.from('8100002a', 'hex'), etherType, ip])],
      [1, Buffer.concat([Buffer.alloc(12), Buffer.from('88a8000a8100002a', 'hex'), etherType, ip])],
      // BSD loopback, written on a little-endian and on a big-endian machine; OpenBSD's in network order.
      ...families.flatMap((family): Array<[number, Buffer]> => [
        [0, Buffer.concat([u32le(family), ip])],
        [0, Buffer.concat([u32be(family), ip])],
        [108, Buffer.concat([u32be(family), ip])],
      ]),
      [101, ip],
      [12, ip],
      [14, ip],
      // Linux cooked: packet type, ARPHRD_LOOPBACK (772), address length and 8 address bytes, then the protocol.
      [113, Buffer.concat([Buffer.from('0000030400060000000000000000', 'hex'), etherType, ip])],
      // Version 2: the protocol, 2 reserved bytes, interface index, ARPHRD_LOOPBACK, packet type, address length, address.
      [276, Buffer.concat([etherType, Buffer.from('000000000001030400060000000000000000', 'hex'), ip])],
    ];
    const expected = decodeSegment(LINKTYPE_ETHERNET, { timeUs: 1, data: ethernetFrame });
    assert.equal(expected?.payload.length, 25);
    for (const [linkType, data] of frames) {
      assert.deepEqual(decodeSegment(linkType, { timeUs: 1, data }), expected, `IPv${version}, link type ${linkType}: ${data.subarray(0, 24).toString('hex')}`);
    }
  }
});

test('an unsupported link type: one line naming the file and the number', () => {
  assert.doesNotThrow(() => checkLinkType(LINKTYPE_ETHERNET, 'tw.pcap'));
  const message = badPcapMessage(() => checkLinkType(127, 'wifi.pcap'));
  assert.match(message, /^wifi\.pcap has link type 127, which lab-server cannot decode \(it reads 0 NULL, 1 EN10MB, .*, 276 LINUX_SLL2; .*\): capture on lo with `tcpdump -i lo -w FILE`$/);
  assert.match(badPcapMessage(() => decodeSegment(127, daytimeRecords[0]!)), /link type 127/);
});

/** A copy of `frame` (Ethernet + IPv4) with `change` applied to the IPv4 header at byte 14. */
function withIPv4(frame: Buffer, change: (ip: Buffer) => void): Buffer {
  const copy = Buffer.from(frame);
  change(copy.subarray(ETHERNET_HEADER_LENGTH));
  return copy;
}

test('not a TCP segment, or not whole enough: undefined', () => {
  const decode = (data: Buffer): Segment | undefined => decodeSegment(LINKTYPE_ETHERNET, { timeUs: 0, data });
  const arp = Buffer.concat([Buffer.alloc(12, 0xff), Buffer.from('0806', 'hex'), Buffer.alloc(28)]);
  assert.equal(decode(arp), undefined, 'ARP');
  assert.equal(decode(withIPv4(FRAMES.line, (ip) => (ip[9] = 17))), undefined, 'UDP');
  assert.equal(decode(withIPv4(FRAMES.line, (ip) => (ip[9] = 1))), undefined, 'ICMP');
  assert.equal(decode(withIPv4(FRAMES.line, (ip) => ip.writeUInt16BE(0x2000 | 185, 6))), undefined, 'a later fragment (offset 185 × 8 bytes)');
  assert.ok(decode(withIPv4(FRAMES.line, (ip) => ip.writeUInt16BE(0x2000, 6))), 'the first fragment has the TCP header');
  // The snapshot length cut the packet: before the end of the TCP header (20 + options), or in the payload.
  assert.equal(decode(FRAMES.line.subarray(0, ETHERNET_HEADER_LENGTH + 20 + 30)), undefined, 'cut inside the TCP options');
  assert.equal(decode(FRAMES.line.subarray(0, ETHERNET_HEADER_LENGTH + 10)), undefined, 'cut inside the IP header');
  const cut = decode(FRAMES.line.subarray(0, FRAMES.line.length - 20));
  assert.equal(cut?.payloadLength, 25, 'the length comes from the IP header');
  assert.equal(cut?.payload.toString('latin1'), 'Wed D');
  // Ethernet pads short frames; the padding is not payload.
  const padded = decode(Buffer.concat([FRAMES.ack, Buffer.alloc(10)]));
  assert.equal(padded?.payloadLength, 0);
  assert.equal(padded?.payload.length, 0);
  assert.equal(decode(withIPv4(FRAMES.line, (ip) => (ip[0] = 0x44))), undefined, 'an IHL below 5 words');
});

test('all 8 flag bits, ECE and CWR included', () => {
  const frame = Buffer.from(FRAMES.syn);
  frame[ETHERNET_HEADER_LENGTH + 20 + 13] = TCP_FLAGS.SYN | TCP_FLAGS.ECE | TCP_FLAGS.CWR;
  const segment = decodeSegment(LINKTYPE_ETHERNET, { timeUs: 0, data: frame });
  assert.equal(segment?.flags, 0xc2);
  assert.equal(flagNames(segment!.flags), 'SYN,ECE,CWR');
});

/** The IPv6 PSH,ACK with `extensions` (each a header type and its bytes, whose first byte is filled in) between the IPv6 header and TCP. */
function withIPv6Extensions(extensions: Array<[type: number, bytes: Buffer]>): Buffer {
  const ipStart = ETHERNET_HEADER_LENGTH;
  const fixedEnd = ipStart + 40;
  const frame = FRAMES.line6;
  const chain = extensions.map(([, bytes], i) => {
    const copy = Buffer.from(bytes);
    copy[0] = extensions[i + 1]?.[0] ?? 6; // each names the next; the last names TCP
    return copy;
  });
  const out = Buffer.concat([frame.subarray(0, fixedEnd), ...chain, frame.subarray(fixedEnd)]);
  out[ipStart + 6] = extensions[0]?.[0] ?? 6;
  out.writeUInt16BE(frame.readUInt16BE(ipStart + 4) + chain.reduce((sum, b) => sum + b.length, 0), ipStart + 4);
  return out;
}

test('IPv6: the next-header chain through hop-by-hop, routing, fragment and destination options', () => {
  const expected = decodeSegment(LINKTYPE_ETHERNET, { timeUs: 0, data: FRAMES.line6 });
  const hopByHop: [number, Buffer] = [0, Buffer.from('0000010400000000', 'hex')]; // PadN
  const routing: [number, Buffer] = [43, Buffer.from('0002000000000000' + '00'.repeat(16), 'hex')]; // length 2: 24 bytes
  const firstFragment: [number, Buffer] = [44, Buffer.from('0000000100000001', 'hex')]; // offset 0, more fragments
  const destination: [number, Buffer] = [60, Buffer.from('0000010400000000', 'hex')];
  const decode = (data: Buffer): Segment | undefined => decodeSegment(LINKTYPE_ETHERNET, { timeUs: 0, data });
  assert.deepEqual(decode(withIPv6Extensions([hopByHop, routing, firstFragment, destination])), expected);
  assert.deepEqual(decode(withIPv6Extensions([destination])), expected);
  const laterFragment: [number, Buffer] = [44, Buffer.from('0000005800000001', 'hex')]; // offset 11 × 8 bytes
  assert.equal(decode(withIPv6Extensions([hopByHop, laterFragment])), undefined, 'a later fragment');
  const udp = Buffer.from(FRAMES.line6);
  udp[ETHERNET_HEADER_LENGTH + 6] = 17;
  assert.equal(decode(udp), undefined, 'UDP');
  assert.equal(decode(withIPv6Extensions([[59, Buffer.alloc(8)]])), undefined, 'no next header');
});

/** The IPv4 ACK with its TCP options replaced by `options` (padded with EOL to a multiple of 4 bytes). */
function withTcpOptions(options: Buffer): Buffer {
  const tcpStart = ETHERNET_HEADER_LENGTH + 20;
  const padded = Buffer.concat([options, Buffer.alloc((4 - (options.length % 4)) % 4)]);
  const tcpHeader = Buffer.from(FRAMES.ack.subarray(tcpStart, tcpStart + 20));
  tcpHeader[12] = ((20 + padded.length) / 4) << 4;
  const frame = Buffer.concat([FRAMES.ack.subarray(0, tcpStart), tcpHeader, padded]);
  frame.writeUInt16BE(20 + 20 + padded.length, ETHERNET_HEADER_LENGTH + 2);
  return frame;
}

test('TCP options: SACK blocks, and malformed options ignored from where they break', () => {
  const optionsOf = (hex: string) => decodeSegment(LINKTYPE_ETHERNET, { timeUs: 0, data: withTcpOptions(Buffer.from(hex, 'hex')) })?.options;
  // NOP, NOP, SACK with two blocks; left edges above 2^31.
  assert.deepEqual(optionsOf('010105' + '12' + 'ffffff00' + 'ffffff10' + '00000010' + '00000020'), {
    sack: [
      [0xffffff00, 0xffffff10],
      [0x10, 0x20],
    ],
  });
  assert.deepEqual(optionsOf('020405b4' + '030307' + '0402'), { mss: 1460, windowScale: 7, sackPermitted: true });
  assert.deepEqual(optionsOf('020405b4' + '00' + '030307'), { mss: 1460 }, 'nothing after EOL');
  assert.deepEqual(optionsOf('020405b4' + '0300'), { mss: 1460 }, 'a length below 2 ends the options');
  assert.deepEqual(optionsOf('020405b4' + '08ff00000000'), { mss: 1460 }, 'a length past the header ends them');
  assert.deepEqual(optionsOf('0203ff' + '030307'), { windowScale: 7 }, 'an MSS with the wrong length is skipped');
  assert.deepEqual(optionsOf('fe04abcd' + '0402'), { sackPermitted: true }, 'an unknown option is skipped');
});

test(`IPv6 addresses are written as net writes them (RFC 5952) (FUZZ_SEED=${seed})`, () => {
  const fromGroups = (groups: number[]): Buffer => {
    const bytes = Buffer.alloc(16);
    groups.forEach((group, i) => bytes.writeUInt16BE(group, i * 2));
    return bytes;
  };
  assert.equal(formatIPv6(fromGroups([0, 0, 0, 0, 0, 0, 0, 1])), '::1');
  assert.equal(formatIPv6(fromGroups([0xfe80, 0, 0, 0, 0, 0, 0, 1])), 'fe80::1');
  assert.equal(formatIPv6(fromGroups([0, 0, 0, 0, 0, 0xffff, 0x7f00, 1])), '::ffff:127.0.0.1');
  assert.equal(formatIPv6(fromGroups([1, 0, 0, 2, 0, 0, 1, 1])), '1::2:0:0:1:1', 'on a tie, the first run');
  assert.equal(formatIPv6(fromGroups([1, 0, 1, 0, 1, 0, 1, 0])), '1:0:1:0:1:0:1:0', 'a lone zero group stays');
  // And against net itself, on random addresses where zero groups are common, so that runs,
  // ties and the IPv4 forms all turn up.
  const random = new Random(seed);
  for (let i = 0; i < 2000; i++) {
    const groups = Array.from({ length: 8 }, () => (random.chance(0.6) ? 0 : random.chance(0.1) ? 0xffff : random.int(0, 0xffff)));
    const expected = new SocketAddress({ address: groups.map((group) => group.toString(16)).join(':'), family: 'ipv6' }).address;
    assert.equal(formatIPv6(fromGroups(groups)), expected, groups.map((group) => group.toString(16)).join(':'));
  }
});
