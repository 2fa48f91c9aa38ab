import { decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import type { UpstreamTokenConfig } from '../../../src/config/types.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { KEY_TAIL, type CacheAdmission } from '../../../src/core/admission.js';
import {
  createUpstreamTokenMinter,
  MintError,
  type UpstreamTokenMinter,
} from '../../../src/upstream/token-minter.js';
import {
  TempDir,
  jwksFromRoute,
  octJwk,
  principal,
  privateJwk,
  privateKeyFor,
  randomSecret,
  tokenConfig,
} from '../../helpers/mint.js';
import { captureLogger } from '../../helpers/logger.js';

let dir: TempDir;
beforeAll(() => {
  dir = new TempDir();
  dir.write('es256.json', privateJwk(privateKeyFor('ES256'), { kid: 'es-1' }));
});
afterAll(() => dir.remove());

const SIGNING = { alg: 'ES256', key_file: 'es256.json', previous_key_files: [] };
const T0 = Date.UTC(2030, 0, 1, 0, 0, 0); // epoch ms, whole second

interface Harness {
  minter: UpstreamTokenMinter;
  metrics: Metrics;
  clock: { ms: number };
  lines: ReturnType<typeof captureLogger>['lines'];
  /** Verifies a minted header value against the JWKS route and returns the payload. */
  verify(value: string): Promise<JWTPayload>;
}

/** `admission`: first_use here unless a test is about admission itself (the mechanism of reuse is easier to see). */
async function harness(
  over: Partial<UpstreamTokenConfig> = {},
  cacheAdmission: CacheAdmission = 'first_use',
): Promise<Harness> {
  const metrics = new Metrics({ processMetrics: false });
  const clock = { ms: T0 };
  const { logger, lines } = captureLogger();
  const minter = await createUpstreamTokenMinter(tokenConfig({ signing: SIGNING, ...over }), {
    baseDir: dir.path,
    logger,
    metrics,
    clock: { nowMs: () => clock.ms, nowSeconds: () => clock.ms / 1000 },
    cacheAdmission,
  });
  const { keySet } = await jwksFromRoute(() => minter.publicJwks());
  const verify = async (value: string) => {
    const jwt = value.startsWith('Bearer ') ? value.slice(7) : value;
    const { payload } = await jwtVerify(jwt, keySet, {
      issuer: 'https://authz.internal',
      currentDate: new Date(clock.ms),
      algorithms: ['ES256'],
    });
    return payload;
  };
  return { minter, metrics, clock, lines, verify };
}

async function hits(metrics: Metrics): Promise<number> {
  const m = await metrics.cacheHitsTotal.get();
  return m.values.find((v) => v.labels.cache === 'minted_token')?.value ?? 0;
}

async function configProblems(over: Partial<UpstreamTokenConfig>): Promise<string[]> {
  try {
    await harness(over);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('standard claims', () => {
  it('sets iss, sub, aud, iat, exp, jti', async () => {
    const h = await harness({ ttl_seconds: 120 });
    const p = await h.verify(await h.minter.mint(principal({ sub: 'alice' }), undefined));
    expect(p).toEqual({
      iss: 'https://authz.internal',
      sub: 'alice',
      aud: 'backend',
      iat: T0 / 1000,
      exp: T0 / 1000 + 120,
      jti: expect.any(String),
    });
  });

  it('exp is capped at the incoming token exp', async () => {
    const h = await harness({ ttl_seconds: 300 });
    const p = await h.verify(await h.minter.mint(principal({ exp: T0 / 1000 + 42 }), undefined));
    expect(p.exp).toBe(T0 / 1000 + 42);
    const q = await h.verify(await h.minter.mint(principal({ exp: T0 / 1000 + 4000 }), undefined));
    expect(q.exp).toBe(T0 / 1000 + 300);
  });

  it('aud is a string for one audience and an array for several; the override replaces the config', async () => {
    const one = await harness({ audiences: ['backend'] });
    expect((await one.verify(await one.minter.mint(principal(), undefined))).aud).toBe('backend');

    const several = await harness({ audiences: ['a', 'b'] });
    expect((await several.verify(await several.minter.mint(principal(), undefined))).aud).toEqual(['a', 'b']);

    expect((await several.verify(await several.minter.mint(principal(), ['orders']))).aud).toBe('orders');
    expect((await several.verify(await several.minter.mint(principal(), ['x', 'y', 'z']))).aud).toEqual([
      'x',
      'y',
      'z',
    ]);
  });

  it('no audience at all omits aud', async () => {
    const h = await harness({ audiences: [] });
    const p = await h.verify(await h.minter.mint(principal(), undefined));
    expect(p).not.toHaveProperty('aud');
  });

  it('a principal without sub gives a token without sub', async () => {
    const h = await harness();
    const p = await h.verify(await h.minter.mint(principal({ sub: undefined }), undefined));
    expect(p).not.toHaveProperty('sub');
  });

  it('jti is a UUID v4 and distinct per token; absent with jti: false', async () => {
    const h = await harness({ cache: false });
    const jtis = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const p = await h.verify(await h.minter.mint(principal(), undefined));
      expect(p.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      jtis.add(p.jti!);
    }
    expect(jtis.size).toBe(20);

    const none = await harness({ jti: false });
    expect(await none.verify(await none.minter.mint(principal(), undefined))).not.toHaveProperty('jti');
  });

  it('header "authorization" gives "Bearer <jwt>", any other header the bare JWT', async () => {
    const auth = await harness({ header: 'Authorization' });
    expect(auth.minter.header).toBe('authorization');
    expect(auth.minter.issuer).toBe('https://authz.internal');
    const value = await auth.minter.mint(principal(), undefined);
    expect(value).toMatch(/^Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    await auth.verify(value);

    const other = await harness({ header: 'X-JWT-Assertion' });
    expect(other.minter.header).toBe('x-jwt-assertion');
    expect(await other.minter.mint(principal(), undefined)).toMatch(
      /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/,
    );
  });
});

describe('copy_claims and static claims', () => {
  const claims = {
    email: 'alice@example.com',
    roles: ['admin', 'dev'],
    scope: 'read write',
    realm_access: { roles: ['r1'] },
    'x.literal': 'literal-value',
    x: { literal: 'nested-value' },
    secret_claim: 'not copied',
    iss: 'https://evil',
    aud: 'evil',
  };

  it('copies the listed local claims only', async () => {
    const h = await harness({ copy_claims: ['email', 'roles', 'scope', 'missing'] });
    const p = await h.verify(await h.minter.mint(principal({ claims }), undefined));
    expect(p.email).toBe('alice@example.com');
    expect(p.roles).toEqual(['admin', 'dev']);
    expect(p.scope).toBe('read write');
    expect(p).not.toHaveProperty('missing');
    expect(p).not.toHaveProperty('secret_claim');
  });

  it('a dotted name walks nested claims and lands under its last segment; a literal dotted claim wins', async () => {
    const h = await harness({ copy_claims: ['realm_access.roles', 'x.literal'] });
    const p = await h.verify(await h.minter.mint(principal({ claims }), undefined));
    expect(p.roles).toEqual(['r1']);
    expect(p.literal).toBe('literal-value');
    expect(p).not.toHaveProperty('realm_access');
  });

  it('does not walk into inherited properties', async () => {
    const h = await harness({ copy_claims: ['email.constructor', 'roles.length'] });
    const p = await h.verify(await h.minter.mint(principal({ claims }), undefined));
    expect(p).not.toHaveProperty('constructor');
    expect(p).not.toHaveProperty('length');
  });

  it('two copy_claims landing on the same name are a config error', async () => {
    const p = await configProblems({ copy_claims: ['roles', 'realm_access.roles'] });
    expect(p).toEqual([expect.stringMatching(/^upstream\.token\.copy_claims\[1\]: .*"roles"/)]);
  });

  it('a static claim overrides a copied one of the same name', async () => {
    const h = await harness({ copy_claims: ['email', 'roles'], claims: { env: 'prod', roles: ['static'] } });
    const p = await h.verify(await h.minter.mint(principal({ claims }), undefined));
    expect(p.env).toBe('prod');
    expect(p.roles).toEqual(['static']);
    expect(p.email).toBe('alice@example.com');
  });

  it('reserved claims are never copied', async () => {
    const h = await harness({ copy_claims: ['iss', 'aud', 'sub', 'exp', 'email'] });
    const p = await h.verify(
      await h.minter.mint(
        principal({ sub: 'alice', claims: { ...claims, sub: 'mallory', exp: 1 } }),
        undefined,
      ),
    );
    expect(p.iss).toBe('https://authz.internal');
    expect(p.aud).toBe('backend');
    expect(p.sub).toBe('alice');
    expect(p.exp).toBe(T0 / 1000 + 300);
    expect(h.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual(
      expect.arrayContaining([expect.stringMatching(/copy_claims\[0\]: iss is always set/)]),
    );
  });

  it('a static claim naming a reserved claim is a config error', async () => {
    const p = await configProblems({ claims: { iss: 'x', aud: 'y', jti: 'z', env: 'prod' } });
    expect(p).toEqual([
      expect.stringMatching(/^upstream\.token\.claims\.iss: reserved/),
      expect.stringMatching(/^upstream\.token\.claims\.aud: reserved/),
      expect.stringMatching(/^upstream\.token\.claims\.jti: reserved/),
    ]);
  });

  it('static claim values are not affected by later changes to the config object', async () => {
    const cfgClaims: Record<string, unknown> = { tags: ['a'] };
    const h = await harness({ claims: cfgClaims });
    (cfgClaims.tags as string[]).push('b');
    const p = await h.verify(await h.minter.mint(principal(), undefined));
    expect(p.tags).toEqual(['a']);
  });
});

describe('reuse (cache)', () => {
  it('reuses a token until 80% of its lifetime, then mints a fresh one', async () => {
    const h = await harness({ ttl_seconds: 100 });
    const who = principal();
    const first = await h.minter.mint(who, undefined);
    h.clock.ms += 79_000;
    expect(await h.minter.mint(who, undefined)).toBe(first);
    expect(await hits(h.metrics)).toBe(1);
    h.clock.ms += 1_000; // 80 s of 100 s
    const second = await h.minter.mint(who, undefined);
    expect(second).not.toBe(first);
    expect(decodeJwt(second).iat).toBe(T0 / 1000 + 80);
    expect(await hits(h.metrics)).toBe(1);
    await h.verify(second);
  });

  it('the 80% applies to the capped lifetime', async () => {
    const h = await harness({ ttl_seconds: 300 });
    const who = principal({ exp: T0 / 1000 + 10 });
    const first = await h.minter.mint(who, undefined);
    h.clock.ms += 7_000;
    expect(await h.minter.mint(who, undefined)).toBe(first);
    h.clock.ms += 1_000;
    expect(await h.minter.mint(who, undefined)).not.toBe(first);
  });

  it('keys on the incoming token and the audience list', async () => {
    const h = await harness();
    const a = principal();
    const b = principal();
    const ta = await h.minter.mint(a, undefined);
    expect(await h.minter.mint(b, undefined)).not.toBe(ta);
    expect(await h.minter.mint(a, ['other'])).not.toBe(ta);
    expect(await h.minter.mint(a, ['x', 'y'])).not.toBe(await h.minter.mint(a, ['x']));
    expect(await h.minter.mint(a, undefined)).toBe(ta);
    expect(await h.minter.mint(a, ['other'])).toBe(await h.minter.mint(a, ['other']));
  });

  it('two credentials with the same tail never share a token (the key holds the tail, the entry the whole)', async () => {
    const h = await harness();
    const tail = 'S'.repeat(KEY_TAIL);
    const alice = principal({ sub: 'alice', cacheKey: `eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.${tail}` });
    const mallory = principal({
      sub: 'mallory',
      cacheKey: `eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.${tail}`,
    });
    const forAlice = await h.minter.mint(alice, undefined);
    const forMallory = await h.minter.mint(mallory, undefined);
    expect(forMallory).not.toBe(forAlice);
    expect((await h.verify(forMallory)).sub).toBe('mallory');
    // The same credential read anew (a new string, as on every request) still hits.
    const again = principal({ sub: 'mallory', cacheKey: [...mallory.cacheKey].join('') });
    expect(await h.minter.mint(again, undefined)).toBe(forMallory);
  });

  it('concurrent mints for the same key share one token', async () => {
    const h = await harness();
    const who = principal();
    const values = await Promise.all(Array.from({ length: 5 }, () => h.minter.mint(who, undefined)));
    expect(new Set(values).size).toBe(1);
    expect(await hits(h.metrics)).toBe(4);
  });

  it("second_use (the default): a credential's token is cached from its second mint on", async () => {
    const h = await harness({}, 'second_use');
    const who = principal();
    const first = await h.minter.mint(who, undefined);
    const second = await h.minter.mint(who, undefined);
    expect(second).not.toBe(first); // the first sighting was not remembered
    expect(await h.minter.mint(who, undefined)).toBe(second);
    expect(await hits(h.metrics)).toBe(1);
    // A stream of one-off credentials never enters the cache: each is minted afresh and
    // none is a hit when it comes back after the admission window forgot it.
    const h2 = await harness({ cache_max_entries: 4 }, 'second_use');
    const once = Array.from({ length: 20 }, () => principal());
    for (const p of once) await h2.minter.mint(p, undefined);
    for (const p of once.slice(0, 5)) await h2.minter.mint(p, undefined);
    expect(await hits(h2.metrics)).toBe(0);
  });

  it('a cached token stays a hit after admission has forgotten its credential', async () => {
    const h = await harness({ cache_max_entries: 4 }, 'second_use');
    const who = principal();
    await h.minter.mint(who, undefined);
    const cached = await h.minter.mint(who, undefined);
    // 20 one-off credentials: admission's two generations of 4 rotate, the LRU keeps `who`.
    for (let i = 0; i < 20; i++) await h.minter.mint(principal(), undefined);
    expect(await h.minter.mint(who, undefined)).toBe(cached);
  });

  it('cache: false mints every time', async () => {
    const h = await harness({ cache: false });
    const who = principal();
    expect(await h.minter.mint(who, undefined)).not.toBe(await h.minter.mint(who, undefined));
    expect(await hits(h.metrics)).toBe(0);
  });

  it('a token whose lifetime is already over is not cached', async () => {
    const h = await harness();
    const who = principal({ exp: T0 / 1000 });
    expect(await h.minter.mint(who, undefined)).not.toBe(await h.minter.mint(who, undefined));
  });

  it('cache_max_entries bounds the cache (least recently used evicted)', async () => {
    const h = await harness({ cache_max_entries: 2 });
    const [a, b, c] = [principal(), principal(), principal()];
    const ta = await h.minter.mint(a, undefined);
    await h.minter.mint(b, undefined);
    await h.minter.mint(c, undefined);
    expect(await h.minter.mint(a, undefined)).not.toBe(ta);
  });

  it('close() empties the cache', async () => {
    const h = await harness();
    const who = principal();
    const first = await h.minter.mint(who, undefined);
    h.minter.close();
    expect(await h.minter.mint(who, undefined)).not.toBe(first);
  });
});

describe('HS signing through the minter', () => {
  it('verifies with the secret and publishes no key', async () => {
    const secret = randomSecret(32);
    const h = await createUpstreamTokenMinter(
      tokenConfig({
        signing: { alg: 'HS256', key_file: dir.write('hs.json', octJwk(secret)), previous_key_files: [] },
      }),
      { baseDir: dir.path, logger: captureLogger().logger, metrics: new Metrics({ processMetrics: false }) },
    );
    expect(h.publicJwks()).toEqual([]);
    const { payload } = await jwtVerify(await h.mint(principal(), undefined), new Uint8Array(secret), {
      audience: 'backend',
    });
    expect(payload.iss).toBe('https://authz.internal');
  });
});

describe('errors', () => {
  it('MintError is an Error with its own name', () => {
    const e = new MintError('x', { cause: new Error('y') });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('MintError');
  });

  it('an unserialisable claim value surfaces as MintError and is not cached', async () => {
    const h = await harness({ copy_claims: ['big'] });
    const who = principal({ claims: { big: 10n } });
    await expect(h.minter.mint(who, undefined)).rejects.toBeInstanceOf(MintError);
    await expect(h.minter.mint(who, undefined)).rejects.toBeInstanceOf(MintError);
    expect(await hits(h.metrics)).toBe(0);
  });

  it('an invalid header name is a config error', async () => {
    const p = await configProblems({ header: 'bad header' });
    expect(p[0]).toMatch(/^upstream\.token\.header: /);
  });
});
