// Runtime.build from a config object: what it compiles, how it reports a config it cannot
// serve, and what a rebuild (reload) takes over from the running runtime. The behaviour
// seen through Check and SIGHUP is covered in test/integration/reload.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import type { CompiledIssuer } from '../../../src/authn/verify.js';
import { loadConfigObject } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/errors.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { Runtime } from '../../../src/server/runtime.js';
import { generateEcKeyPair, makeJwks } from '../../helpers/keys.js';
import { captureLogger } from '../../helpers/logger.js';

const corp = generateEcKeyPair({ kid: 'corp-1' });
const partner = generateEcKeyPair({ kid: 'partner-1' });

function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    issuers: [
      {
        name: 'corp',
        issuer: 'https://idp.example.com',
        audiences: ['api://orders'],
        algorithms: ['ES256'],
        clock_skew_seconds: 30,
        jwks: makeJwks(corp),
      },
      { name: 'partner', issuer: 'https://partner.example.com', audiences: ['*'], jwks: makeJwks(partner) },
    ],
    ...extra,
  };
}

const withEndpoint = (store: Record<string, unknown> = { type: 'memory' }) => ({
  token_endpoint: {
    enabled: true,
    issuer: 'https://authz.example.com',
    audience: 'https://authz.example.com/oauth2/token',
    access_token: { signing: { alg: 'ES256' } },
  },
  store,
});

const withDownstream = (alg = 'ES256') => ({
  upstream: { token: { issuer: 'https://authz.internal', audiences: ['backend'], signing: { alg } } },
});

const runtimes: Runtime[] = [];
afterEach(async () => {
  for (const r of runtimes.splice(0).reverse()) await r.close();
});

async function build(
  input: Record<string, unknown>,
  previous?: Runtime,
  log = captureLogger(),
): Promise<Runtime> {
  const ctx = { logger: log.logger, metrics: new Metrics({ processMetrics: false }) };
  const runtime = await Runtime.build(loadConfigObject(input, process.cwd(), {}), ctx, previous);
  runtimes.push(runtime);
  return runtime;
}

describe('Runtime.build', () => {
  it('compiles each configured issuer: audiences, algorithms, clock skew, key source', async () => {
    const rt = await build(config());
    expect(rt.issuers.map((i) => i.name)).toEqual(['corp', 'partner']);
    const [c, p] = rt.issuers as [CompiledIssuer, CompiledIssuer];
    expect(c.issuer).toBe('https://idp.example.com');
    expect(c.audiences).toEqual(new Set(['api://orders']));
    expect(c.algorithms).toEqual(new Set(['ES256']));
    expect(c.clockSkewSeconds).toBe(30);
    expect(p.audiences).toBe('any');
    expect(c.keySource).not.toBe(p.keySource);
    expect(rt.ready()).toBe(false);
    await rt.start();
    expect(rt.ready()).toBe(true);
    expect(Object.keys(rt.issuerStatus())).toEqual(['corp', 'partner']);
  });

  it('adds the token endpoint as the "self" issuer and owns a store', async () => {
    const rt = await build(config(withEndpoint()));
    expect(rt.issuers.map((i) => i.name)).toEqual(['corp', 'partner', 'self']);
    expect(rt.store?.type).toBe('memory');
    expect(rt.tokenService).toBeDefined();
  });

  it('has no store, token service or minter when none is configured', async () => {
    const rt = await build(config());
    expect(rt.store).toBeUndefined();
    expect(rt.tokenService).toBeUndefined();
    expect(rt.minter).toBeUndefined();
    expect(rt.publicJwks()).toEqual([]);
  });

  it('publishes the public keys of the downstream minter and the token endpoint', async () => {
    const rt = await build(config({ ...withEndpoint(), ...withDownstream() }));
    const jwks = rt.publicJwks();
    expect(jwks).toHaveLength(2);
    for (const k of jwks) expect(k).not.toHaveProperty('d');
  });

  it('collects every problem of rules and claim mappings into one ConfigError', async () => {
    const input = config({
      ...withEndpoint(),
      rules: [
        { name: 'a', match: { path_regex: '(' }, action: 'allow' },
        { name: 'a', match: { path_prefix: '/x' }, action: 'allow' },
      ],
    });
    const err = await build(input).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(
      problems.some((p) => p.startsWith("rules[0].match.path_regex: pattern '(' is not accepted by RE2")),
    ).toBe(true);
    expect(problems.some((p) => p.startsWith('rules[1].name: duplicate rule name "a"'))).toBe(true);
    expect((err as ConfigError).message).toContain('invalid configuration:');
  });

  it('an issuer using our own token endpoint issuer is refused when the config is loaded, before any build', () => {
    const input = config({ ...withEndpoint() });
    (input.issuers as Record<string, unknown>[])[1]!.issuer = 'https://authz.example.com';
    expect(() => loadConfigObject(input, process.cwd(), {})).toThrow(
      /issuers\[1\]\.issuer:.*token_endpoint\.issuer/,
    );
  });
});

describe('Runtime.build with a previous runtime (reload)', () => {
  it('takes over key sources whose settings did not change and builds the others afresh', async () => {
    const first = await build(config());
    await first.start();
    const changed = config();
    (changed.issuers as Record<string, unknown>[])[1]!.jwks = makeJwks(
      generateEcKeyPair({ kid: 'partner-2' }),
    );
    const log = captureLogger('info');
    const second = await build(changed, first, log);
    expect(second.issuers[0]!.keySource).toBe(first.issuers[0]!.keySource);
    expect(second.issuers[1]!.keySource).not.toBe(first.issuers[1]!.keySource);
    expect(log.lines.find((l) => l.msg.startsWith('reload: key sources'))).toMatchObject({
      kept: ['corp'],
      rebuilt: ['partner'],
    });
  });

  it('closing the old runtime leaves a taken-over key source running', async () => {
    const first = await build(config());
    await first.start();
    const second = await build(config(), first);
    await second.start();
    await first.close();
    expect(second.ready()).toBe(true);
    expect(second.issuers[0]!.keySource.status().loaded).toBe(true);
  });

  it('takes over the store when the store settings are unchanged, and it outlives the old runtime', async () => {
    const first = await build(config(withEndpoint()));
    const second = await build(config(withEndpoint()), first);
    expect(second.store).toBe(first.store);
    await first.close();
    expect(second.store?.isReady()).toBe(true);
  });

  it('builds a new store when the store settings change, and says the memory state was not carried over', async () => {
    const first = await build(config(withEndpoint()));
    const log = captureLogger('info');
    const second = await build(
      config(withEndpoint({ type: 'memory', purge_interval_seconds: 7 })),
      first,
      log,
    );
    expect(second.store).not.toBe(first.store);
    expect(log.lines.some((l) => l.level === 'warn' && l.msg.startsWith('store settings changed'))).toBe(
      true,
    );
  });

  it('keeps ephemeral signing keys of the minter and the token endpoint', async () => {
    const first = await build(config({ ...withEndpoint(), ...withDownstream() }));
    const second = await build(config({ ...withEndpoint(), ...withDownstream() }), first);
    expect(first.minter?.ephemeralKey).toBeDefined();
    expect(first.tokenService?.ephemeralKey).toBeDefined();
    expect(second.minter?.ephemeralKey).toBe(first.minter?.ephemeralKey);
    expect(second.tokenService?.ephemeralKey).toBe(first.tokenService?.ephemeralKey);
    expect(second.publicJwks().map((k) => k.kid)).toEqual(first.publicJwks().map((k) => k.kid));
  });

  it('a failed rebuild throws and leaves the running runtime intact', async () => {
    const first = await build(config(withEndpoint()));
    await first.start();
    const bad = config({
      ...withEndpoint(),
      rules: [{ name: 'r', match: { path_regex: '[' }, action: 'allow' }],
    });
    await expect(build(bad, first)).rejects.toBeInstanceOf(ConfigError);
    expect(first.ready()).toBe(true);
    expect(first.store?.isReady()).toBe(true);
  });
});
