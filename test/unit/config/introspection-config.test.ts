import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectConfigFile, validateConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/errors.js';

const introspection = {
  endpoint: 'https://idp.example.com/oauth2/introspect',
  client_id: 'authz',
  client_secret_file: 'idp.secret',
};
const issuer = { name: 'legacy', issuer: 'https://idp.example.com', audiences: ['api'], introspection };

function problems(input: unknown): string[] {
  try {
    validateConfig(input, {});
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

const dir = mkdtempSync(join(tmpdir(), 'introspection-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('issuers[].introspection', () => {
  it('fills defaults; an introspected issuer requires no claims unless told', () => {
    const c = validateConfig({ issuers: [issuer] }, {});
    expect(c.issuers[0]!.introspection).toEqual({ ...introspection, cache_seconds: 60, timeout_ms: 2000 });
    expect(c.issuers[0]!.required_claims).toEqual([]);
    const jwt = validateConfig(
      { issuers: [{ ...issuer, introspection: undefined, jwks_uri: 'https://idp.example.com/jwks' }] },
      {},
    );
    expect(jwt.issuers[0]!.required_claims).toEqual(['iss', 'sub', 'iat', 'exp']);
  });

  it('is one of the mutually exclusive key sources', () => {
    expect(problems({ issuers: [{ ...issuer, jwks_uri: 'https://idp.example.com/jwks' }] })).toEqual([
      expect.stringMatching(
        /^issuers\[0\]: exactly one key source is required .*got jwks_uri, introspection$/,
      ),
    ]);
  });

  it('names the field of each problem', () => {
    const p = problems({
      issuers: [
        {
          ...issuer,
          introspection: { endpoint: 'http://idp.example.com/i', client_id: 'a', client_secret_file: 's' },
        },
        {
          ...issuer,
          name: 'b',
          issuer: 'https://b',
          introspection: { endpoint: 'https://b/i', client_secret_file: 's', cache_seconds: -1, extra: 1 },
        },
      ],
    });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^issuers\[1\]\.introspection\.client_id: /),
        expect.stringMatching(/^issuers\[1\]\.introspection\.cache_seconds: /),
        expect.stringMatching(/^issuers\[1\]\.introspection\.extra: /),
      ]),
    );
    expect(
      problems({
        issuers: [
          { ...issuer, introspection: { ...introspection, endpoint: 'http://idp.example.com/introspect' } },
        ],
      }),
    ).toEqual([
      expect.stringMatching(/^issuers\[0\]\.introspection\.endpoint: http:\/\/ is only allowed for loopback/),
    ]);
    expect(
      problems({
        issuers: [
          {
            ...issuer,
            insecure_http: true,
            introspection: { ...introspection, endpoint: 'http://idp.example.com/introspect' },
          },
        ],
      }),
    ).toEqual([]);
  });

  it('check-config reads client_secret_file', () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ issuers: [issuer] }));
    expect(inspectConfigFile(file).problems).toEqual([
      expect.stringMatching(/^issuers\[0\]\.introspection\.client_secret_file: cannot read idp\.secret/),
    ]);
    writeFileSync(join(dir, 'idp.secret'), 'secret\n');
    expect(inspectConfigFile(file).problems).toEqual([]);
  });
});
