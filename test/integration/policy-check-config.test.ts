// check-config lists every policy problem in one run (rules, token profiles, metadata).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { policyConfig } from '../helpers/policy.js';

const MAIN = new URL('../../dist/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'authz-policy-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('check-config with policies', () => {
  it('exits 1 listing expression, deny_response, token profile and metadata problems together', () => {
    const file = join(dir, 'config.json');
    writeFileSync(
      file,
      JSON.stringify(
        policyConfig({
          rules: [
            { name: 'a', match: {}, require: { expression: "claims.sub == 'x' &&" } },
            {
              name: 'b',
              match: {},
              deny_response: { body: '{secret}' },
              token: { claims_expr: { jti: 'issuer' } },
            },
          ],
          upstream: {
            token: { issuer: 'https://authz.internal', claims_expr: { n: 'nope' } },
            dynamic_metadata: { tenant: 'claims.org.' },
          },
        }),
      ),
    );
    const r = spawnSync(process.execPath, [MAIN, 'check-config', '--config', file], {
      encoding: 'utf8',
      timeout: 20000,
      env: { ...process.env, AUTHZ_LOG_LEVEL: 'error' },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/rules\[0\]\.require\.expression \(rule "a"\): syntax error: .* at position 20/);
    expect(r.stderr).toContain('rules[1].deny_response.body: unknown placeholder "{secret}"');
    expect(r.stderr).toMatch(/rules\[1\]\.token\.claims_expr\.jti: reserved/);
    expect(r.stderr).toMatch(/upstream\.token\.claims_expr\.n: type error: Unknown variable: nope/);
    expect(r.stderr).not.toContain('rules[2].token');
    expect(r.stderr).toMatch(/upstream\.dynamic_metadata\.tenant: syntax error/);
  });
});
