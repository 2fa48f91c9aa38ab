// The one CEL environment (see expressions.ts): the variables and their types, the
// `request` / `source` / `destination` types, Kubernetes' network functions (ip(), cidr(),
// isIP(), isCIDR(), containsIP, family()) over node:net, and the RE2 overload of
// `matches()` that every compiled literal pattern resolves to.

import { BlockList, isIP } from 'node:net';
import { Environment } from '@marcbachmann/cel-js';
import type { RE2JS } from 're2js';
import { PeerView, RequestView } from './expressions-input.js';

/** A `net.IP` value (Kubernetes' CEL network library): a valid IPv4 or IPv6 address. */
class NetIP {
  constructor(
    readonly address: string,
    readonly family: 4 | 6,
  ) {}
}

/** A `net.CIDR` value: an address block, matched by node:net's BlockList. */
export class NetCIDR {
  constructor(private readonly block: BlockList) {}

  contains(ip: NetIP): boolean {
    return this.block.check(ip.address, ip.family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** An IP address as ip() takes it, or why not (the message never repeats the input). */
export function parseIP(text: string): NetIP | string {
  // A zone (fe80::1%eth0) names an interface of one host: not an address to allow-list.
  const family = text.includes('%') ? 0 : isIP(text);
  if (family === 0) return 'not an IP address';
  return new NetIP(text, family as 4 | 6);
}

/** "address/prefix" as cidr() takes it, or why not. */
export function parseCIDR(text: string): NetCIDR | string {
  const slash = text.indexOf('/');
  const prefix = text.slice(slash + 1);
  if (slash < 0 || !/^(0|[1-9][0-9]{0,2})$/.test(prefix)) return 'not a CIDR (address/prefix length)';
  const ip = parseIP(text.slice(0, slash));
  if (typeof ip === 'string') return 'not a CIDR (address/prefix length)';
  const bits = Number(prefix);
  if (bits > (ip.family === 4 ? 32 : 128)) return `prefix length ${bits} is too long`;
  const block = new BlockList();
  block.addSubnet(ip.address, bits, ip.family === 4 ? 'ipv4' : 'ipv6');
  return new NetCIDR(block);
}

/** CIDR literals of loaded expressions, built once (bounded by the configuration's size). */
export const cidrLiterals = new Map<string, NetCIDR>();

function toIP(text: string): NetIP {
  const ip = parseIP(text);
  if (typeof ip === 'string') throw new Error(`ip(): ${ip}`);
  return ip;
}

function toCIDR(text: string): NetCIDR {
  const known = cidrLiterals.get(text);
  if (known) return known;
  const cidr = parseCIDR(text);
  if (typeof cidr === 'string') throw new Error(`cidr(): ${cidr}`);
  return cidr;
}

/**
 * A `matches()` pattern compiled with RE2 at load. The literal pattern of every
 * `matches` call is replaced by one of these in the parsed expression, so the call
 * resolves to the overload below instead of the library's JS RegExp one.
 */
export class Re2Pattern {
  constructor(private readonly re: RE2JS) {}

  /** RE2's partial match (unanchored), as CEL's matches() is defined. */
  test(value: string): boolean {
    return this.re.test(value);
  }
}

export const PATTERN_TYPE = 'envoy_jwt_authz.Re2Pattern';

export const environment = new Environment({
  unlistedVariablesAreDyn: false,
  // Claim maps such as {'tenant': claims.org.id, 'n': 1} mix value types.
  homogeneousAggregateLiterals: false,
  limits: { maxAstNodes: 1000, maxDepth: 32, maxListElements: 256, maxMapEntries: 256, maxCallArguments: 16 },
})
  .registerType('envoy_jwt_authz.Request', {
    ctor: RequestView,
    fields: {
      method: 'string',
      path: 'string',
      host: 'string',
      headers: 'map<string, string>',
      query: 'map<string, string>',
    },
  })
  .registerType('envoy_jwt_authz.Peer', {
    ctor: PeerView,
    fields: { address: 'string', port: 'int', principal: 'string', certificate_present: 'bool' },
  })
  .registerType('net.IP', { ctor: NetIP, fields: {} })
  .registerType('net.CIDR', { ctor: NetCIDR, fields: {} })
  .registerFunction('ip(string): net.IP', toIP)
  .registerFunction('cidr(string): net.CIDR', toCIDR)
  .registerFunction('isIP(string): bool', (s: string) => typeof parseIP(s) !== 'string')
  .registerFunction('isCIDR(string): bool', (s: string) => typeof parseCIDR(s) !== 'string')
  .registerFunction('net.IP.family(): int', (ip: NetIP) => BigInt(ip.family))
  .registerFunction('net.CIDR.containsIP(net.IP): bool', (c: NetCIDR, ip: NetIP) => c.contains(ip))
  .registerFunction('net.CIDR.containsIP(string): bool', (c: NetCIDR, s: string) => c.contains(toIP(s)))
  // The compiled matches() patterns; CEL source has no literal of this type.
  .registerType(PATTERN_TYPE, { ctor: Re2Pattern, fields: {} })
  .registerFunction(`string.matches(${PATTERN_TYPE}): bool`, (value: string, p: Re2Pattern) => p.test(value))
  .registerVariable('claims', 'map<string, dyn>')
  .registerVariable('scopes', 'list<string>')
  .registerVariable('issuer', 'string')
  .registerVariable('request', 'envoy_jwt_authz.Request')
  .registerVariable('context', 'map<string, string>')
  .registerVariable('now', 'google.protobuf.Timestamp')
  .registerVariable('source', 'envoy_jwt_authz.Peer')
  .registerVariable('destination', 'envoy_jwt_authz.Peer');
