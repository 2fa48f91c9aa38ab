// rate_limits through Check: exact counts, headers, filters, keys, the memoised
// fast path, denials, store failure modes, and exactness across two services
// sharing one Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closePolicyServices,
  policyConfig,
  startPolicyService,
  startupProblems,
  token,
} from '../helpers/policy.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigObject } from '../../src/config/load.js';
import type { RedisStore } from '../../src/store/index.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { getRedisUrl, RedisServerProcess, redisServerOnPath, uniquePrefix } from '../helpers/redis.js';

afterAll(closePolicyServices);

const perClient = (extra: Record<string, unknown> = {}) => ({
  name: 'per-client',
  limit: 10,
  window_seconds: 60,
  ...extra,
});

const apiRules = [
  { name: 'api', match: { path_prefix: '/api' } },
  { name: 'other', match: { path_prefix: '/other' } },
  { name: 'needs-admin', match: { path_prefix: '/admin' }, require: { scopes_all: ['admin'] } },
  { name: 'open', match: { path_prefix: '/public' }, action: 'allow' },
  { name: 'maybe', match: { path_prefix: '/maybe' }, action: 'optional' },
];

function count(results: { decision: string }[]) {
  return {
    allowed: results.filter((r) => r.decision === 'allow').length,
    denied: results.filter((r) => r.decision === 'deny').length,
  };
}

describe('rate_limits through Check (memory store)', () => {
  it('12 concurrent requests of one client with limit 10: exactly 10 allowed, then 429 with headers', async () => {
    const svc = await startPolicyService({ rules: apiRules, rate_limits: [perClient()] });
    const t = await token();
    const results = await Promise.all(Array.from({ length: 12 }, () => svc.check({ token: t })));
    expect(count(results)).toEqual({ allowed: 10, denied: 2 });
    const denied = results.find((r) => r.decision === 'deny')!;
    expect(denied.grpc_status).toBe(8);
    expect(denied.http_status).toBe(429);
    expect(denied.reason).toBe('rate_limited');
    expect(denied.body).toEqual({ error: 'rate_limited' });
    expect(denied.headers['content-type']).toBe('application/json');
    const retry = Number(denied.headers['retry-after']);
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    expect(denied.headers['ratelimit-policy']).toBe('"per-client";q=10;w=60');
    expect(denied.headers.ratelimit).toBe(`"per-client";r=0;t=${retry}`);
    // Every allowed answer tells the client its remaining quota: 9..0, each once.
    const remaining = results
      .filter((r) => r.decision === 'allow')
      .map((r) => Number(/;r=(\d+);/.exec(r.response_headers!.ratelimit!)![1]))
      .sort((a, b) => a - b);
    expect(remaining).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const r of results.filter((x) => x.decision === 'allow'))
      expect(r.response_headers!['ratelimit-policy']).toBe('"per-client";q=10;w=60');
    const metrics = await (await fetch(`${svc.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/authz_rate_limited_total\{limit="per-client"\} 2/);
  });

  it('counts memoised (repeated-token) allows on every request, with fresh headers each time', async () => {
    const svc = await startPolicyService({ rules: apiRules, rate_limits: [perClient({ limit: 5 })] });
    const t = await token();
    const seen: string[] = [];
    const decisions: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await svc.check({ token: t });
      decisions.push(r.decision);
      if (r.decision === 'allow') seen.push(r.response_headers!.ratelimit!);
    }
    expect(decisions).toEqual(['allow', 'allow', 'allow', 'allow', 'allow', 'deny', 'deny', 'deny']);
    expect(seen.map((h) => /r=(\d+)/.exec(h)![1])).toEqual(['4', '3', '2', '1', '0']);
    // The repeated requests were served from the verified-token cache (the fast path): all
    // but the first two (a token is cached at its second use: admission).
    const metrics = await (await fetch(`${svc.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/authz_cache_hits_total\{cache="verified_token"\} 6/);
    // The allow still carries its claim metadata alongside the per-request headers.
    const raw = await svc.checkRaw({ token: await token({ sub: 'carol' }) });
    const again = await svc.checkRaw({ token: await token({ sub: 'carol' }) });
    for (const res of [raw, again]) {
      expect(res.ok_response.headers_to_remove).toContain('authorization');
      expect(res.dynamic_metadata.fields.sub.stringValue).toBe('carol');
    }
  });

  it('keeps separate counters per subject (default key: issuer + sub)', async () => {
    const svc = await startPolicyService({ rules: apiRules, rate_limits: [perClient({ limit: 2 })] });
    const alice = await token({ sub: 'alice' });
    const bob = await token({ sub: 'bob' });
    const a = await Promise.all([1, 2, 3].map(() => svc.check({ token: alice })));
    const b = await Promise.all([1, 2, 3].map(() => svc.check({ token: bob })));
    expect(count(a)).toEqual({ allowed: 2, denied: 1 });
    expect(count(b)).toEqual({ allowed: 2, denied: 1 });
  });

  it('applies only to the listed rules, and only when "when" holds', async () => {
    const svc = await startPolicyService({
      rules: apiRules,
      rate_limits: [perClient({ limit: 1, rules: ['api'], when: "!('admin' in scopes)" })],
    });
    const t = await token();
    expect((await svc.check({ token: t, path: '/api/a' })).decision).toBe('allow');
    expect((await svc.check({ token: t, path: '/api/a' })).reason).toBe('rate_limited');
    // Another rule: not limited, no RateLimit headers.
    for (let i = 0; i < 3; i++) {
      const r = await svc.check({ token: t, path: '/other/x' });
      expect(r.decision).toBe('allow');
      expect(r.response_headers).toBeUndefined();
    }
    // The filter exempts admins.
    const admin = await token({ sub: 'root', scope: 'read admin' });
    for (let i = 0; i < 3; i++)
      expect((await svc.check({ token: admin, path: '/api/a' })).decision).toBe('allow');
  });

  it('keys by a CEL expression, falling back to issuer + sub (warned once) when it yields no string', async () => {
    const svc = await startPolicyService({
      rules: apiRules,
      rate_limits: [perClient({ limit: 2, key: 'claims.client_id' })],
    });
    // Two users of one client share its quota.
    const u1 = await token({ sub: 'u1', client_id: 'app-1' });
    const u2 = await token({ sub: 'u2', client_id: 'app-1' });
    expect((await svc.check({ token: u1 })).decision).toBe('allow');
    expect((await svc.check({ token: u2 })).decision).toBe('allow');
    expect((await svc.check({ token: u1 })).reason).toBe('rate_limited');
    // No client_id (evaluation error) or an empty one: each subject counts on its own.
    const n1 = await token({ sub: 'n1' });
    const n2 = await token({ sub: 'n2', client_id: '' });
    expect(count(await Promise.all([1, 2, 3].map(() => svc.check({ token: n1 }))))).toEqual({
      allowed: 2,
      denied: 1,
    });
    expect(count(await Promise.all([1, 2, 3].map(() => svc.check({ token: n2 }))))).toEqual({
      allowed: 2,
      denied: 1,
    });
    const warnings = svc.logs.lines.filter((l) => l.rate_limit === 'per-client' && l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(svc.logs.lines)).not.toContain(n1);
  });

  it("a key expression does not see the token sources' own headers (as no expression does)", async () => {
    const svc = await startPolicyService({
      token_sources: [{ header: 'x-api-token', prefix: '' }],
      rules: apiRules,
      // Were the header visible, each token would be its own key and both requests allowed.
      rate_limits: [
        perClient({
          limit: 1,
          key: "'x-api-token' in request.headers ? request.headers['x-api-token'] : 'hidden'",
        }),
      ],
    });
    const u1 = await token({ sub: 'u1' });
    const u2 = await token({ sub: 'u2' });
    expect((await svc.check({ headers: { 'x-api-token': u1 } })).decision).toBe('allow');
    expect((await svc.check({ headers: { 'x-api-token': u2 } })).reason).toBe('rate_limited');
  });

  it('never counts denials, allow rules or anonymous optional requests', async () => {
    const svc = await startPolicyService({ rules: apiRules, rate_limits: [perClient({ limit: 2 })] });
    const t = await token();
    for (let i = 0; i < 5; i++) {
      expect((await svc.check({ token: t, path: '/admin/x' })).reason).toBe('insufficient_scope');
      const pub = await svc.check({ token: t, path: '/public/x' });
      expect(pub.decision).toBe('allow');
      expect(pub.response_headers).toBeUndefined();
      const anon = await svc.check({ path: '/maybe/x' });
      expect(anon.decision).toBe('allow');
      expect(anon.response_headers).toBeUndefined();
    }
    expect((await svc.check({ token: t })).decision).toBe('allow');
    expect((await svc.check({ token: t, path: '/maybe/x' })).decision).toBe('allow');
    expect((await svc.check({ token: t })).reason).toBe('rate_limited');
  });

  it('refuses bad rate_limits at startup, naming the field', async () => {
    const problems = await startupProblems({
      rules: apiRules,
      rate_limits: [
        { name: 'a', limit: 0, window_seconds: 60 },
        { name: 'b', limit: 5, window_seconds: 0 },
        { name: 'c', limit: 5, window_seconds: 60, rules: ['nope'] },
        { name: 'd', limit: 5, window_seconds: 60, key: 'claims.' },
      ],
    });
    const text = problems.join('\n');
    expect(text).toMatch(/rate_limits\[0\]\.limit: must be >= 1/);
    expect(text).toMatch(/rate_limits\[1\]\.window_seconds: must be >= 1/);
    const dup = await startupProblems({
      rate_limits: [perClient(), perClient()],
      rate_limits_fail: 'sometimes',
    });
    expect(dup.join('\n')).toMatch(/rate_limits_fail/);
    const dup2 = await startupProblems({ rate_limits: [perClient(), perClient()] });
    expect(dup2.join('\n')).toMatch(/rate_limits\[1\]\.name: duplicate rate limit name "per-client"/);
    const later = await startupProblems({
      rules: apiRules,
      rate_limits: [
        { name: 'c', limit: 5, window_seconds: 60, rules: ['nope'] },
        { name: 'd', limit: 5, window_seconds: 60, key: 'claims.' },
        { name: 'e', limit: 5, window_seconds: 60, when: "'x'" },
        { name: 'bad name', limit: 5, window_seconds: 60 },
      ],
    });
    const t2 = later.join('\n');
    expect(t2).toMatch(/rate_limits\[0\]\.rules\[0\]: no rule is named "nope"/);
    expect(t2).toMatch(/rate_limits\[1\]\.key: syntax error/);
    expect(t2).toMatch(/rate_limits\[2\]\.when: must return a boolean/);
    expect(t2).toMatch(/rate_limits\[3\]\.name/);
  });
});

describe('rate_limits: check-config and reload', () => {
  it('check-config exits 1 listing every rate limit problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'authz-rl-cli-'));
    try {
      const file = join(dir, 'config.json');
      writeFileSync(
        file,
        JSON.stringify(
          policyConfig({
            rules: apiRules,
            rate_limits: [
              perClient({ rules: ['api', 'ghost'] }),
              perClient({ name: 'k', key: 'claims.' }),
              perClient({ name: 'w', when: '1 + 1' }),
            ],
          }),
        ),
      );
      const main = new URL('../../dist/main.js', import.meta.url).pathname;
      const r = spawnSync(process.execPath, [main, 'check-config', '--config', file], {
        encoding: 'utf8',
        timeout: 20000,
        env: { ...process.env, AUTHZ_LOG_LEVEL: 'error' },
      });
      expect(r.status).toBe(1);
      const out = r.stdout + r.stderr;
      expect(out).toMatch(/rate_limits\[0\]\.rules\[1\]: no rule is named "ghost"/);
      expect(out).toMatch(/rate_limits\[1\]\.key: syntax error/);
      expect(out).toMatch(/rate_limits\[2\]\.when: must return a boolean/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a reload with unchanged store settings keeps the counters', async () => {
    const config = policyConfig({ rules: apiRules, rate_limits: [perClient({ limit: 2 })] });
    const svc = await startTestService(config);
    try {
      const t = await token({ sub: 'reloaded' });
      expect((await svc.check({ token: t })).decision).toBe('allow');
      await svc.service.reload(
        loadConfigObject({ ...config, rate_limits: [perClient({ limit: 3 })] }, process.cwd(), {}),
      );
      // One counted before the reload, one now: the new limit of 3 leaves one.
      expect((await svc.check({ token: t })).response_headers?.ratelimit).toMatch(/;r=1;/);
      expect((await svc.check({ token: t })).decision).toBe('allow');
      expect((await svc.check({ token: t })).reason).toBe('rate_limited');
    } finally {
      await svc.close();
    }
  });
});

describe.skipIf(!redisServerOnPath())('rate_limits_fail with Redis down', () => {
  let redis: RedisServerProcess;
  beforeAll(async () => {
    redis = await RedisServerProcess.start();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('closed (default) answers 503 store_unavailable; open allows and counts the error', async () => {
    const store = { type: 'redis', redis_url: redis.url, key_prefix: uniquePrefix('rl-fail') };
    const closed = await startPolicyService({ rules: apiRules, store, rate_limits: [perClient()] });
    const open = await startPolicyService({
      rules: apiRules,
      store,
      rate_limits: [perClient()],
      rate_limits_fail: 'open',
    });
    // Redis is up: the first checks are counted there (a check before the client has
    // connected would be an outage too, answered by rate_limits_fail).
    for (const svc of [closed, open])
      expect(await (svc.service.current.store as RedisStore).waitUntilReady(5000)).toBe(true);
    const t = await token();
    expect((await closed.check({ token: t })).decision).toBe('allow');
    expect((await open.check({ token: t })).response_headers?.ratelimit).toMatch(/r=8/);
    await redis.stop();
    const c = await closed.check({ token: t });
    expect(c.http_status).toBe(503);
    expect(c.reason).toBe('store_unavailable');
    expect(c.body).toEqual({ error: 'temporarily_unavailable' });
    const o = await open.check({ token: t });
    expect(o.decision).toBe('allow');
    expect(o.response_headers).toBeUndefined();
    const metrics = await (await fetch(`${open.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/authz_rate_limit_errors_total\{limit="per-client",outcome="allowed"\} 1/);
    const cm = await (await fetch(`${closed.httpUrl}/metrics`)).text();
    expect(cm).toMatch(/authz_rate_limit_errors_total\{limit="per-client",outcome="denied"\} 1/);
  }, 30_000);
});

describe('rate_limits on a shared Redis', () => {
  let handle: Awaited<ReturnType<typeof getRedisUrl>>;
  const services: TestService[] = [];
  beforeAll(async () => {
    handle = await getRedisUrl();
  });
  afterAll(async () => {
    await Promise.all(services.map((s) => s.close()));
    await handle?.stop();
  });

  it('two services under concurrent load allow exactly the limit in total', async (ctx) => {
    if (!handle) return ctx.skip();
    const config = policyConfig({
      rules: apiRules,
      store: { type: 'redis', redis_url: handle.url, key_prefix: uniquePrefix('rl-two') },
      rate_limits: [perClient({ limit: 25 })],
    });
    services.push(await startTestService(config), await startTestService(config));
    const [a, b] = services as [TestService, TestService];
    const t = await token({ sub: 'shared-user' });
    // Interleaved: both services send at once.
    const calls = Array.from({ length: 80 }, (_, i) => (i % 2 === 0 ? a : b).check({ token: t }));
    const results = await Promise.all(calls);
    const ca = count(results.filter((_, i) => i % 2 === 0));
    const cb = count(results.filter((_, i) => i % 2 === 1));
    expect(ca.allowed + cb.allowed).toBe(25);
    expect(ca.denied + cb.denied).toBe(55);
    // One counter for both (per-process counters would have allowed 50): each now refuses.
    expect((await a.check({ token: t })).reason).toBe('rate_limited');
    expect((await b.check({ token: t })).reason).toBe('rate_limited');
  }, 30_000);
});
