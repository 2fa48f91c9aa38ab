import { describe, expect, expectTypeOf, it } from 'vitest';
import { collectConfigProblems, environmentOverrides, validateConfig } from '../../../src/config/load.js';
import { ConfigSchema, CONVICT_KEYS } from '../../../src/config/schema.js';
import { ConfigError } from '../../../src/core/errors.js';
import type {
  AppConfig,
  RuleConfig,
  TokenProfileConfig,
  UpstreamTokenConfig,
} from '../../../src/config/types.js';

// The schema is the one source: the keys other branches add are there with their
// defaults and bounds, requirement lists must not be empty, the environment overrides
// convict applies come from it, and the types follow it.

const issuer = {
  name: 'corp',
  issuer: 'https://idp.example.com',
  audiences: ['api'],
  jwks_uri: 'https://idp.example.com/jwks',
};
const problems = (input: unknown, env: NodeJS.ProcessEnv = {}) => collectConfigProblems(input, env).problems;

describe('configuration schema', () => {
  it('has the keys added in parallel, with their defaults', () => {
    const c = validateConfig({ issuers: [issuer], upstream: { token: { issuer: 'https://authz' } } }, {});
    expect(c.expression_budget_ms).toBe(10);
    expect(c.upstream.allow_method_override).toBe(false);
    expect(c.upstream.token?.allowed_audiences).toBeUndefined();
    expect(c.server.http_max_connections_per_client).toBe(64);
  });

  it('bounds the keys added in parallel', () => {
    expect(
      problems({
        expression_budget_ms: 0,
        server: { http_max_connections_per_client: 0 },
        upstream: { allow_method_override: 'yes', token: { issuer: 'https://authz', allowed_audiences: [] } },
      }),
    ).toEqual([
      'server.http_max_connections_per_client: must be >= 1, got 0',
      'expression_budget_ms: must be >= 1, got 0',
      'upstream.allow_method_override: must be true or false, got string',
      'upstream.token.allowed_audiences: must not be empty',
    ]);
    expect(problems({ expression_budget_ms: 1001 })).toEqual([
      'expression_budget_ms: must be <= 1000, got 1001',
    ]);
    expect(problems({ expression_budget_ms: 2.5 })).toEqual([
      'expression_budget_ms: must be an integer, got number 2.5',
    ]);
  });

  it('refuses empty requirement lists, naming each', () => {
    const p = problems({
      issuers: [issuer],
      rules: [
        { name: 'a', require: { scopes_any: [], scopes_all: [], issuers: [], claims: { dept: [] } } },
        { name: 'b' },
      ],
      rate_limits: [{ name: 'r', limit: 1, window_seconds: 1, rules: [] }],
    });
    expect(p).toEqual([
      'rules[0].require.scopes_all: must not be empty',
      'rules[0].require.scopes_any: must not be empty',
      'rules[0].require.issuers: must not be empty',
      'rules[0].require.claims.dept: must not be empty',
      'rate_limits[0].rules: must not be empty',
    ]);
  });

  it('collects structural problems of every section in one list', () => {
    const p = problems({
      server: { workers: 0 },
      log: { level: 'loud' },
      issuers: [{ name: 'x' }],
      rules: [{ token: true }],
      token_endpoint: { grant_issuers: [3] },
      store: { redis: { cluster: 'a:1' } },
      tracing: { sample_ratio: 2 },
    });
    expect(p).toEqual([
      'server.workers: must be >= 1, got 0',
      'log.level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
      'issuers[0].issuer: required',
      'issuers[0].audiences: required',
      'rules[0].token: must be false or an object, got boolean',
      'token_endpoint.grant_issuers[0]: must be an issuer name or an object, got number',
      'store.redis.cluster: must be a list of strings',
      'tracing.sample_ratio: must be <= 1, got 2',
    ]);
  });

  it('takes the environment overrides convict applies from the schema', () => {
    expect(environmentOverrides()).toEqual([
      { variable: 'AUTHZ_GRPC_ADDRESS', key: 'server.grpc_address' },
      { variable: 'AUTHZ_HTTP_ADDRESS', key: 'server.http_address' },
      { variable: 'AUTHZ_LOG_LEVEL', key: 'log.level' },
    ]);
    const c = validateConfig(
      { server: { grpc_address: '127.0.0.1:1', workers: 2 }, log: { level: 'warn' } },
      { AUTHZ_GRPC_ADDRESS: '127.0.0.1:7000', AUTHZ_LOG_LEVEL: 'debug' },
    );
    expect(c.server.grpc_address).toBe('127.0.0.1:7000'); // the environment wins over the file
    expect(c.server.workers).toBe(2);
    expect(c.log.level).toBe('debug');
    expect(problems({}, { AUTHZ_LOG_LEVEL: 'loud' })).toEqual([
      'log.level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ]);
  });

  it('names a section that is not a map, also when the environment overrides a key in it', () => {
    expect(
      problems({ server: 5, log: ['x'] }, { AUTHZ_GRPC_ADDRESS: '127.0.0.1:1', AUTHZ_LOG_LEVEL: 'info' }),
    ).toEqual(['server: must be an object, got number', 'log: must be an object, got an array']);
  });

  it('declares environment variables only on keys convict loads', () => {
    for (const { key } of environmentOverrides())
      expect(CONVICT_KEYS as readonly string[], key).toContain(key.split('.')[0]);
  });

  it('reads an integer that convict loads from text, and names any other text', () => {
    expect(validateConfig({ server: { workers: '3' } }, {}).server.workers).toBe(3);
    expect(problems({ server: { workers: '12abc', shutdown_grace_seconds: 'x' } })).toEqual([
      'server.shutdown_grace_seconds: must be an integer, got string "x"',
      'server.workers: must be an integer, got string "12abc"',
    ]);
  });

  it('derives the types from the schema', () => {
    expectTypeOf<AppConfig['expression_budget_ms']>().toEqualTypeOf<number>();
    expectTypeOf<AppConfig['upstream']['allow_method_override']>().toEqualTypeOf<boolean>();
    expectTypeOf<UpstreamTokenConfig['allowed_audiences']>().toEqualTypeOf<string[] | undefined>();
    expectTypeOf<RuleConfig['action']>().toEqualTypeOf<'allow' | 'deny' | 'authenticate' | 'optional'>();
    expectTypeOf<RuleConfig['token']>().toEqualTypeOf<false | TokenProfileConfig | undefined>();
    expect(Object.keys(ConfigSchema.properties)).toContain('expression_budget_ms');
  });
});

describe('ConfigError', () => {
  it('gives every problem as a {path, message} value', () => {
    let error: ConfigError | undefined;
    try {
      validateConfig({ rules: [{ require: { scopes_any: [] } }], bogus: 1 }, {});
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.details).toEqual([
      { path: 'bogus', message: expect.stringMatching(/^unknown key \(allowed: server, log, /) },
      { path: 'rules[0].require.scopes_any', message: 'must not be empty' },
    ]);
  });
});
