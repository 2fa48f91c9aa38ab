// Decisions the pipeline answers again without deciding afresh: the constant allow of
// allow and optional rules, and a cached token's allow when it came in the query. Each
// reused decision must be exactly what a fresh one would be for that request.
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compileTokenSources } from '../../../src/authn/extract.js';
import { makeKeySet } from '../../../src/authn/keys/jwk.js';
import type { KeySource, VerificationKey } from '../../../src/authn/keys/key-source.js';
import type { CompiledIssuer } from '../../../src/authn/verify.js';
import { RuleSet } from '../../../src/authz/compile.js';
import type { Allow, Decision } from '../../../src/core/decision.js';
import type { AuthRequest } from '../../../src/core/request.js';
import { ManualClock } from '../../../src/core/time.js';
import { createLogger } from '../../../src/observability/logger.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { CheckPipeline } from '../../../src/check/pipeline.js';
import { ClaimHeaders } from '../../../src/upstream/claim-headers.js';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const vk: VerificationKey = { kid: 'k1', kty: 'EC', crv: 'P-256', key: pair.publicKey };

function token(sub: string): string {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'ES256', kid: 'k1' })}.${b64({ iss: 'https://idp', sub, aud: 'api', iat: now, exp: now + 3600 })}`;
  const sig = sign('sha256', Buffer.from(input), { key: pair.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

function pipeline(clock?: ManualClock): CheckPipeline {
  const set = makeKeySet([vk]);
  const keySource: KeySource = {
    kind: 'remote-jwks',
    generation: 1,
    start: async () => undefined,
    current: () => set,
    refreshForUnknownKid: async () => set,
    status: () => ({ state: 'ready', keys: 1, loaded: true }),
    close: () => undefined,
  };
  const issuer: CompiledIssuer = {
    name: 'idp',
    issuer: 'https://idp',
    audiences: new Set(['api']),
    algorithms: new Set(['ES256']),
    keySource,
    clockSkewSeconds: 0,
    requiredClaims: ['iss', 'sub', 'exp'],
    maxLifetimeSeconds: 86400,
  };
  const problems: string[] = [];
  const p = new CheckPipeline({
    issuers: [issuer],
    claimMappers: new Map(),
    tokenSources: compileTokenSources([
      { header: 'authorization', prefix: 'Bearer ' },
      { query: 'access_token' },
      { cookie: 'session' },
    ]),
    maxTokenBytes: 16384,
    scopeClaims: ['scope'],
    rules: RuleSet.compile(
      [
        { name: 'open', match: { path_prefix: '/open' }, action: 'allow' },
        { name: 'opt', match: { path_prefix: '/opt' }, action: 'optional' },
      ] as never,
      'authenticate',
      problems,
    ),
    claimHeaders: ClaimHeaders.compile({ 'x-user': 'sub' }, problems),
    forwardOriginalToken: false,
    verifiedCacheMax: 100,
    // The memo itself is under test: cache a token at its first use.
    cacheAdmission: 'first_use',
    logger: createLogger('silent'),
    metrics: new Metrics({ processMetrics: false }),
    ...(clock ? { clock } : {}),
  });
  expect(problems).toEqual([]);
  return p;
}

const req = (rawPath: string, headers: Record<string, string> = {}): AuthRequest =>
  ({ method: 'GET', rawPath, host: 'h', headers, contextExtensions: {} }) as unknown as AuthRequest;

const allowOf = async (d: Decision | Promise<Decision>): Promise<Allow> => {
  const r = await d;
  if (r.kind !== 'allow') throw new Error(`denied: ${r.reason}`);
  return r;
};

describe('reused allow decisions', () => {
  it('an allow rule answers the same constant decision (cached response bytes) while nothing is request-specific', async () => {
    const p = pipeline();
    const a = await allowOf(p.check(req('/open/a')));
    const b = await allowOf(p.check(req('/open/b?x=1')));
    expect(b).toBe(a);
    expect(a.reusable).toBe(true);
    expect(a.reason).toBe('rule_allow');
    expect(a.queryParametersToRemove).toEqual(['access_token']);
    expect(a.headersToRemove).toEqual([
      'x-user',
      'x-http-method-override',
      'x-http-method',
      'x-method-override',
      'authorization',
    ]);
    // A cookie to rewrite or an encoded token parameter: decided for this request.
    const c = await allowOf(p.check(req('/open/c', { cookie: 'session=s; theme=dark' })));
    expect(c).not.toBe(a);
    expect(c.headers).toEqual([{ key: 'cookie', value: 'theme=dark' }]);
    expect(c.reusable).toBeFalsy();
    const d = await allowOf(p.check(req('/open/d?access%5Ftoken=t')));
    expect(d.queryParametersToRemove).toEqual(['access_token', 'access%5Ftoken']);
    expect(d.reusable).toBeFalsy();
  });

  it('an optional rule’s anonymous allow is its own constant decision', async () => {
    const p = pipeline();
    const a = await allowOf(p.check(req('/opt/a')));
    expect(a.reason).toBe('anonymous');
    expect(a.anonymous).toBe(true);
    expect(await allowOf(p.check(req('/opt/b')))).toBe(a);
    expect(await allowOf(p.check(req('/open/a')))).not.toBe(a);
  });

  it('a cached query token’s allow is reused, and decided afresh when an empty spelling is to be removed too', async () => {
    const p = pipeline();
    const t = token('q-user');
    const first = await allowOf(p.check(req(`/api?access_token=${t}`)));
    expect(first.reusable).toBe(true);
    expect(first.queryParametersToRemove).toEqual(['access_token']);
    expect(first.headers).toEqual([{ key: 'x-user', value: 'q-user' }]);
    // The second request is answered synchronously with the same decision.
    const again = p.check(req(`/api/other?a=b&access_token=${t}`));
    expect(again).toBe(first);
    // An empty encoded spelling must be removed too: a decision for this request, not the memo.
    const encoded = await allowOf(p.check(req(`/api?access%5Ftoken=&access_token=${t}`)));
    expect(encoded).not.toBe(first);
    expect(encoded.queryParametersToRemove).toEqual(['access_token', 'access%5Ftoken']);
    expect(encoded.reusable).toBe(false);
    // A second non-empty one is a second credential.
    const two = await p.check(req(`/api?access%5Ftoken=${t}&access_token=${t}`));
    expect(two).toMatchObject({ kind: 'deny', reason: 'multiple_credentials' });
    // And the same token in the header is its own decision (the header is removed instead).
    const header = await allowOf(p.check(req('/api', { authorization: `Bearer ${t}` })));
    expect(header).not.toBe(first);
    expect(header.queryParametersToRemove).toEqual([]);
    expect(header.headersToRemove).toContain('authorization');
  });

  it('reads the time from its clock: a reused allow and its cached verification end when the token expires', async () => {
    const t = token('c-user');
    // Started after the token was made: never before its iat.
    const clock = new ManualClock();
    const p = pipeline(clock);
    const first = await allowOf(p.check(req(`/api?access_token=${t}`)));
    clock.advanceMs(3_500_000);
    expect(p.check(req(`/api?access_token=${t}`))).toBe(first);
    // Past exp (iat + 3600 s): neither the memoised allow nor the cached verification is used.
    clock.advanceMs(200_000);
    const late = await p.check(req(`/api?access_token=${t}`));
    expect(late).toMatchObject({ kind: 'deny', reason: 'token_expired' });
  });
});
