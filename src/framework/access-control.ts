/**
 * Who may connect, by address, like xinetd's `only_from` and `no_access`.
 * Built on Node's net.BlockList, which matches IPv4 and IPv6 subnets.
 *
 * The rule: a denied address is refused; when any allow rule exists, an address that
 * matches none of them is refused too; everything else is served.
 */
import net from 'node:net';
import { unmapIPv4 } from './endpoint.js';
import { usageError } from '../errors.js';

export interface Subnet {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses `192.168.0.0/16`, `::1/128`, or a single address (a /32 or /128). */
export function parseCidr(text: string): Subnet {
  const [address = '', prefixText, ...rest] = text.split('/');
  const version = net.isIP(address);
  const maxPrefix = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? maxPrefix : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (version === 0 || rest.length > 0 || !(prefix >= 0 && prefix <= maxPrefix)) {
    throw usageError('ERR_INVALID_CIDR', `invalid address or subnet ${JSON.stringify(text)}: give an IP address or CIDR such as 127.0.0.0/8 or ::1/128`);
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

export class AccessControl {
  private readonly allowed = new net.BlockList();
  private readonly denied = new net.BlockList();
  private readonly hasAllowRules: boolean;

  constructor(allow: readonly string[] = [], deny: readonly string[] = []) {
    for (const { address, prefix, family } of allow.map(parseCidr)) this.allowed.addSubnet(address, prefix, family);
    for (const { address, prefix, family } of deny.map(parseCidr)) this.denied.addSubnet(address, prefix, family);
    this.hasAllowRules = allow.length > 0;
  }

  /** `address` as a socket reports it; IPv4-mapped IPv6 is matched as IPv4. */
  permits(address: string): boolean {
    const plain = unmapIPv4(address);
    const family = net.isIPv4(plain) ? 'ipv4' : 'ipv6';
    if (this.denied.check(plain, family)) return false;
    return !this.hasAllowRules || this.allowed.check(plain, family);
  }
}
