/**
 * From a captured packet to a TCP segment: peel the link-layer header, then the IP header
 * (RFC 791 for IPv4, RFC 8200 for IPv6), and read the TCP header (RFC 9293 §3.1).
 *
 * A packet is layers, each header saying what the next one is:
 *
 *     link layer       Ethernet says "IPv4" with EtherType 0x0800, BSD loopback with address family 2
 *     IP header        protocol 6 (IPv4) or next header 6 (IPv6, after any extension headers) says "TCP"
 *     TCP header       ports, sequence and acknowledgement numbers, flags, window, options
 *     payload          the data the application wrote
 *
 * The link layer is named once per file, by the pcap header's link type. Capture on Linux's `lo`
 * gives Ethernet headers with zero addresses (link type 1); `tcpdump -i any` gives Linux "cooked"
 * headers (113, or 276 with `--linktype=LINUX_SLL2`); BSD and macOS loopback give link types 0 or
 * 108. A file of any other link type is refused as a whole, at its header: call
 * checkLinkType(header.linkType, file) when the header arrives, so the error names the file.
 *
 * Checksums are not checked: on `lo`, and on any interface with checksum offload, the capture sees
 * the packet before the checksum is filled in, so tcpdump calls many good packets "incorrect".
 */
import { formatIPv4, formatIPv6 } from '../framework/endpoint.js';
import { LabError } from '../errors.js';
import type { PcapRecord } from './pcap.js';
import type { Segment, TcpOptions } from './segment.js';

/** Where the IP header starts in a frame, and which IP it is; undefined when the frame carries something else (ARP, ...). */
type IpStart = { version: 4 | 6; offset: number } | undefined;

/** EtherTypes (IEEE 802.3; the same numbers are the protocol field of Linux cooked headers). */
const ETHERTYPE = { ipv4: 0x0800, ipv6: 0x86dd } as const;
/** An 802.1Q VLAN tag, or 802.1ad's outer tag: 4 bytes, this EtherType and the tag, before the real EtherType. */
const VLAN_TAGS = new Set([0x8100, 0x88a8]);

function byEtherType(etherType: number, offset: number): IpStart {
  if (etherType === ETHERTYPE.ipv4) return { version: 4, offset };
  if (etherType === ETHERTYPE.ipv6) return { version: 6, offset };
  return undefined;
}

/** BSD loopback's address families: AF_INET is 2 everywhere, AF_INET6 differs by system. */
const AF_INET = 2;
const AF_INET6 = new Set([24 /* NetBSD, OpenBSD */, 28 /* FreeBSD */, 30 /* macOS */]);

function byAddressFamily(family: number): IpStart {
  if (family === AF_INET) return { version: 4, offset: 4 };
  if (AF_INET6.has(family)) return { version: 6, offset: 4 };
  return undefined;
}

/** Ethernet: destination and source MAC (6 + 6), then the EtherType; VLAN tags are skipped. */
function ethernet(frame: Buffer): IpStart {
  let at = 12;
  while (at + 2 <= frame.length && VLAN_TAGS.has(frame.readUInt16BE(at))) at += 4;
  return at + 2 <= frame.length ? byEtherType(frame.readUInt16BE(at), at + 2) : undefined;
}

/**
 * BSD loopback: the address family, 4 bytes in the capturing machine's byte order, which the file
 * does not record. The family is a small number, so the order that gives one is right.
 */
function bsdLoopback(frame: Buffer): IpStart {
  if (frame.length < 4) return undefined;
  const family = frame.readUInt32LE(0);
  return byAddressFamily(family > 0xffff ? frame.readUInt32BE(0) : family);
}

/** OpenBSD's loopback: the same, always in network byte order. */
const openBsdLoopback = (frame: Buffer): IpStart => (frame.length < 4 ? undefined : byAddressFamily(frame.readUInt32BE(0)));

/** A frame that starts with the IP header: its first 4 bits are the IP version. */
function rawIp(frame: Buffer): IpStart {
  const version = frame.length > 0 ? frame[0]! >> 4 : 0;
  return version === 4 || version === 6 ? { version, offset: 0 } : undefined;
}

/** Linux "cooked" capture (`tcpdump -i any`): a 16-byte header with the protocol, an EtherType, in its last 2 bytes. */
const linuxCooked = (frame: Buffer): IpStart => (frame.length < 16 ? undefined : byEtherType(frame.readUInt16BE(14), 16));

/** Its version 2 (`tcpdump -i any --linktype=LINUX_SLL2`): 20 bytes, the protocol first. */
const linuxCooked2 = (frame: Buffer): IpStart => (frame.length < 20 ? undefined : byEtherType(frame.readUInt16BE(0), 20));

/** The link types we decode, by number (https://www.tcpdump.org/linktypes.html): their name, and where the IP header starts. */
const LINK_TYPES = new Map<number, { name: string; ipStart(frame: Buffer): IpStart }>([
  [0, { name: 'NULL', ipStart: bsdLoopback }],
  [1, { name: 'EN10MB', ipStart: ethernet }],
  // Raw IP has three numbers: DLT_RAW is 12 on most systems and 14 on OpenBSD; files should say 101.
  [12, { name: 'RAW', ipStart: rawIp }],
  [14, { name: 'RAW', ipStart: rawIp }],
  [101, { name: 'RAW', ipStart: rawIp }],
  [108, { name: 'LOOP', ipStart: openBsdLoopback }],
  [113, { name: 'LINUX_SLL', ipStart: linuxCooked }],
  [276, { name: 'LINUX_SLL2', ipStart: linuxCooked2 }],
]);

/** Throws ERR_BAD_PCAP, naming `source` and the link type, unless decodeSegment can read records of `linkType`. */
export function checkLinkType(linkType: number, source = 'the capture'): void {
  if (LINK_TYPES.has(linkType)) return;
  const supported = [...LINK_TYPES].map(([number, { name }]) => `${number} ${name}`).join(', ');
  throw new LabError(
    'ERR_BAD_PCAP',
    `${source} has link type ${linkType}, which lab-server cannot decode (it reads ${supported}; see https://www.tcpdump.org/linktypes.html): capture on lo with \`tcpdump -i lo -w FILE\``,
  );
}

/**
 * The TCP segment in a captured packet, or undefined when the packet is not one we can read
 * whole enough: not TCP (ARP, UDP, ICMP), a later IPv4 or IPv6 fragment (it has no TCP header), or
 * cut by the snapshot length before the TCP header ends. Throws ERR_BAD_PCAP for a link type
 * that checkLinkType refuses.
 */
export function decodeSegment(linkType: number, record: Pick<PcapRecord, 'timeUs' | 'data'>): Segment | undefined {
  checkLinkType(linkType);
  const frame = record.data;
  const ip = LINK_TYPES.get(linkType)!.ipStart(frame);
  if (ip === undefined) return undefined;
  const packet = ip.version === 4 ? ipv4(frame, ip.offset) : ipv6(frame, ip.offset);
  return packet === undefined ? undefined : tcp(frame, packet, record.timeUs);
}

/** What the IP layer tells the TCP layer: who sent it to whom, where TCP starts and how many bytes it has. */
interface IpPacket {
  version: 4 | 6;
  source: string;
  destination: string;
  /** Offset of the TCP header in the frame. */
  tcpOffset: number;
  /** TCP header and payload, in bytes, as the IP header says (the capture may hold fewer). */
  tcpLength: number;
}

const PROTOCOL_TCP = 6;

/** RFC 791 §3.1. */
function ipv4(frame: Buffer, offset: number): IpPacket | undefined {
  if (frame.length < offset + 20 || frame[offset]! >> 4 !== 4) return undefined;
  const headerLength = (frame[offset]! & 0x0f) * 4; // IHL counts 32-bit words
  const totalLength = frame.readUInt16BE(offset + 2);
  // Only the first fragment (offset 0) starts with the TCP header; the others carry the middle of the segment.
  const fragmentOffset = frame.readUInt16BE(offset + 6) & 0x1fff;
  if (headerLength < 20 || totalLength < headerLength || fragmentOffset !== 0 || frame[offset + 9] !== PROTOCOL_TCP) return undefined;
  return {
    version: 4,
    source: formatIPv4(frame.subarray(offset + 12, offset + 16)),
    destination: formatIPv4(frame.subarray(offset + 16, offset + 20)),
    tcpOffset: offset + headerLength,
    tcpLength: totalLength - headerLength,
  };
}

/** IPv6 extension headers that may stand between the IPv6 header and TCP (RFC 8200 §4). */
const EXTENSION = { hopByHop: 0, routing: 43, fragment: 44, destinationOptions: 60 } as const;

/** RFC 8200 §3 and §4: a fixed 40-byte header, then a chain of extension headers, each naming the next. */
function ipv6(frame: Buffer, offset: number): IpPacket | undefined {
  if (frame.length < offset + 40 || frame[offset]! >> 4 !== 6) return undefined;
  const payloadLength = frame.readUInt16BE(offset + 4); // everything after the fixed header, extension headers included
  const end = offset + 40 + payloadLength;
  let nextHeader = frame[offset + 6]!;
  let at = offset + 40;
  while (nextHeader !== PROTOCOL_TCP) {
    if (at + 8 > frame.length) return undefined;
    if (nextHeader === EXTENSION.fragment) {
      if (frame.readUInt16BE(at + 2) >> 3 !== 0) return undefined; // a later fragment: no TCP header in it
      nextHeader = frame[at]!;
      at += 8;
    } else if (nextHeader === EXTENSION.hopByHop || nextHeader === EXTENSION.routing || nextHeader === EXTENSION.destinationOptions) {
      nextHeader = frame[at]!;
      at += (frame[at + 1]! + 1) * 8; // the length counts 8-byte units, not counting the first 8
    } else {
      return undefined; // UDP, ICMPv6, or an extension we do not walk (ESP hides what follows anyway)
    }
  }
  if (at > end) return undefined;
  return {
    version: 6,
    source: formatIPv6(frame.subarray(offset + 8, offset + 24)),
    destination: formatIPv6(frame.subarray(offset + 24, offset + 40)),
    tcpOffset: at,
    tcpLength: end - at,
  };
}

/** RFC 9293 §3.1: the TCP header, its options and what the capture kept of the payload. */
function tcp(frame: Buffer, ip: IpPacket, timeUs: number): Segment | undefined {
  const at = ip.tcpOffset;
  if (frame.length < at + 20) return undefined;
  const headerLength = (frame[at + 12]! >> 4) * 4; // the data offset counts 32-bit words
  if (headerLength < 20 || frame.length < at + headerLength || ip.tcpLength < headerLength) return undefined;
  const payloadLength = ip.tcpLength - headerLength;
  // Bytes past the IP length are not the segment's: Ethernet pads short frames to 60 bytes.
  const payloadStart = at + headerLength;
  return {
    timeUs,
    ipVersion: ip.version,
    source: { address: ip.source, port: frame.readUInt16BE(at) },
    destination: { address: ip.destination, port: frame.readUInt16BE(at + 2) },
    seq: frame.readUInt32BE(at + 4),
    ack: frame.readUInt32BE(at + 8),
    flags: frame[at + 13]!,
    window: frame.readUInt16BE(at + 14),
    options: tcpOptions(frame.subarray(at + 20, at + headerLength)),
    payloadLength,
    payload: frame.subarray(payloadStart, Math.min(frame.length, payloadStart + payloadLength)),
  };
}

/** Option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018). */
const OPTION = { end: 0, noOperation: 1, mss: 2, windowScale: 3, sackPermitted: 4, sack: 5, timestamps: 8 } as const;

/**
 * The options we know, read from the TCP header's option bytes. Each is kind, length (counting
 * both), value; EOL and NOP are a lone kind byte. A malformed option ends the reading: what came
 * before it is kept, since a bad option is the sender's bug, not a reason to lose the segment.
 */
function tcpOptions(bytes: Buffer): TcpOptions {
  const options: TcpOptions = {};
  let at = 0;
  while (at < bytes.length) {
    const kind = bytes[at]!;
    if (kind === OPTION.end) break;
    if (kind === OPTION.noOperation) {
      at++;
      continue;
    }
    const length = bytes[at + 1];
    if (length === undefined || length < 2 || at + length > bytes.length) break;
    const value = bytes.subarray(at + 2, at + length);
    if (kind === OPTION.mss && value.length === 2) options.mss = value.readUInt16BE(0);
    else if (kind === OPTION.windowScale && value.length === 1) options.windowScale = value[0]!;
    else if (kind === OPTION.sackPermitted && value.length === 0) options.sackPermitted = true;
    else if (kind === OPTION.sack && value.length > 0 && value.length % 8 === 0) {
      options.sack = [];
      for (let block = 0; block < value.length; block += 8) options.sack.push([value.readUInt32BE(block), value.readUInt32BE(block + 4)]);
    } else if (kind === OPTION.timestamps && value.length === 8) options.timestamps = { value: value.readUInt32BE(0), echo: value.readUInt32BE(4) };
    at += length;
  }
  return options;
}
