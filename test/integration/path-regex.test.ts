// path_regex with RE2 through the real gRPC service and the CLI: what RE2 does not accept
// is a config error naming the field, the rule and the pattern (serve and check-config
// exit 1), and a long attack path on a regex route is answered at once while other checks
// keep their answers.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import {
  closePolicyServices,
  policyConfig,
  startPolicyService,
  startupProblems,
  token,
} from '../helpers/policy.js';

afterAll(closePolicyServices);

const MAIN = new URL('../../dist/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'authz-path-regex-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PROFILE_ROUTE = '/users/[a-z0-9]+[a-z0-9._-]*[a-z0-9]+';

describe('path_regex patterns RE2 does not accept', () => {
  it('are startup problems naming the field, the rule and the pattern', async () => {
    const problems = await startupProblems({
      rules: [
        { name: 'back', match: { path_regex: '/(a)/\\1' }, action: 'deny' },
        { name: 'ahead', match: { path_regex: '/(?!public).*' }, action: 'deny' },
        { match: { path_regex: '(?<=/api)/admin' }, action: 'deny' },
      ],
    });
    const text = problems.join('\n');
    expect(text).toMatch(
      /rules\[0\]\.match\.path_regex: pattern '\/\(a\)\/\\1' is not accepted by RE2: invalid escape sequence: `\\1` \(rule "back"\)/,
    );
    expect(text).toMatch(
      /rules\[1\]\.match\.path_regex: pattern '\/\(\?!public\)\.\*' is not accepted by RE2: invalid or unsupported Perl syntax: `\(\?!` \(rule "ahead"\)/,
    );
    expect(text).toMatch(
      /rules\[2\]\.match\.path_regex: pattern '\(\?<=\/api\)\/admin' is not accepted by RE2/,
    );
  });

  it('make check-config and serve exit 1, listing the field and the pattern', () => {
    const file = join(dir, 'lookahead.json');
    writeFileSync(
      file,
      JSON.stringify(
        policyConfig({ rules: [{ name: 'admin', match: { path_regex: '/(?=admin).*' }, action: 'deny' }] }),
      ),
    );
    const env = {
      ...process.env,
      AUTHZ_LOG_LEVEL: 'error',
      AUTHZ_GRPC_ADDRESS: '127.0.0.1:0',
      AUTHZ_HTTP_ADDRESS: '127.0.0.1:0',
    };
    const want =
      /rules\[0\]\.match\.path_regex: pattern '\/\(\?=admin\)\.\*' is not accepted by RE2: invalid or unsupported Perl syntax: `\(\?=` \(rule "admin"\)/;
    for (const command of ['check-config', 'serve']) {
      const r = spawnSync(process.execPath, [MAIN, command, '--config', file], {
        encoding: 'utf8',
        timeout: 20000,
        env,
      });
      expect(r.status, `${command}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(want);
    }
  });
});

describe('a long attack path on a path_regex route', () => {
  it('is decided in milliseconds; the checks around it keep their answers', async () => {
    const svc = await startPolicyService({
      rules: [
        { name: 'profiles', match: { path_regex: PROFILE_ROUTE }, action: 'allow' },
        { name: 'api', match: { path_separated_prefix: '/api' } },
      ],
    });
    const t = await token();
    const attackPath = `/users/${'a'.repeat(3000)}!`;
    // Best of three: the bound is about the engine, not about a scheduling pause.
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      const [attack, profile, api, anonymous] = await Promise.all([
        svc.check({ path: attackPath }),
        svc.check({ path: '/users/alice.smith' }),
        svc.check({ token: t, path: '/api/orders' }),
        svc.check({ path: '/api/orders' }),
      ]);
      best = Math.min(best, performance.now() - start);
      // No rule matches the attack path: the default, authenticate, wants a token.
      expect(attack).toMatchObject({ decision: 'deny', http_status: 401 });
      expect(profile.decision).toBe('allow');
      expect(api.decision).toBe('allow');
      expect(anonymous).toMatchObject({ decision: 'deny', http_status: 401 });
    }
    // A JS RegExp takes about 10 s on the attack path alone.
    expect(best).toBeLessThan(500);
  });
});
