/**
 * Where the broker may send webhooks. The broker stands at the edge of the
 * plant's networks; a webhook URL is chosen by a user, so without a check a
 * user could make the broker POST to addresses it alone can reach — the
 * plant's own hosts, the cloud metadata service, the broker itself (SSRF).
 * Private, loopback, link-local and other special-purpose addresses are
 * therefore refused unless the operator lists them
 * (AIRLOCK_WEBHOOK_ALLOWED_CIDRS, e.g. the plant's SIEM subnet).
 *
 * The check runs on the address actually connected to: a name is resolved
 * once, every address it resolves to is checked, and the connection goes to
 * a checked one (a second lookup could answer differently: DNS rebinding).
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { parseCidr } from '@airlock/config';
import { AppError } from '@airlock/domain';

/** Special-purpose ranges (IANA registries for IPv4 and IPv6) that a webhook may not reach. */
const SPECIAL_IPV4: readonly [string, number][] = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];
const SPECIAL_IPV6: readonly [string, number][] = [
  ['::', 96], // unspecified, loopback, IPv4-compatible (deprecated)
  ['64:ff9b::', 96], // NAT64 (reaches IPv4 addresses)
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard
  ['2001::', 23], // IETF protocol assignments (Teredo among them)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4 (reaches IPv4 addresses)
  ['fec0::', 10], // site-local (deprecated)
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
];

const special = new BlockList();
for (const [net, prefix] of SPECIAL_IPV4) special.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of SPECIAL_IPV6) special.addSubnet(net, prefix, 'ipv6');

/** A list of ranges (comma-separated text, or the config's list) as a BlockList; throws on a bad one. */
export function parseCidrList(cidrs: string | readonly string[]): BlockList {
  const list = new BlockList();
  for (const part of (typeof cidrs === 'string' ? cidrs.split(',') : cidrs).map((p) => p.trim())) {
    if (part === '') continue;
    const cidr = parseCidr(part);
    if ('problem' in cidr) throw new Error(cidr.problem);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return list;
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is its IPv4 address. */
function unmapped(address: string): { address: string; type: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined) return { address: mapped[1], type: 'ipv4' };
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hex?.[1] !== undefined && hex[2] !== undefined) {
    const high = parseInt(hex[1], 16);
    const low = parseInt(hex[2], 16);
    return {
      address: [high >> 8, high & 255, low >> 8, low & 255].join('.'),
      type: 'ipv4',
    };
  }
  return { address, type: isIP(address) === 4 ? 'ipv4' : 'ipv6' };
}

/** Whether a webhook may be sent to `address` (an IP literal). */
export function mayReach(address: string, allowed: BlockList): boolean {
  const { address: ip, type } = unmapped(address);
  if (allowed.check(ip, type)) return true;
  return !special.check(ip, type);
}

/** The refusal, with a stable code; the address is named, the URL's path and query are not. */
export function addressNotAllowed(address: string): AppError {
  return new AppError('webhook.address_not_allowed', { address });
}

/**
 * A URL whose host is an address literal is connected to without a lookup:
 * its address is judged here. (A name is judged by guardedLookup, on every
 * delivery: it may resolve elsewhere later.)
 */
export function refuseLiteralHost(url: URL, allowed: BlockList): void {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0 && !mayReach(host, allowed)) throw addressNotAllowed(host);
}

/**
 * A `lookup` for http(s).request that resolves once and passes on only
 * addresses a webhook may reach; any refused address fails the connection
 * (a name that resolves to both a public and an internal address is refused).
 */
export function guardedLookup(allowed: BlockList): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err !== null) {
        callback(err, '', 0);
        return;
      }
      const refused = addresses.find((a) => !mayReach(a.address, allowed));
      if (refused !== undefined || addresses.length === 0) {
        callback(addressNotAllowed(refused?.address ?? hostname), '', 0);
        return;
      }
      if (options.all === true) {
        (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, addresses);
        return;
      }
      const first = addresses[0] as LookupAddress;
      callback(null, first.address, first.family);
    });
  };
}
