// Policies through the real Envoy: an optional route (anonymous and with a token),
// a deny_response login redirect as the client sees it, a configured
// dynamic_metadata field in Envoy's access log, a rule in audit mode (dry run) whose
// would-be denial is allowed and shown in the access log, and regular expressions (a matches()
// check and a path_regex route) that a backtracking engine would take seconds on (the service
// must keep answering).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, type RunningEnvoy } from '../helpers/envoy.js';
import type { TestService } from '../helpers/harness.js';
import { generateEcKeyPair } from '../helpers/keys.js';
import { accessLogEntry, httpGet as get, inlineIssuer, startStack, type Stack } from '../helpers/stack.js';
import { jwtMinter } from '../helpers/tokens.js';

const envoy = await envoyOrSkip('Envoy policies end to end');

const ISSUER = 'https://idp.policy-e2e.test';
const AUDIENCE = 'api://policy-e2e';
const LOGIN = 'https://login.example.com/?next=%2Fapp';
/** An ordinary-looking handle check: cubic backtracking on `aaaa…!` in a JS RegExp. */
const HANDLE_CHECK = "request.headers['x-handle'].matches('^[a-z0-9]+[a-z0-9._-]*[a-z0-9]+$')";
/** The same shape as a route: public profile pages. */
const PROFILE_ROUTE = '/users/[a-z0-9]+[a-z0-9._-]*[a-z0-9]+';
const idpKey = generateEcKeyPair({ kid: 'policy-e2e-1' });

const token = jwtMinter(idpKey, { iss: ISSUER, aud: AUDIENCE, sub: 'alice' });

const serviceConfig = {
  // Above the 10 ms default: this machine is shared and a check can be descheduled for a
  // few ms mid-evaluation; the attack below must be cheap in itself, not fit a tight budget.
  expression_budget_ms: 100,
  issuers: [inlineIssuer(ISSUER, AUDIENCE, idpKey)],
  rules: [
    { name: 'catalog', match: { path_separated_prefix: '/catalog' }, action: 'optional' },
    {
      name: 'app',
      match: { path_separated_prefix: '/app' },
      require: { expression: "has(claims.org) && claims.org.id == 'o1'" },
      deny_response: {
        status: 302,
        headers: { location: LOGIN, 'cache-control': 'no-store' },
        body: 'login required ({error})',
      },
    },
    { name: 'handle', match: { path_separated_prefix: '/handle' }, require: { expression: HANDLE_CHECK } },
    { name: 'profiles', match: { path_regex: PROFILE_ROUTE }, action: 'allow' },
    {
      name: 'beta',
      match: { path_separated_prefix: '/beta' },
      require: { scopes_all: ['beta'] },
      mode: 'audit',
    },
    {
      name: 'closed',
      match: { path_separated_prefix: '/closed' },
      mode: 'audit',
      audit_action: 'deny',
    },
  ],
  upstream: {
    claim_headers: { 'x-user-id': 'sub' },
    dynamic_metadata: { tenant: "has(claims.org) ? claims.org.id : 'none'" },
  },
};

interface TrafficRequest {
  path: string;
  headers: Record<string, string>;
}

/** 20 requests to /handle/me: even ones with a valid handle, odd ones with an invalid one. */
function handleTraffic(bearer: string): TrafficRequest[] {
  return Array.from({ length: 20 }, (_, i) => ({
    path: '/handle/me',
    headers: { authorization: bearer, 'x-handle': i % 2 === 0 ? `alice.smith${i}` : `Bad-${i}!` },
  }));
}

/**
 * In a child process: the requests through Envoy, one every 40 ms, and a /healthz probe
 * with each, timed. Resolves with the statuses in order and the probe times in ms.
 */
function startTraffic(
  port: number,
  healthUrl: string,
  requests: TrafficRequest[],
): { ready: Promise<void>; result: Promise<{ statuses: number[]; healthMs: number[] }> } {
  const script = `
    const [port, healthUrl, requests] = process.argv.slice(1);
    process.stdout.write('ready\\n');
    await new Promise((r) => setTimeout(r, 20));
    const sent = [];
    const healthMs = [];
    for (const { path, headers } of JSON.parse(requests)) {
      sent.push(fetch('http://127.0.0.1:' + port + path, {
        headers,
        signal: AbortSignal.timeout(10000),
      }).then(async (r) => (await r.arrayBuffer(), r.status), () => 0));
      const t = performance.now();
      healthMs.push(fetch(healthUrl, { signal: AbortSignal.timeout(10000) }).then(
        async (r) => (await r.arrayBuffer(), performance.now() - t),
        () => Infinity,
      ));
      await new Promise((r) => setTimeout(r, 40));
    }
    process.stdout.write(JSON.stringify({ statuses: await Promise.all(sent), healthMs: await Promise.all(healthMs) }) + '\\n');
  `;
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', script, String(port), healthUrl, JSON.stringify(requests)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  let markReady: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString('utf8');
    if (out.startsWith('ready\n')) markReady();
  });
  const result = new Promise<{ statuses: number[]; healthMs: number[] }>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last));
      else reject(new Error(`traffic process exited ${code}: ${out}`));
    });
  });
  return { ready, result };
}

describe.skipIf(!envoy)(`Envoy ${envoy?.version ?? ''} → policies`, () => {
  let stack: Stack;
  let svc: TestService;
  let proxy: RunningEnvoy;
  let accessLog: string;

  beforeAll(async () => {
    stack = await startStack(envoy!, {
      config: serviceConfig,
      dirPrefix: 'envoy-policy-e2e-',
      envoy: {
        accessLogFields: {
          authz_tenant: '%DYNAMIC_METADATA(envoy.filters.http.ext_authz:tenant)%',
          authz_anonymous: '%DYNAMIC_METADATA(envoy.filters.http.ext_authz:anonymous)%',
          authz_dry_run: '%DYNAMIC_METADATA(envoy.filters.http.ext_authz:dry_run)%',
          test_id: '%REQ(X-TEST-ID)%',
        },
      },
    });
    ({ service: svc, envoy: proxy } = stack);
    accessLog = join(stack.dir, 'access.log');
  }, 60_000);

  afterAll(() => stack?.stop());

  const logEntry = (id: string) => accessLogEntry(accessLog, id);

  /** Envoy's count of Check calls answered, and of those that failed or timed out (503). */
  async function authzStats(): Promise<{ ok: number; error: number }> {
    const all = await proxy.stats('^http\\.ingress_http\\.ext_authz\\.(ok|error)$');
    return {
      ok: all['http.ingress_http.ext_authz.ok'] ?? 0,
      error: all['http.ingress_http.ext_authz.error'] ?? 0,
    };
  }

  it('optional route: no token reaches the upstream anonymously, without injected identity', async () => {
    const reply = await get(proxy.port, '/catalog/items', { 'x-user-id': 'mallory', 'x-test-id': 'anon-1' });
    expect(reply.status, reply.body).toBe(200);
    const seen = JSON.parse(reply.body);
    expect(seen.headers['x-user-id']).toBeUndefined();
    expect((await logEntry('anon-1'))?.authz_anonymous).toBe(true);
  });

  it('optional route: a valid token is enriched; a bad one is refused with 401', async () => {
    const ok = await get(proxy.port, '/catalog/items', { authorization: `Bearer ${token({})}` });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).headers['x-user-id']).toBe('alice');
    const bad = await get(proxy.port, '/catalog/items', { authorization: 'Bearer not.a.jwt' });
    expect(bad.status).toBe(401);
  });

  it('deny_response: the client gets the 302 login redirect with Location and the custom body', async () => {
    const reply = await get(proxy.port, '/app/home');
    expect(reply.status).toBe(302);
    expect(reply.headers.location).toBe(LOGIN);
    expect(reply.headers['cache-control']).toBe('no-store');
    expect(reply.headers['www-authenticate']).toBe('Bearer realm="envoy-jwt-authz"');
    expect(reply.body).toBe('login required (unauthorized)');
    // The expression's refusal uses the same answer.
    const wrongOrg = await get(proxy.port, '/app/home', {
      authorization: `Bearer ${token({ org: { id: 'o2' } })}`,
    });
    expect(wrongOrg.status).toBe(302);
    expect(wrongOrg.body).toBe('login required (forbidden)');
  });

  it('a 2,000-character attack on a matches() check: concurrent requests all get their own answer, /healthz stays quick', async () => {
    const before = await authzStats();
    const bearer = `Bearer ${token({})}`;
    // The normal traffic and the /healthz probes come from another process, so what they
    // see does not depend on this process's event loop (the service runs in this one).
    const traffic = startTraffic(proxy.port, `${svc.httpUrl}/healthz`, handleTraffic(bearer));
    await traffic.ready;
    const attack = 'a'.repeat(2000) + '!';
    const attacks = await Promise.all(
      Array.from({ length: 3 }, () =>
        get(proxy.port, '/handle/me', { authorization: bearer, 'x-handle': attack }),
      ),
    );
    const seen = await traffic.result;
    expect(seen.statuses).toEqual(
      Array.from({ length: seen.statuses.length }, (_, i) => (i % 2 === 0 ? 200 : 403)),
    );
    expect(seen.statuses.length).toBe(20);
    // A blocked event loop answers /healthz after the attack (a second or more); a free one in milliseconds.
    expect(Math.max(...seen.healthMs)).toBeLessThan(500);
    // The attack itself is answered too: no match (the handle ends in "!").
    expect(attacks.map((r) => r.status)).toEqual([403, 403, 403]);
    // No Check failed or timed out (Envoy answers those 503).
    const after = await authzStats();
    expect(after.ok - before.ok).toBe(10);
    expect(after.error).toBe(before.error);
  });

  it('a 3,000-character attack path on a path_regex route: concurrent requests all get their own answer, /healthz stays quick', async () => {
    const before = await authzStats();
    // Public profiles (the regex route, allowed without a token) and invalid handles (no
    // rule matches: the default, authenticate, answers 401 without a token).
    const requests = Array.from({ length: 20 }, (_, i) => ({
      path: i % 2 === 0 ? `/users/alice.smith${i}` : `/users/Bad-${i}!`,
      headers: {},
    }));
    const traffic = startTraffic(proxy.port, `${svc.httpUrl}/healthz`, requests);
    await traffic.ready;
    // A JS RegExp takes about 10 s on each of these (cubic backtracking before the "!").
    const attackPath = `/users/${'a'.repeat(3000)}!`;
    const attacks = await Promise.all(Array.from({ length: 3 }, () => get(proxy.port, attackPath)));
    const seen = await traffic.result;
    expect(seen.statuses).toEqual(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 200 : 401)));
    expect(Math.max(...seen.healthMs)).toBeLessThan(500);
    // The attack is answered too: no match, so authentication is required.
    expect(attacks.map((r) => r.status)).toEqual([401, 401, 401]);
    // Every Check was answered in time: none failed or timed out (Envoy answers those 503).
    const after = await authzStats();
    expect(after.error).toBe(before.error);
    // A token still reaches a path no rule matches: the long path itself is not refused.
    const withToken = await get(proxy.port, attackPath, { authorization: `Bearer ${token({})}` });
    expect(withToken.status).toBe(200);
  });

  it('a dynamic_metadata field is in Envoy’s access log', async () => {
    const reply = await get(proxy.port, '/app/home', {
      authorization: `Bearer ${token({ org: { id: 'o1' } })}`,
      'x-test-id': 'tenant-1',
    });
    expect(reply.status, reply.body).toBe(200);
    expect(await logEntry('tenant-1')).toMatchObject({ authz_tenant: 'o1', status: 200 });
  });

  it('mode audit: a request the rule would deny is allowed, enriched, with dry_run in the access log', async () => {
    const reply = await get(proxy.port, '/beta/feature', {
      authorization: `Bearer ${token({ scope: 'read' })}`,
      'x-test-id': 'dry-run-1',
    });
    expect(reply.status, reply.body).toBe(200);
    const seen = JSON.parse(reply.body);
    expect(seen.headers['x-user-id']).toBe('alice');
    expect(seen.headers.authorization).toBeUndefined();
    expect(await logEntry('dry-run-1')).toMatchObject({
      status: 200,
      authz_dry_run: { decision: 'deny', reason: 'insufficient_scope' },
    });
    // Without a token: allowed unenriched, the would-be 401 in the log.
    const anon = await get(proxy.port, '/beta/feature', { 'x-user-id': 'mallory', 'x-test-id': 'dry-run-2' });
    expect(anon.status, anon.body).toBe(200);
    expect(JSON.parse(anon.body).headers['x-user-id']).toBeUndefined();
    expect(await logEntry('dry-run-2')).toMatchObject({
      status: 200,
      authz_anonymous: true,
      authz_dry_run: { decision: 'deny', reason: 'token_missing' },
    });
  });

  it('mode audit, audit_action deny: a request the rule would allow is refused, dry_run in the access log', async () => {
    const reply = await get(proxy.port, '/closed/x', {
      authorization: `Bearer ${token({})}`,
      'x-test-id': 'dry-run-3',
    });
    expect(reply.status).toBe(403);
    expect(await logEntry('dry-run-3')).toMatchObject({
      status: 403,
      authz_dry_run: { decision: 'allow', reason: 'authenticated' },
    });
  });
});
