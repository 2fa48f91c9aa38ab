// Peer identity through the real gRPC Check: require.source_principals (exact or a
// trailing-* prefix of the SPIFFE ID Envoy reports in attributes.source.principal), the
// CEL `source` / `destination` variables, and client-IP lists with Kubernetes' CEL
// network functions (ip(), cidr(), containsIP()); bad literals are config errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyCheckRequest, describeCheckResponse } from '../../src/cli/check.js';
import { config, corpToken } from '../helpers/authz.js';
import { startTestService, type Decision, type TestService } from '../helpers/harness.js';

const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const OPS = 'spiffe://cluster.local/ns/ops/sa/runner';
const OTHER = 'spiffe://cluster.local/ns/other/sa/web';

const RULES = [
  {
    name: 'shop',
    match: { path_prefix: '/shop' },
    require: { source_principals: [WEB, 'spiffe://cluster.local/ns/ops/*'] },
  },
  {
    name: 'office',
    match: { path_prefix: '/office' },
    require: { expression: "cidr('10.0.0.0/8').containsIP(ip(source.address))" },
  },
  {
    name: 'v6',
    match: { path_prefix: '/v6' },
    require: { expression: "cidr('2001:db8::/32').containsIP(source.address)" },
  },
  {
    name: 'peer-expr',
    match: { path_prefix: '/peer' },
    require: {
      expression:
        "source.certificate_present && source.port == 40000 && source.principal.startsWith('spiffe://cluster.local/ns/shop/') && destination.principal == 'spiffe://cluster.local/ns/shop/sa/api' && destination.address == '10.9.9.9'",
    },
  },
];

interface Peer {
  principal?: string;
  address?: string;
  port?: number;
  certificate?: string;
}

let svc: TestService;

beforeAll(async () => {
  svc = await startTestService(config({ rules: RULES }));
});

afterAll(async () => {
  await svc?.close();
});

const peer = (p: Peer) => ({
  ...(p.principal ? { principal: p.principal } : {}),
  ...(p.certificate ? { certificate: p.certificate } : {}),
  ...(p.address ? { address: { socket_address: { address: p.address, port_value: p.port ?? 40000 } } } : {}),
});

async function check(path: string, source: Peer, destination?: Peer): Promise<Decision> {
  const req = envoyCheckRequest({
    method: 'GET',
    path,
    host: 'api.example.com',
    token: await corpToken(),
    headers: [],
    context: [],
  });
  req.attributes.source = peer(source);
  if (destination) req.attributes.destination = peer(destination);
  return describeCheckResponse(await svc.checkRaw(req)) as unknown as Decision;
}

describe('require.source_principals', () => {
  it('accepts an exact principal and one under a trailing-* prefix', async () => {
    expect((await check('/shop/cart', { principal: WEB })).decision).toBe('allow');
    expect((await check('/shop/cart', { principal: OPS })).decision).toBe('allow');
  });

  it('refuses another principal, a prefix without its slash, and a connection without one (403 peer_not_allowed)', async () => {
    for (const p of [
      { principal: OTHER },
      { principal: 'spiffe://cluster.local/ns/ops' },
      { principal: `${WEB}x` },
      { address: '10.1.2.3' },
    ]) {
      const d = await check('/shop/cart', p);
      expect(d.decision, JSON.stringify(p)).toBe('deny');
      expect(d.reason).toBe('peer_not_allowed');
      expect(d.http_status).toBe(403);
    }
  });

  it('the same token is refused from another peer after it was allowed (a cached allow is not reused)', async () => {
    const token = await corpToken({ sub: 'cache-check' });
    const send = async (principal: string) => {
      const req = envoyCheckRequest({
        method: 'GET',
        path: '/shop/x',
        host: 'api.example.com',
        token,
        headers: [],
        context: [],
      });
      req.attributes.source = { principal };
      return describeCheckResponse(await svc.checkRaw(req)) as unknown as Decision;
    };
    expect((await send(WEB)).decision).toBe('allow');
    expect((await send(OTHER)).reason).toBe('peer_not_allowed');
  });
});

describe('CEL source / destination and client-IP lists', () => {
  it('cidr().containsIP(ip(source.address))', async () => {
    expect((await check('/office', { address: '10.20.30.40' })).decision).toBe('allow');
    expect((await check('/office', { address: '192.168.1.1' })).reason).toBe('expression_false');
    // No address at all: ip('') is an evaluation error, and an error denies.
    expect((await check('/office', { principal: WEB })).reason).toBe('expression_error');
  });

  it('IPv6, and containsIP with a string', async () => {
    expect((await check('/v6', { address: '2001:db8::42' })).decision).toBe('allow');
    expect((await check('/v6', { address: '2001:db9::1' })).reason).toBe('expression_false');
    expect((await check('/v6', { address: '10.0.0.1' })).reason).toBe('expression_false');
  });

  it('source.principal, source.certificate_present, destination.principal and destination.address', async () => {
    const dest = { principal: 'spiffe://cluster.local/ns/shop/sa/api', address: '10.9.9.9', port: 8443 };
    const withCert = {
      principal: WEB,
      address: '10.1.1.1',
      certificate: encodeURIComponent('-----BEGIN CERTIFICATE-----'),
    };
    expect((await check('/peer', withCert, dest)).decision).toBe('allow');
    expect((await check('/peer', { principal: WEB, address: '10.1.1.1' }, dest)).reason).toBe(
      'expression_false',
    );
    expect((await check('/peer', withCert, { ...dest, address: '10.9.9.8' })).reason).toBe(
      'expression_false',
    );
  });
});

describe('config errors name the field', () => {
  // As `serve` and `check-config` load it: the schema, then the compiled rules.
  const problems = async (require: Record<string, unknown>): Promise<string[]> => {
    try {
      const s = await startTestService(config({ rules: [{ name: 'r', match: { path: '/x' }, require }] }));
      await s.close();
      return [];
    } catch (err) {
      const found = (err as { problems?: string[] }).problems;
      if (found) return found;
      throw err;
    }
  };

  it('source_principals: empty, a * not at the end, a lone *', async () => {
    expect(await problems({ source_principals: [] })).toEqual([
      expect.stringContaining('rules[0].require.source_principals'),
    ]);
    expect(await problems({ source_principals: ['spiffe://cluster.local/*/sa/web'] })).toEqual([
      expect.stringMatching(/rules\[0\]\.require\.source_principals\[0\].*only allowed at the end/),
    ]);
    expect(await problems({ source_principals: [WEB, '*'] })).toEqual([
      expect.stringContaining('rules[0].require.source_principals[1]'),
    ]);
    expect(await problems({ source_principals: [WEB, 'spiffe://cluster.local/ns/ops/*'] })).toEqual([]);
  });

  it('a bad ip() or cidr() literal, and an unknown field of source', async () => {
    for (const [expression, text] of [
      ["cidr('10.0.0.0/33').containsIP(source.address)", 'prefix length 33'],
      ["cidr('10.0.0/8').containsIP(source.address)", 'not a CIDR'],
      ["cidr('10.0.0.0').containsIP(source.address)", 'not a CIDR'],
      ["cidr('10.0.0.0/8').containsIP(ip('10.0.0.256'))", 'not an IP address'],
      ["cidr('fe80::/10').containsIP(ip('fe80::1%eth0'))", 'not an IP address'],
      ['source.adress == "x"', 'type error'],
    ] as const) {
      const found = await problems({ expression });
      expect(found, expression).toEqual([expect.stringContaining('rules[0].require.expression')]);
      expect(found[0], expression).toContain(text);
    }
    expect(await problems({ expression: "isCIDR(request.host) || isIP('::1')" })).toEqual([]);
  });
});
