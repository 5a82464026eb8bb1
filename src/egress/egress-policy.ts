import * as dns from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import * as ipaddr from 'ipaddr.js';
import { EgressConfig } from '../config/karya-config';
import { EgressDeniedError } from './egress-error';

/**
 * Which addresses REST actions and REST hooks may connect to (executor.yml / server.yml `application.egress`).
 *
 * Every address is classified by the first range of RANGES that holds it (after ipaddr.js `process()` has
 * unwrapped IPv4-mapped IPv6, so `::ffff:169.254.169.254` is 169.254.169.254):
 * - `always`: denied whatever the config says (the allow-list cannot open them): link-local (cloud metadata),
 *   0.0.0.0/8, `::`, broadcast, multicast, and (our call) the reserved and documentation ranges, which no
 *   real target uses, the deprecated IPv4-compatible and site-local IPv6 forms, and the transition prefixes
 *   that smuggle an IPv4 address we cannot check (6to4, Teredo, IPv4-translated, local-use NAT64). The two
 *   metadata addresses that live inside otherwise private ranges (Alibaba's 100.100.100.200, AWS's
 *   fd00:ec2::254) are always denied too.
 * - `private`: loopback, RFC 1918, shared (CGNAT), benchmarking and unique-local: allowed only with
 *   `allowPrivateNetworks`, or when an `allow` entry names the address (CIDR) or the target (host:port).
 * - anything else is public and allowed.
 * The well-known NAT64 prefix 64:ff9b::/96 (DNS64 networks reach every IPv4 host through it) is judged by
 * the IPv4 address it embeds.
 *
 * Enforced on the address actually connected to: `egressLookup` wraps DNS resolution (so a name that
 * re-resolves to a private address, DNS rebinding, is caught on every connection), and `checkUrl` covers
 * literal IP hosts, which never go through a lookup.
 */
export class EgressPolicy {
  private readonly allowPrivate: boolean;
  private readonly allowCidrs: [ipaddr.IPv4 | ipaddr.IPv6, number][] = [];
  /** `host:port` keys, host normalised by `targetKey`. */
  private readonly allowTargets = new Set<string>();

  /** `config.allow` was syntax-checked by the config loader; an entry that still does not parse is ignored. */
  constructor(config: EgressConfig) {
    this.allowPrivate = config.allowPrivateNetworks;
    for (const entry of config.allow) {
      if (entry.includes('/')) {
        if (ipaddr.isValidCIDR(entry)) this.allowCidrs.push(unwrapCidr(ipaddr.parseCIDR(entry)));
        continue;
      }
      const colon = entry.lastIndexOf(':');
      const port = Number(entry.slice(colon + 1));
      if (colon > 0 && Number.isInteger(port)) this.allowTargets.add(targetKey(entry.slice(0, colon), port));
    }
  }

  /**
   * Whether a connection to `ip` may be opened. `target` is the host name and port the connection is for
   * (needed only for `host:port` allow entries). Never throws: a string that is not an IP is denied.
   */
  decide(ip: string, target?: EgressTarget): EgressDecision {
    if (!ipaddr.isValid(ip)) return { allowed: false, ip, range: 'not an IP address' };
    const parsed = ipaddr.parse(ip);
    let addr = ipaddr.process(ip);
    let via = parsed.kind() === 'ipv6' && addr.kind() === 'ipv4' ? ', IPv4-mapped' : '';
    if (addr.kind() === 'ipv6' && addr.match(NAT64)) {
      addr = ipaddr.fromByteArray(addr.toByteArray().slice(12));
      via = ', via NAT64 64:ff9b::/96';
    }
    const range = RANGES.find((r) => r.cidr[0].kind() === addr.kind() && addr.match(r.cidr));
    if (!range) return { allowed: true };
    const denied: EgressDecision = { allowed: false, ip, range: `${range.label}${via}` };
    if (range.always) return denied;
    if (this.allowPrivate || this.allowCidrs.some((c) => c[0].kind() === addr.kind() && addr.match(c))) return { allowed: true };
    if (target && this.allowTargets.has(targetKey(target.host, target.port))) return { allowed: true };
    return denied;
  }

  /**
   * The refusal for a URL whose host is a literal IP address (`http://[::1]:8080/x`), else undefined: such
   * a host never goes through a DNS lookup, so `egressLookup` never sees it. Names, and a URL that does not
   * parse (the request fails on it anyway), are left to the lookup.
   */
  checkUrl(url: string): EgressDeniedError | undefined {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    const port = Number(parsed.port) || (parsed.protocol === 'https:' ? 443 : 80);
    return this.checkHost(parsed.hostname, port);
  }

  /** As checkUrl, for a host as a URL or a connector gives it (an IPv6 literal with or without brackets). */
  checkHost(hostname: string, port: number): EgressDeniedError | undefined {
    const host = stripBrackets(hostname);
    if (isIP(host) === 0) return undefined;
    const decision = this.decide(host, { host, port });
    return decision.allowed ? undefined : new EgressDeniedError(host, decision.ip, decision.range);
  }
}

export interface EgressTarget {
  host: string;
  port: number;
}

export type EgressDecision = { allowed: true } | { allowed: false; ip: string; range: string };

/** The shape of `dns.lookup` with `all: true`: what the wrapper calls to resolve a name. */
export type ResolveAll = (
  hostname: string,
  options: dns.LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void,
) => void;

/**
 * A `lookup` for `net.connect` / undici's connector that resolves with `resolve` (dns.lookup; a stub in
 * tests) and hands back only the addresses `policy` allows for connections to `port`. When none is left
 * the lookup fails with the EgressDeniedError of the first address, so the socket is never opened.
 * Nothing is cached: every connection resolves afresh and is judged on what it will actually connect to.
 *
 * Honours `options.all`: net asks for every address (happy eyeballs) with `all: true` and expects an array,
 * otherwise one address and its family.
 */
export function egressLookup(policy: EgressPolicy, port: number, resolve: ResolveAll = dns.lookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, options.all ? [] : '', undefined);
      const allowed: dns.LookupAddress[] = [];
      let denial: EgressDeniedError | undefined;
      for (const a of addresses) {
        const decision = policy.decide(a.address, { host: hostname, port });
        if (decision.allowed) allowed.push(a);
        else denial ??= new EgressDeniedError(hostname, decision.ip, decision.range);
      }
      const first = allowed[0];
      if (first === undefined) {
        const error: NodeJS.ErrnoException =
          denial ?? Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
        return callback(error, options.all ? [] : '', undefined);
      }
      if (options.all) callback(null, allowed);
      else callback(null, first.address, first.family);
    });
  };
}

// ---------------------------------------------------------------- ranges

interface Range {
  label: string;
  cidr: [ipaddr.IPv4 | ipaddr.IPv6, number];
  always: boolean;
}

function range(cidr: string, name: string, always: boolean): Range {
  return { label: `${name} ${cidr}`, cidr: ipaddr.parseCIDR(cidr), always };
}

const NAT64 = ipaddr.parseCIDR('64:ff9b::/96');

/** First match wins: specific addresses come before the ranges that hold them. */
const RANGES: readonly Range[] = [
  // IPv4
  range('255.255.255.255/32', 'broadcast', true),
  range('0.0.0.0/8', 'this network', true),
  range('169.254.0.0/16', 'link-local (cloud metadata)', true),
  range('224.0.0.0/4', 'multicast', true),
  range('240.0.0.0/4', 'reserved', true),
  range('192.0.0.0/24', 'IETF protocol assignments', true),
  range('192.0.2.0/24', 'documentation', true),
  range('198.51.100.0/24', 'documentation', true),
  range('203.0.113.0/24', 'documentation', true),
  range('192.88.99.0/24', '6to4 relay anycast (deprecated)', true),
  range('100.100.100.200/32', 'cloud metadata', true),
  range('127.0.0.0/8', 'loopback', false),
  range('10.0.0.0/8', 'private', false),
  range('172.16.0.0/12', 'private', false),
  range('192.168.0.0/16', 'private', false),
  range('100.64.0.0/10', 'shared address space', false),
  range('198.18.0.0/15', 'benchmarking', false),
  // IPv6 (IPv4-mapped ::ffff:0:0/96 never gets here: process() turned it into IPv4)
  range('::/128', 'unspecified', true),
  range('::1/128', 'loopback', false),
  range('::/96', 'IPv4-compatible (deprecated)', true),
  range('::ffff:0:0:0/96', 'IPv4-translated', true),
  range('64:ff9b:1::/48', 'local-use NAT64', true),
  range('100::/64', 'discard-only', true),
  range('2001::/32', 'Teredo', true),
  range('2001:db8::/32', 'documentation', true),
  range('2002::/16', '6to4', true),
  range('fd00:ec2::254/128', 'cloud metadata', true),
  range('fc00::/7', 'unique-local', false),
  range('fe80::/10', 'link-local', true),
  range('fec0::/10', 'site-local (deprecated)', true),
  range('ff00::/8', 'multicast', true),
];

// ---------------------------------------------------------------- helpers

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** An allow CIDR written in IPv4-mapped form (`::ffff:10.0.0.0/104`) matches the IPv4 addresses process() yields. */
function unwrapCidr(cidr: [ipaddr.IPv4 | ipaddr.IPv6, number]): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  const [addr, bits] = cidr;
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
  }
  return cidr;
}

/** Host names compare case-insensitively and without a trailing dot; IP literals by their canonical form. */
function targetKey(host: string, port: number): string {
  let h = stripBrackets(host).toLowerCase().replace(/\.$/, '');
  if (isIP(h) !== 0) h = ipaddr.process(h).toString();
  return `${h}:${port}`;
}
