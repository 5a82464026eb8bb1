import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { EgressConfig } from '../config/karya-config';
import { EgressDeniedError, findEgressDenied } from './egress-error';
import { EgressDecision, egressLookup, EgressPolicy, ResolveAll } from './egress-policy';

// Everything here is decided in memory or through a stubbed resolver: no test opens a socket.

const policy = (config: Partial<EgressConfig> = {}) => new EgressPolicy({ allowPrivateNetworks: false, allow: [], ...config });
const strict = policy();
const open = policy({ allowPrivateNetworks: true });

function deniedRange(decision: EgressDecision): string | undefined {
  return decision.allowed ? undefined : decision.range;
}

describe('EgressPolicy.decide', () => {
  it.each([
    ['169.254.169.254', /^link-local \(cloud metadata\) 169\.254\.0\.0\/16$/],
    ['169.254.0.1', /link-local/],
    ['fe80::1', /^link-local fe80::\/10$/],
    ['0.0.0.0', /this network 0\.0\.0\.0\/8/],
    ['0.1.2.3', /this network/],
    ['::', /^unspecified ::\/128$/],
    ['255.255.255.255', /^broadcast/],
    ['224.0.0.1', /^multicast 224\.0\.0\.0\/4$/],
    ['239.255.255.250', /multicast/],
    ['ff02::1', /^multicast ff00::\/8$/],
    ['240.0.0.1', /^reserved/],
    ['192.0.2.10', /^documentation/],
    ['2001:db8::1', /^documentation/],
    ['100.100.100.200', /^cloud metadata/],
    ['fd00:ec2::254', /^cloud metadata/],
    ['2002:a9fe:a9fe::1', /^6to4/],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', /^Teredo/],
    ['::7f00:1', /IPv4-compatible/],
    ['fec0::1', /site-local/],
    ['not-an-ip', /not an IP address/],
  ])('always denies %s, even with allowPrivateNetworks and an allow-list covering it', (ip, label) => {
    const permissive = policy({ allowPrivateNetworks: true, allow: ['0.0.0.0/0', '::/0', `[${ip}]:80`, `${ip}:80`] });
    expect(deniedRange(permissive.decide(ip, { host: ip, port: 80 }))).toMatch(label);
    expect(deniedRange(strict.decide(ip))).toMatch(label);
  });

  it.each([
    ['127.0.0.1', /^loopback 127\.0\.0\.0\/8$/],
    ['127.8.9.10', /loopback/],
    ['::1', /^loopback ::1\/128$/],
    ['10.0.0.1', /^private 10\.0\.0\.0\/8$/],
    ['172.16.0.1', /^private 172\.16\.0\.0\/12$/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /^private 192\.168\.0\.0\/16$/],
    ['100.64.0.1', /^shared address space 100\.64\.0\.0\/10$/],
    ['fc00::1', /^unique-local fc00::\/7$/],
    ['fd12:3456::1', /unique-local/],
  ])('denies private %s by default and allows it with allowPrivateNetworks', (ip, label) => {
    expect(deniedRange(strict.decide(ip))).toMatch(label);
    expect(open.decide(ip)).toEqual({ allowed: true });
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'])(
    'allows public %s',
    (ip) => {
      expect(strict.decide(ip)).toEqual({ allowed: true });
    },
  );

  it('sees through IPv4-mapped IPv6 (ipaddr.js process)', () => {
    expect(deniedRange(open.decide('::ffff:169.254.169.254'))).toBe('link-local (cloud metadata) 169.254.0.0/16, IPv4-mapped');
    expect(deniedRange(open.decide('::ffff:a9fe:a9fe'))).toMatch(/^link-local/);
    expect(deniedRange(strict.decide('::ffff:10.0.0.1'))).toBe('private 10.0.0.0/8, IPv4-mapped');
    expect(deniedRange(strict.decide('::ffff:127.0.0.1'))).toMatch(/^loopback/);
    expect(deniedRange(strict.decide('::ffff:0.0.0.0'))).toMatch(/this network/);
    expect(deniedRange(strict.decide('::ffff:224.0.0.1'))).toMatch(/multicast/);
    expect(open.decide('::ffff:10.0.0.1')).toEqual({ allowed: true });
  });

  it('judges the well-known NAT64 prefix by the IPv4 address it embeds', () => {
    expect(deniedRange(open.decide('64:ff9b::a9fe:a9fe'))).toBe('link-local (cloud metadata) 169.254.0.0/16, via NAT64 64:ff9b::/96');
    expect(deniedRange(strict.decide('64:ff9b::7f00:1'))).toMatch(/^loopback/);
  });

  it('lets an allow-list CIDR through private ranges only', () => {
    const p = policy({ allow: ['10.1.0.0/16', 'fd00:1::/32'] });
    expect(p.decide('10.1.2.3')).toEqual({ allowed: true });
    expect(p.decide('::ffff:10.1.2.3')).toEqual({ allowed: true });
    expect(p.decide('fd00:1::5')).toEqual({ allowed: true });
    expect(deniedRange(p.decide('10.2.0.1'))).toMatch(/private/);
    expect(deniedRange(p.decide('127.0.0.1'))).toMatch(/loopback/);
    expect(deniedRange(p.decide('fd00:2::5'))).toMatch(/unique-local/);
  });

  it('accepts an allow CIDR written in IPv4-mapped form', () => {
    expect(policy({ allow: ['::ffff:10.1.0.0/112'] }).decide('10.1.9.9')).toEqual({ allowed: true });
  });

  it('lets an allow-list host:port through for that host and port only', () => {
    const p = policy({ allow: ['billing.internal:8443', '[fd00::1]:443', '10.9.9.9:80'] });
    expect(p.decide('10.0.0.7', { host: 'billing.internal', port: 8443 })).toEqual({ allowed: true });
    expect(p.decide('10.0.0.7', { host: 'BILLING.internal.', port: 8443 })).toEqual({ allowed: true });
    expect(deniedRange(p.decide('10.0.0.7', { host: 'billing.internal', port: 80 }))).toMatch(/private/);
    expect(deniedRange(p.decide('10.0.0.7', { host: 'other.internal', port: 8443 }))).toMatch(/private/);
    expect(deniedRange(p.decide('10.0.0.7'))).toMatch(/private/);
    expect(p.decide('fd00::1', { host: '[fd00:0::1]', port: 443 })).toEqual({ allowed: true });
    expect(p.decide('10.9.9.9', { host: '10.9.9.9', port: 80 })).toEqual({ allowed: true });
    // A named service never opens an always-denied range, whatever it resolves to.
    expect(deniedRange(p.decide('169.254.169.254', { host: 'billing.internal', port: 8443 }))).toMatch(/link-local/);
  });
});

describe('EgressPolicy.checkUrl (literal IP hosts, which skip DNS)', () => {
  it.each([
    ['http://127.0.0.1:8080/x', '127.0.0.1', '127.0.0.1'],
    ['http://[::1]:8080/x', '::1', '::1'],
    ['http://[::ffff:127.0.0.1]/x', '::ffff:7f00:1', '::ffff:7f00:1'],
    ['https://0x7f.1/x', '127.0.0.1', '127.0.0.1'], // the URL parser canonicalises odd IPv4 spellings first
    ['http://169.254.169.254/latest/meta-data', '169.254.169.254', '169.254.169.254'],
  ])('refuses %s', (url, host, ip) => {
    const error = strict.checkUrl(url);
    expect(error).toBeInstanceOf(EgressDeniedError);
    expect(error?.message).toMatch(new RegExp(`^Egress denied --- ${escape(host)} resolved to ${escape(ip)} \\(.+\\)$`));
  });

  it('leaves names and unparsable URLs to the lookup, and allows public or permitted literals', () => {
    expect(strict.checkUrl('http://localhost:8080/x')).toBeUndefined();
    expect(strict.checkUrl('not a url')).toBeUndefined();
    expect(strict.checkUrl('http://8.8.8.8/')).toBeUndefined();
    expect(open.checkUrl('http://127.0.0.1:1/')).toBeUndefined();
    expect(open.checkUrl('http://169.254.169.254/')).toBeInstanceOf(EgressDeniedError);
  });

  it('uses the scheme default port for host:port allow entries', () => {
    const p = policy({ allow: ['10.0.0.5:443'] });
    expect(p.checkUrl('https://10.0.0.5/x')).toBeUndefined();
    expect(p.checkUrl('http://10.0.0.5/x')).toBeInstanceOf(EgressDeniedError);
  });
});

describe('egressLookup (stubbed resolver: never connects)', () => {
  /** A resolver answering each call with the next list of addresses, recording what it was asked. */
  function stub(...answers: string[][]): ResolveAll & { calls: { hostname: string; all: boolean }[] } {
    const calls: { hostname: string; all: boolean }[] = [];
    const resolve = (hostname: string, options: { all: true }, callback: (err: NodeJS.ErrnoException | null, a: LookupAddress[]) => void) => {
      calls.push({ hostname, all: options.all });
      const next = answers.shift() ?? [];
      process.nextTick(() => callback(null, next.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))));
    };
    return Object.assign(resolve, { calls });
  }

  type Answer = { err: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family?: number };
  function call(lookup: LookupFunction, hostname: string, all: boolean): Promise<Answer> {
    return new Promise((resolve) => lookup(hostname, { all }, (err, address, family) => resolve({ err, address, family })));
  }

  it('catches DNS rebinding: each connection resolves afresh, and a private second answer is denied', async () => {
    const resolver = stub(['93.184.216.34'], ['10.0.0.1']);
    const lookup = egressLookup(strict, 443, resolver);
    expect(await call(lookup, 'rebind.example', false)).toEqual({ err: null, address: '93.184.216.34', family: 4 });
    const second = await call(lookup, 'rebind.example', false);
    expect(second.err).toBeInstanceOf(EgressDeniedError);
    expect(second.err?.message).toBe('Egress denied --- rebind.example resolved to 10.0.0.1 (private 10.0.0.0/8)');
    expect(resolver.calls).toEqual([
      { hostname: 'rebind.example', all: true },
      { hostname: 'rebind.example', all: true },
    ]);
  });

  it('honours options.all: an array of the allowed addresses, denied ones dropped', async () => {
    const lookup = egressLookup(strict, 80, stub(['169.254.169.254', '93.184.216.34', '2606:2800:220:1::1']));
    expect(await call(lookup, 'mixed.example', true)).toEqual({
      err: null,
      address: [
        { address: '93.184.216.34', family: 4 },
        { address: '2606:2800:220:1::1', family: 6 },
      ],
      family: undefined,
    });
  });

  it('denies a name all of whose addresses are denied (localhost), naming the first', async () => {
    const lookup = egressLookup(strict, 80, stub(['::1', '127.0.0.1']));
    const answer = await call(lookup, 'localhost', true);
    expect(answer.err?.message).toBe('Egress denied --- localhost resolved to ::1 (loopback ::1/128)');
    expect(answer.address).toEqual([]);
  });

  it('denies metadata and mapped forms behind a name even with allowPrivateNetworks', async () => {
    for (const ip of ['169.254.169.254', '::ffff:169.254.169.254', 'fe80::1']) {
      const answer = await call(egressLookup(open, 80, stub([ip])), 'metadata.example', false);
      expect(answer.err).toBeInstanceOf(EgressDeniedError);
    }
    expect((await call(egressLookup(open, 80, stub(['::ffff:10.0.0.1'])), 'n.example', false)).err).toBeNull();
  });

  it('applies host:port allow entries with the port it was built for', async () => {
    const p = policy({ allow: ['billing.internal:8443'] });
    expect((await call(egressLookup(p, 8443, stub(['10.0.0.7'])), 'billing.internal', false)).err).toBeNull();
    expect((await call(egressLookup(p, 80, stub(['10.0.0.7'])), 'billing.internal', false)).err).toBeInstanceOf(EgressDeniedError);
  });

  it('passes resolver errors through and treats an empty answer as not found', async () => {
    const failing: ResolveAll = (_h, _o, cb) => cb(Object.assign(new Error('getaddrinfo EAI_AGAIN x'), { code: 'EAI_AGAIN' }), []);
    expect((await call(egressLookup(strict, 80, failing), 'x', false)).err?.code).toBe('EAI_AGAIN');
    expect((await call(egressLookup(strict, 80, stub([])), 'x', false)).err?.code).toBe('ENOTFOUND');
  });
});

describe('findEgressDenied', () => {
  it('finds the error inside an AggregateError or a cause', () => {
    const denied = new EgressDeniedError('h', '10.0.0.1', 'private 10.0.0.0/8');
    expect(findEgressDenied(denied)).toBe(denied);
    expect(findEgressDenied(new AggregateError([new Error('x'), denied]))).toBe(denied);
    expect(findEgressDenied(new Error('wrapped', { cause: denied }))).toBe(denied);
    expect(findEgressDenied(new Error('other'))).toBeUndefined();
    expect(findEgressDenied('text')).toBeUndefined();
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
