// The Check pipeline's caches, in-process (no gRPC): what a cached verification may
// and may not outlive.
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { compileTokenSources } from '../../../src/authn/extract.js';
import { makeKeySet } from '../../../src/authn/keys/jwk.js';
import type { KeySet, KeySource, VerificationKey } from '../../../src/authn/keys/key-source.js';
import type { CompiledIssuer } from '../../../src/authn/verify.js';
import { RuleSet } from '../../../src/authz/compile.js';
import type { Decision } from '../../../src/core/decision.js';
import { createLogger } from '../../../src/observability/logger.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { CheckPipeline } from '../../../src/check/pipeline.js';
import { ClaimHeaders } from '../../../src/upstream/claim-headers.js';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

function ecKey(kid: string, extra: Partial<VerificationKey> = {}) {
  const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const vk: VerificationKey = { kid, kty: 'EC', crv: 'P-256', key: pair.publicKey, ...extra };
  return { vk, privateKey: pair.privateKey };
}

function token(kid: string, privateKey: ReturnType<typeof ecKey>['privateKey']): string {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'ES256', kid })}.${b64({ iss: 'https://idp', sub: 'u', aud: 'api', iat: now, exp: now + 3600 })}`;
  const sig = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

/** A key source whose state tests can change, optionally in the middle of a verification. */
function mutableSource(initial: KeySet) {
  const state = { set: initial, generation: 1, onRead: undefined as (() => void) | undefined };
  const source: KeySource = {
    kind: 'remote-jwks',
    get generation() {
      return state.generation;
    },
    start: async () => undefined,
    current() {
      const s = state.set;
      const hook = state.onRead;
      state.onRead = undefined;
      hook?.();
      return s;
    },
    refreshForUnknownKid: async () => state.set,
    status: () => ({ state: 'ready', keys: state.set.keys.length, loaded: true }),
    close: () => undefined,
  };
  return { source, state };
}

function pipeline(keySource: KeySource): CheckPipeline {
  const problems: string[] = [];
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
  const p = new CheckPipeline({
    issuers: [issuer],
    claimMappers: new Map(),
    tokenSources: compileTokenSources([{ header: 'authorization', prefix: 'Bearer ' }]),
    maxTokenBytes: 16384,
    scopeClaims: ['scope'],
    rules: RuleSet.compile([], 'authenticate', problems),
    claimHeaders: ClaimHeaders.compile({}, problems),
    forwardOriginalToken: false,
    verifiedCacheMax: 100,
    logger: createLogger('silent'),
    metrics: new Metrics({ processMetrics: false }),
  });
  expect(problems).toEqual([]);
  return p;
}

const request = (t: string) => ({
  method: 'GET',
  rawPath: '/x',
  host: 'h',
  headers: { authorization: `Bearer ${t}` },
  contextExtensions: {},
});
const outcome = async (d: Decision | Promise<Decision>) => {
  const r = await d;
  return r.kind === 'deny' ? r.reason : 'allow';
};

describe('verified-token cache', () => {
  it('a key removed while a token is being verified does not keep that token valid', async () => {
    const k1 = ecKey('k1');
    const k2 = ecKey('k2');
    const { source, state } = mutableSource(makeKeySet([k1.vk]));
    const p = pipeline(source);
    const t = token('k1', k1.privateKey);
    // The background refresh lands right after the verifier read the keys.
    state.onRead = () =>
      setImmediate(() => {
        state.set = makeKeySet([k2.vk]);
        state.generation = 2;
      });
    expect(await outcome(p.check(request(t)))).toBe('allow');
    await new Promise((r) => setImmediate(r));
    expect(state.generation).toBe(2);
    // k1 is gone: the earlier verification must not be served from the cache.
    expect(await outcome(p.check(request(t)))).toBe('key_not_found');
  });

  it('a key change invalidates cached verifications and their memoised decisions', async () => {
    const k1 = ecKey('k1');
    const { source, state } = mutableSource(makeKeySet([k1.vk]));
    const p = pipeline(source);
    const t = token('k1', k1.privateKey);
    expect(await outcome(p.check(request(t)))).toBe('allow');
    expect(await outcome(p.check(request(t)))).toBe('allow');
    state.set = makeKeySet([ecKey('k9').vk]);
    state.generation = 2;
    expect(await outcome(p.check(request(t)))).toBe('key_not_found');
  });

  it('a certificate key is refused once expired, even from a key set that was not reloaded', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    onTestFinished(() => void vi.useRealTimers());
    const soon = Date.now() + 300;
    const k1 = ecKey('gw', { notBefore: Date.now() - 60_000, notAfter: soon });
    const { source } = mutableSource(makeKeySet([k1.vk]));
    const p = pipeline(source);
    const t = token('gw', k1.privateKey);
    expect(await outcome(p.check(request(t)))).toBe('allow');
    vi.advanceTimersByTime(400);
    // Cached verification ends with the certificate, and a fresh verification refuses it.
    expect(await outcome(p.check(request(t)))).toBe('key_not_found');
  });
});
