// The keys file reader and the key check of api_keys (src/authn/api-keys.ts).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { API_KEY_PREFIX, apiKeyHash, generateApiKey, parseApiKeys } from '../../../src/authn/api-keys.js';

const k = generateApiKey();

describe('generateApiKey / apiKeyHash', () => {
  it('a key is the prefix and 32 random bytes in base64url; its hash is sha256:<base64url>', () => {
    expect(k.key.startsWith(API_KEY_PREFIX)).toBe(true);
    expect(Buffer.from(k.key.slice(API_KEY_PREFIX.length), 'base64url')).toHaveLength(32);
    expect(k.hash).toBe(`sha256:${createHash('sha256').update(k.key).digest('base64url')}`);
    expect(apiKeyHash(k.key)).toBe(k.hash);
    expect(generateApiKey().key).not.toBe(k.key);
  });
});

describe('parseApiKeys', () => {
  it('reads JSON and YAML, a list or {keys: [...]}, and builds the principal of each entry', () => {
    const json = JSON.stringify({
      keys: [
        { id: 'a', hash: k.hash, sub: 's', scopes: ['x', 'y'], claims: { tenant: 't', sub: 'ignored' } },
      ],
    });
    const yaml = `- id: a\n  hash: ${k.hash}\n  sub: s\n  scopes: [x, y]\n  claims: { tenant: t }\n  expires_at: 2030-01-01T00:00:00Z\n`;
    for (const text of [json, yaml]) {
      const { entries, problems } = parseApiKeys(text, 'partners', 1);
      expect(problems).toEqual([]);
      const e = entries.get(k.hash.slice('sha256:'.length))!;
      expect(e.id).toBe('a');
      expect(e.principal).toMatchObject({ issuer: 'partners', sub: 's', scope: 'x y' });
      expect([...e.principal.scopes]).toEqual(['x', 'y']);
      // sub and scope are the entry's, whatever claims says.
      expect({ ...e.principal.claims }).toEqual({ tenant: 't', sub: 's', scope: 'x y' });
      expect(e.principal.cacheKey).not.toContain(k.key);
    }
    const dated = parseApiKeys(yaml, 'p', 1).entries.values().next().value!;
    expect(dated.expiresAt).toBe(Date.parse('2030-01-01T00:00:00Z') / 1000);
    expect(dated.principal.exp).toBe(dated.expiresAt);
  });

  it('names each bad entry and field', () => {
    const { problems } = parseApiKeys(
      JSON.stringify([
        { id: 'a', hash: k.hash, sub: 's' },
        {
          id: 'a',
          hash: k.hash,
          sub: '',
          scopes: 'x y',
          claims: [],
          expires_at: 'soon',
          disabled: 'no',
          x: 1,
        },
        { id: 'c', hash: 'sha256:' + 'A'.repeat(44), sub: 's' },
        { hash: `sha256:${k.hash.slice(7)}=`, sub: 's' },
        'str',
      ]),
      'p',
      1,
    );
    expect(problems).toEqual([
      'keys[1] (id "a").x: unknown key (allowed: id, hash, sub, scopes, claims, expires_at, disabled)',
      'keys[1] (id "a").id: duplicate id "a"',
      'keys[1] (id "a").hash: the same hash is listed twice',
      'keys[1] (id "a").sub: must be a non-empty string',
      'keys[1] (id "a").scopes: must be a list of scope names (no spaces)',
      'keys[1] (id "a").claims: must be an object',
      'keys[1] (id "a").expires_at: must be a date (ISO 8601) or seconds since the epoch',
      'keys[1] (id "a").disabled: must be true or false',
      'keys[2] (id "c").hash: must be "sha256:" and the base64url SHA-256 of the key (43 characters)',
      'keys[3].id: must be a non-empty string',
      'keys[3].hash: must be "sha256:" and the base64url SHA-256 of the key (43 characters)',
      'keys[4]: must be an object',
    ]);
  });

  it('refuses a document that is not a list of keys, YAML aliases and duplicate keys', () => {
    expect(parseApiKeys('{"keys": {}}', 'p', 1).problems).toEqual([
      'must be a list of keys, or an object with one "keys" list',
    ]);
    expect(parseApiKeys('keys: []\nother: 1\n', 'p', 1).problems).toHaveLength(1);
    expect(parseApiKeys('a: &x [1]\nkeys: *x\n', 'p', 1).problems[0]).toMatch(/^not valid YAML or JSON/);
    expect(parseApiKeys('keys: []\nkeys: []\n', 'p', 1).problems[0]).toMatch(/^not valid YAML or JSON/);
    expect(parseApiKeys('keys: [\n', 'p', 1).problems[0]).toMatch(/^not valid YAML or JSON/);
    expect(parseApiKeys('keys: []', 'p', 1)).toEqual({ entries: new Map(), problems: [] });
  });
});
