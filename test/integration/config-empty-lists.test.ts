// An empty list (or block) where a requirement belongs would silently mean "no
// requirement": `check-config` and `serve` refuse it (exit 1) naming the field path.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { policyConfig } from '../helpers/policy.js';

const MAIN = new URL('../../dist/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'authz-empty-lists-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOKEN = { issuer: 'https://authz.internal', audiences: ['backend'], signing: { alg: 'ES256' } };
const fine = { name: 'fine', match: { path_prefix: '/fine' }, require: { scopes_all: ['read'] } };

/** One config per case: the empty value, and the path it must be reported at. */
const CASES: { what: string; config: Record<string, unknown>; path: string }[] = [
  {
    what: 'require.scopes_any: []',
    config: policyConfig({ rules: [fine, fine, { match: {}, require: { scopes_any: [] } }] }),
    path: 'rules[2].require.scopes_any',
  },
  {
    what: 'require.scopes_all: []',
    config: policyConfig({ rules: [{ match: {}, require: { scopes_all: [] } }] }),
    path: 'rules[0].require.scopes_all',
  },
  {
    what: 'require.issuers: []',
    config: policyConfig({ rules: [{ match: {}, require: { issuers: [] } }] }),
    path: 'rules[0].require.issuers',
  },
  {
    what: 'require.claims.<name>: []',
    config: policyConfig({ rules: [{ match: {}, require: { claims: { role: [] } } }] }),
    path: 'rules[0].require.claims.role',
  },
  {
    what: 'require.claims: {}',
    config: policyConfig({ rules: [{ match: {}, require: { claims: {} } }] }),
    path: 'rules[0].require.claims',
  },
  {
    what: 'require: {}',
    config: policyConfig({ rules: [{ match: {}, require: {} }] }),
    path: 'rules[0].require',
  },
  {
    what: 'a rule token profile audiences: []',
    config: policyConfig({
      rules: [{ match: {}, token: { audiences: [] } }],
      upstream: { token: TOKEN },
    }),
    path: 'rules[0].token.audiences',
  },
  {
    what: 'rate_limits[].rules: []',
    config: policyConfig({
      rules: [fine],
      rate_limits: [{ name: 'l', limit: 1, window_seconds: 60, rules: [] }],
    }),
    path: 'rate_limits[0].rules',
  },
  {
    what: 'issuers[].required_claims: []',
    config: (() => {
      const c = policyConfig();
      (c.issuers as Record<string, unknown>[])[0]!.required_claims = [];
      return c;
    })(),
    path: 'issuers[0].required_claims',
  },
  {
    what: 'upstream.token.allowed_audiences: []',
    config: policyConfig({ upstream: { token: { ...TOKEN, allowed_audiences: [] } } }),
    path: 'upstream.token.allowed_audiences',
  },
];

function run(command: 'check-config' | 'serve', file: string) {
  return spawnSync(process.execPath, [MAIN, command, '--config', file], {
    encoding: 'utf8',
    timeout: 20000,
    env: {
      ...process.env,
      AUTHZ_LOG_LEVEL: 'error',
      AUTHZ_GRPC_ADDRESS: '127.0.0.1:0',
      AUTHZ_HTTP_ADDRESS: '127.0.0.1:0',
    },
  });
}

describe('empty requirement lists are config errors', () => {
  CASES.forEach(({ what, config, path }, i) => {
    it(`${what}: check-config and serve exit 1 with "${path}: must not be empty"`, () => {
      const file = join(dir, `case-${i}.json`);
      writeFileSync(file, JSON.stringify(config));
      for (const command of ['check-config', 'serve'] as const) {
        const r = run(command, file);
        expect(r.status, `${command}: ${r.stdout}${r.stderr}`).toBe(1);
        expect(r.stderr).toContain(`${path}: must not be empty`);
      }
    });
  });

  it('every one of them is listed in a single check-config run', () => {
    const file = join(dir, 'all.json');
    const c = policyConfig({
      rules: [
        { match: {}, require: { scopes_any: [] } },
        { match: {}, require: { scopes_all: [], issuers: [], claims: { role: [] } } },
        { match: {}, require: {} },
      ],
      upstream: { token: { ...TOKEN, allowed_audiences: [] } },
    });
    writeFileSync(file, JSON.stringify(c));
    const r = run('check-config', file);
    expect(r.status).toBe(1);
    for (const path of [
      'rules[0].require.scopes_any',
      'rules[1].require.scopes_all',
      'rules[1].require.issuers',
      'rules[1].require.claims.role',
      'rules[2].require',
      'upstream.token.allowed_audiences',
    ])
      expect(r.stderr).toContain(`${path}: must not be empty`);
  });
});
