// cors_preflight: allow lets a CORS preflight (OPTIONS with Origin and
// Access-Control-Request-Method) through without a token, before any rule, as Envoy's
// jwt_authn does; a plain OPTIONS, and every preflight under the default, meet the rules.
// Through the real gRPC Check, with the decision's log line and metric.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { config, corpToken } from '../helpers/authz.js';
import { startTestService, type TestService } from '../helpers/harness.js';

const RULES = [
  { name: 'blocked', match: { path_prefix: '/internal' }, action: 'deny' },
  { name: 'orders', match: { path_prefix: '/api' }, require: { scopes_all: ['orders:read'] } },
];
const PREFLIGHT = { origin: 'https://app.example.com', 'access-control-request-method': 'POST' };

let allow: TestService;
let standard: TestService;

beforeAll(async () => {
  [allow, standard] = await Promise.all([
    startTestService(config({ rules: RULES, cors_preflight: 'allow' })),
    startTestService(config({ rules: RULES })),
  ]);
});

afterAll(async () => {
  await Promise.all([allow?.close(), standard?.close()]);
});

describe('cors_preflight: allow', () => {
  it('a preflight passes without a token, before any rule (a deny rule too), and nothing is added', async () => {
    for (const path of ['/api/orders', '/internal/x']) {
      const d = await allow.check({ method: 'OPTIONS', path, headers: PREFLIGHT });
      expect(d.decision, `${path}: ${JSON.stringify(d)}`).toBe('allow');
      expect(d.dynamic_metadata ?? {}).toEqual({});
      expect(Object.keys(d.headers)).toEqual([]);
    }
  });

  it('a token sent with a preflight is not verified, and not forwarded', async () => {
    const d = await allow.check({ method: 'OPTIONS', token: 'not.a.jwt', headers: PREFLIGHT });
    expect(d.decision).toBe('allow');
    expect(d.headers_to_remove).toContain('authorization');
  });

  it('is logged and counted as an allow with reason cors_preflight', async () => {
    await allow.check({ method: 'OPTIONS', headers: { ...PREFLIGHT, 'x-request-id': 'preflight-1' } });
    const line = allow.logs.lines.find((l) => l.request_id === 'preflight-1');
    expect(line).toMatchObject({ msg: 'check allowed', decision: 'allow', reason: 'cors_preflight' });
    const text = await (await fetch(`${allow.httpUrl}/metrics`)).text();
    expect(text).toMatch(/authz_check_total\{[^}]*decision="allow"[^}]*reason="cors_preflight"[^}]*\} [1-9]/);
  });

  it('a plain OPTIONS, or one missing either header (or with it empty), meets the rules', async () => {
    const cases: Record<string, string>[] = [
      {},
      { origin: PREFLIGHT.origin },
      { 'access-control-request-method': 'POST' },
      { origin: '', 'access-control-request-method': 'POST' },
    ];
    for (const headers of cases) {
      const d = await allow.check({ method: 'OPTIONS', headers });
      expect(d.reason, JSON.stringify(headers)).toBe('token_missing');
    }
    expect((await allow.check({ method: 'OPTIONS', path: '/internal/x' })).reason).toBe('rule_deny');
  });

  it('only OPTIONS: a GET with the preflight headers needs its token', async () => {
    const d = await allow.check({ method: 'GET', headers: PREFLIGHT });
    expect(d.reason).toBe('token_missing');
    const ok = await allow.check({
      method: 'GET',
      token: await corpToken({ scope: 'orders:read' }),
      headers: PREFLIGHT,
    });
    expect(ok.decision, JSON.stringify(ok)).toBe('allow');
    expect(ok.dynamic_metadata?.issuer).toBe('corp');
  });

  it('an ambiguous path is still refused first', async () => {
    const d = await allow.check({ method: 'OPTIONS', path: '/api;x/orders', headers: PREFLIGHT });
    expect(d.reason).toBe('request_invalid');
  });
});

describe('cors_preflight: authenticate (the default)', () => {
  it('a preflight meets the rules like any request', async () => {
    expect((await standard.check({ method: 'OPTIONS', headers: PREFLIGHT })).reason).toBe('token_missing');
    expect(
      (await standard.check({ method: 'OPTIONS', path: '/internal/x', headers: PREFLIGHT })).reason,
    ).toBe('rule_deny');
  });

  it('a value other than allow or authenticate is a config error naming the field', () => {
    let problems: string[] = [];
    try {
      validateConfig(config({ cors_preflight: 'yes' }), {});
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems = err.problems;
    }
    expect(problems).toEqual([expect.stringContaining('cors_preflight')]);
  });
});
