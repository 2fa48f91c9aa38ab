import { describe, expect, it } from 'vitest';
import { loadConfigFile, validateConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/errors.js';

const issuer = {
  name: 'corp',
  issuer: 'https://idp.example.com',
  audiences: ['api'],
  jwks_uri: 'https://idp.example.com/jwks',
};

function problems(input: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    validateConfig(input, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('config validation', () => {
  it('fills defaults', () => {
    const c = validateConfig({ issuers: [issuer] }, {});
    expect(c.server.grpc_address).toBe('0.0.0.0:9001');
    expect(c.server.http_address).toBe('0.0.0.0:9002');
    expect(c.issuers[0]!.algorithms).toEqual([
      'RS256',
      'RS384',
      'RS512',
      'PS256',
      'PS384',
      'PS512',
      'ES256',
      'ES384',
      'ES512',
      'EdDSA',
    ]);
    expect(c.issuers[0]!.jwks_cache).toEqual({
      max_age_seconds: 600,
      cooldown_seconds: 30,
      timeout_ms: 2000,
      max_stale_seconds: 86400,
    });
    expect(c.issuers[0]!.required_claims).toEqual(['iss', 'sub', 'iat', 'exp']);
    expect(c.token_sources).toEqual([{ header: 'authorization', prefix: 'Bearer ' }]);
    expect(c.scope_claims).toEqual(['scope', 'scp']);
    expect(c.store).toMatchObject({ type: 'memory', purge_interval_seconds: 60 });
  });

  it('applies env overrides', () => {
    const c = validateConfig(
      { issuers: [issuer] },
      {
        AUTHZ_GRPC_ADDRESS: '127.0.0.1:7000',
        AUTHZ_HTTP_ADDRESS: '127.0.0.1:7001',
        AUTHZ_LOG_LEVEL: 'debug',
      },
    );
    expect(c.server.grpc_address).toBe('127.0.0.1:7000');
    expect(c.server.http_address).toBe('127.0.0.1:7001');
    expect(c.log.level).toBe('debug');
  });

  it('reports every problem with its path', () => {
    const p = problems({
      issuers: [
        { name: 'a', issuer: 'https://a', jwks_uri: 'https://a/jwks', extra: 1 },
        { ...issuer, jwks_file: './k.json' },
        { ...issuer, name: 'c', issuer: 'https://c', jwks_uri: 'http://c.example.com/jwks' },
        { ...issuer, name: 'd', issuer: 'https://d', algorithms: ['none', 'HS256'] },
      ],
      upstream: { claim_headers: { 'x-user-id': 'sub' }, token: { issuer: 'https://i', ttl_seconds: 'x' } },
      server: { grpc_addres: 'x' },
      log: { level: 'loud' },
    });
    expect(p).toEqual(
      expect.arrayContaining([
        'issuers[0].audiences: required',
        expect.stringMatching(/^issuers\[0\]\.extra: unknown key/),
        expect.stringMatching(/^upstream\.token\.ttl_seconds: must be an integer/),
        expect.stringMatching(/^server\.grpc_addres: unknown key/),
        expect.stringMatching(/^log\.level: /),
      ]),
    );
  });

  it('checks cross-field rules once the structure is valid', () => {
    const p = problems({
      issuers: [
        { ...issuer, jwks_file: './k.json' },
        { ...issuer, name: 'corp', issuer: 'https://idp.example.com' },
        { ...issuer, name: 'c', issuer: 'https://c', jwks_uri: 'http://c.example.com/jwks' },
        { ...issuer, name: 'd', issuer: 'https://d', algorithms: ['none', 'HS256'] },
        { ...issuer, name: 'self', issuer: 'https://s' },
      ],
    });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^issuers\[0\]: exactly one key source is required/),
        'issuers[1].name: duplicate issuer name "corp"',
        expect.stringMatching(/^issuers\[1\]\.issuer: another issuer already uses/),
        expect.stringMatching(/^issuers\[2\]\.jwks_uri: http:\/\/ is only allowed for loopback hosts/),
        expect.stringMatching(/^issuers\[3\]\.algorithms\[0\]: unsupported algorithm "none"/),
        expect.stringMatching(/^issuers\[3\]\.algorithms\[1\]: HS256 needs secret_file/),
        expect.stringMatching(/^issuers\[4\]\.name: "self" is reserved/),
      ]),
    );
  });

  it('allows http:// JWKS on loopback and with insecure_http', () => {
    expect(problems({ issuers: [{ ...issuer, jwks_uri: 'http://127.0.0.1:8080/jwks' }] })).toEqual([]);
    expect(
      problems({ issuers: [{ ...issuer, jwks_uri: 'http://idp.internal/jwks', insecure_http: true }] }),
    ).toEqual([]);
  });

  it('a query token source must be a plain parameter name (it is matched and stripped raw)', () => {
    expect(problems({ issuers: [issuer], token_sources: [{ query: 'access_token' }] })).toEqual([]);
    for (const name of ['acc%65ss_token', 'a&b', 'a=b', 'a b', 'a+b', 'a#b']) {
      expect(problems({ issuers: [issuer], token_sources: [{ query: name }] })).toEqual([
        expect.stringMatching(/^token_sources\[0\]\.query: ".*" must be a plain parameter name/),
      ]);
    }
  });

  it('rejects a non-object document', () => {
    expect(problems([1, 2])).toEqual(['(root): the configuration must be a map of keys']);
  });

  it('loads the shipped example config', () => {
    const loaded = loadConfigFile(new URL('../../../examples/config.yaml', import.meta.url).pathname, {});
    expect(loaded.config.issuers.length).toBeGreaterThan(0);
  });

  it('refuses grant_issuers naming no issuer, and an issuer entry using our own token endpoint issuer', () => {
    const p = problems({
      issuers: [issuer, { ...issuer, name: 'mine', issuer: 'https://authz' }],
      token_endpoint: {
        enabled: true,
        issuer: 'https://authz',
        audience: 'https://authz/token',
        grant_issuers: ['nope'],
      },
    });
    expect(p).toEqual([
      'issuers[1].issuer: "https://authz" is this service\'s own token endpoint issuer (token_endpoint.issuer)',
      'token_endpoint.grant_issuers[0].issuer: no issuer named "nope"',
    ]);
  });

  it('refuses require on allow/deny rules and a per-worker memory store for the token endpoint', () => {
    const p = problems({
      issuers: [issuer],
      rules: [{ match: { path_prefix: '/admin' }, action: 'allow', require: { scopes_all: ['admin'] } }],
      server: { workers: 2 },
      token_endpoint: { enabled: true, issuer: 'https://authz', audience: 'https://authz/token' },
    });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^rules\[0\]\.require: only applies to action "authenticate"/),
        expect.stringMatching(
          /^store\.type: with server\.workers > 1 the token endpoint needs a shared store/,
        ),
      ]),
    );
  });
});

describe('server.drain_delay_seconds', () => {
  it('defaults to 5; 0 turns it off; anything but a whole number of seconds is refused by path', () => {
    expect(validateConfig({ issuers: [issuer] }, {}).server.drain_delay_seconds).toBe(5);
    expect(
      validateConfig({ issuers: [issuer], server: { drain_delay_seconds: 0 } }, {}).server
        .drain_delay_seconds,
    ).toBe(0);
    for (const bad of [-1, 1.5, 'soon'])
      expect(problems({ issuers: [issuer], server: { drain_delay_seconds: bad } })).toEqual([
        expect.stringMatching(/^server\.drain_delay_seconds: /),
      ]);
  });
});

describe('listen addresses', () => {
  const withServer = (server: Record<string, unknown>) => problems({ issuers: [issuer], server });

  it('accepts HOST:PORT with a port 0-65535, bracketed IPv6, and unix: for gRPC', () => {
    expect(withServer({ grpc_address: '0.0.0.0:0', http_address: 'localhost:65535' })).toEqual([]);
    expect(withServer({ grpc_address: '[::1]:9001', http_address: '[::]:9002' })).toEqual([]);
    expect(withServer({ grpc_address: 'unix:/run/authz.sock' })).toEqual([]);
  });

  it('names the field of every bad address, from the file or the environment', () => {
    expect(withServer({ grpc_address: '127.0.0.1:99999', http_address: 'localhost:abc' })).toEqual([
      expect.stringMatching(/^server\.grpc_address: "127\.0\.0\.1:99999": the port must be .*65535/),
      expect.stringMatching(/^server\.http_address: "localhost:abc": the port must be/),
    ]);
    expect(problems({ issuers: [issuer] }, { AUTHZ_HTTP_ADDRESS: '9002' })).toEqual([
      expect.stringMatching(/^server\.http_address: "9002": expected HOST:PORT$/),
    ]);
    expect(withServer({ http_address: 'unix:/run/x.sock' })[0]).toMatch(/^server\.http_address: .*unix/);
    expect(withServer({ grpc_address: ':9001' })[0]).toMatch(/^server\.grpc_address: .*host is missing/);
    expect(withServer({ grpc_address: '[zz]:1' })[0]).toMatch(/not an IPv6 address/);
    expect(withServer({ grpc_address: 'a b:1' })[0]).toMatch(/not a host name/);
    expect(withServer({ grpc_address: '127.0.0.1:9001', http_address: '127.0.0.1:9001' })).toEqual([
      expect.stringMatching(/^server\.http_address: .*also server\.grpc_address/),
    ]);
  });
});

describe('token_endpoint.dpop', () => {
  it('defaults to required: false and names the field of a bad value or an unknown key', () => {
    expect(validateConfig({ issuers: [issuer] }, {}).token_endpoint.dpop).toEqual({ required: false });
    expect(
      validateConfig({ issuers: [issuer], token_endpoint: { dpop: { required: true } } }, {}).token_endpoint
        .dpop.required,
    ).toBe(true);
    expect(
      problems({ issuers: [issuer], token_endpoint: { dpop: { required: 'sometimes' } } }).some((p) =>
        p.startsWith('token_endpoint.dpop.required'),
      ),
    ).toBe(true);
    expect(
      problems({ issuers: [issuer], token_endpoint: { dpop: { nonce: true } } }).some((p) =>
        p.startsWith('token_endpoint.dpop.nonce'),
      ),
    ).toBe(true);
  });
});
