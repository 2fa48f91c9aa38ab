// API keys (api_keys) through the real gRPC server: a key from a keys_file authenticates
// like a verified token (claim headers, minted token, rules naming the key source,
// CEL, rate limits, dynamic metadata); unknown, expired and disabled keys are 401
// invalid_token; a key beside a bearer token, or two keys, is 400; the key never goes
// upstream and never appears in a log line; the keys file is read again when it changes.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { apiKeyHash, generateApiKey } from '../../src/authn/api-keys.js';
import { closePolicyServices, startPolicyService, startupProblems, token } from '../helpers/policy.js';
import type { TestService } from '../helpers/harness.js';

afterAll(closePolicyServices);

const dir = mkdtempSync(join(tmpdir(), 'api-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const good = generateApiKey();
const reader = generateApiKey();
const expired = generateApiKey();
const disabled = generateApiKey();
const legacy = generateApiKey();
const added = generateApiKey();

const entry = (id: string, k: { hash: string }, extra: Record<string, unknown> = {}) => ({
  id,
  hash: k.hash,
  sub: `svc-${id}`,
  scopes: ['orders:read', 'orders:write'],
  claims: { tenant: 't1', plan: 'gold' },
  ...extra,
});

function writeKeys(file: string, entries: unknown[], format: 'json' | 'yaml' = 'json'): void {
  // Written beside and renamed: the service never reads a half-written file.
  const tmp = `${file}.tmp`;
  if (format === 'json') writeFileSync(tmp, JSON.stringify({ keys: entries }));
  else
    writeFileSync(
      tmp,
      'keys:\n' +
        entries
          .map((e) =>
            Object.entries(e as Record<string, unknown>)
              .map(([k, v], i) => `${i === 0 ? '  - ' : '    '}${k}: ${JSON.stringify(v)}`)
              .join('\n'),
          )
          .join('\n') +
        '\n',
    );
  renameSync(tmp, file);
}

const partnersFile = join(dir, 'partners.json');
const legacyFile = join(dir, 'legacy.yaml');
writeKeys(partnersFile, [
  entry('good', good),
  entry('reader', reader, { scopes: ['orders:read'], claims: { tenant: 't2' } }),
  entry('old', expired, { expires_at: '2020-01-01T00:00:00Z' }),
  entry('off', disabled, { disabled: true }),
]);
writeKeys(
  legacyFile,
  [entry('legacy', legacy, { expires_at: Math.floor(Date.now() / 1000) + 3600 })],
  'yaml',
);

const API_KEYS = [
  { name: 'partners', header: 'x-api-key', keys_file: partnersFile },
  { name: 'legacy', query: 'api_key', keys_file: legacyFile },
];
const RULES = [
  { name: 'public', match: { path_prefix: '/public' }, action: 'allow' },
  { name: 'partners-only', match: { path_prefix: '/partners' }, require: { issuers: ['partners'] } },
  { name: 'corp-only', match: { path_prefix: '/corp' }, require: { issuers: ['corp'] } },
  { name: 'writers', match: { path_prefix: '/write' }, require: { scopes_all: ['orders:write'] } },
  {
    name: 'cel',
    match: { path_prefix: '/cel' },
    require: { expression: "issuer == 'partners' && claims.tenant == 't1' && 'orders:read' in scopes" },
  },
  { name: 'limited', match: { path_prefix: '/limited' } },
  { name: 'maybe', match: { path_prefix: '/maybe' }, action: 'optional' },
];
const UPSTREAM = {
  claim_headers: { 'x-user-id': 'sub', 'x-tenant': 'tenant', 'x-scope': 'scope' },
  token: {
    issuer: 'https://authz.internal',
    audiences: ['backend'],
    ttl_seconds: 300,
    copy_claims: ['tenant'],
  },
  dynamic_metadata: { caller: "issuer + '/' + claims.sub" },
};

function minted(r: { headers: Record<string, string> }): Record<string, unknown> {
  const value = r.headers['x-jwt-assertion'];
  expect(value).toBeDefined();
  return decodeJwt(value!) as Record<string, unknown>;
}

function expect401(d: { decision: string; http_status?: number; headers: Record<string, string> }) {
  expect(d.decision).toBe('deny');
  expect(d.http_status).toBe(401);
  expect(d.headers['www-authenticate']).toMatch(/^Bearer realm="envoy-jwt-authz", error="invalid_token"/);
}

describe('api_keys through Check', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startPolicyService({
      api_keys: API_KEYS,
      rules: RULES,
      upstream: UPSTREAM,
      rate_limits: [
        {
          name: 'per-key',
          limit: 3,
          window_seconds: 60,
          rules: ['limited'],
          key: "issuer + ':' + claims.sub",
        },
      ],
    });
  });

  it('a valid header key → allow with claim headers, a minted token and dynamic metadata; the key is removed', async () => {
    const d = await svc.check({ path: '/orders/1', headers: { 'x-api-key': good.key } });
    expect(d.decision).toBe('allow');
    expect(d.headers['x-user-id']).toBe('svc-good');
    expect(d.headers['x-tenant']).toBe('t1');
    expect(d.headers['x-scope']).toBe('orders:read orders:write');
    const jwt = minted(d);
    expect(jwt).toMatchObject({
      sub: 'svc-good',
      tenant: 't1',
      aud: 'backend',
      iss: 'https://authz.internal',
    });
    expect(d.headers_to_remove).toContain('x-api-key');
    expect(d.dynamic_metadata).toMatchObject({
      issuer: 'partners',
      sub: 'svc-good',
      caller: 'partners/svc-good',
    });
    // The same key again: still allowed, still removed.
    const again = await svc.check({ path: '/orders/2', headers: { 'x-api-key': good.key } });
    expect(again.decision).toBe('allow');
    expect(again.headers_to_remove).toContain('x-api-key');
  });

  it('a valid query key → allow; the parameter is removed', async () => {
    const d = await svc.check({ path: `/orders/1?a=1&api_key=${legacy.key}` });
    expect(d.decision).toBe('allow');
    expect(d.headers['x-user-id']).toBe('svc-legacy');
    expect(d.query_parameters_to_remove).toEqual(['api_key']);
    expect(minted(d).sub).toBe('svc-legacy');
  });

  it('an allow rule removes the key header and parameter too', async () => {
    const d = await svc.check({ path: `/public/x?api_key=zz`, headers: { 'x-api-key': 'anything' } });
    expect(d.decision).toBe('allow');
    expect(d.headers_to_remove).toContain('x-api-key');
    expect(d.query_parameters_to_remove).toContain('api_key');
  });

  it('optional rule: no key is anonymous, a present key must be valid', async () => {
    const anon = await svc.check({ path: '/maybe/x' });
    expect(anon.decision).toBe('allow');
    expect(anon.headers['x-user-id']).toBeUndefined();
    const withKey = await svc.check({ path: '/maybe/x', headers: { 'x-api-key': good.key } });
    expect(withKey.headers['x-user-id']).toBe('svc-good');
    expect(withKey.headers_to_remove).toContain('x-api-key');
    expect401(await svc.check({ path: '/maybe/x', headers: { 'x-api-key': 'nope' } }));
  });

  it('unknown, expired and disabled keys → 401 invalid_token with the bearer challenge', async () => {
    const unknown = await svc.check({ path: '/orders/1', headers: { 'x-api-key': generateApiKey().key } });
    expect401(unknown);
    expect(unknown.reason).toBe('token_inactive');
    const old = await svc.check({ path: '/orders/1', headers: { 'x-api-key': expired.key } });
    expect401(old);
    expect(old.reason).toBe('token_expired');
    const off = await svc.check({ path: '/orders/1', headers: { 'x-api-key': disabled.key } });
    expect401(off);
    expect(off.reason).toBe('token_revoked');
    // The challenge is the one a bad bearer token gets.
    expect401(await svc.check({ path: '/orders/1', token: 'not.a.token' }));
    // A hash is not a key.
    expect401(await svc.check({ path: '/orders/1', headers: { 'x-api-key': good.hash } }));
  });

  it('a key beside a bearer token, or two keys → 400 multiple_credentials', async () => {
    const jwt = await token();
    for (const call of [
      { token: jwt, headers: { 'x-api-key': good.key } },
      { path: `/orders/1?api_key=${legacy.key}`, headers: { 'x-api-key': good.key } },
      { path: `/orders/1?api_key=${legacy.key}`, token: jwt },
      { headers: { 'x-api-key': `${good.key},${reader.key}` } },
      { path: `/orders/1?api_key=${legacy.key}&API_KEY=x` },
    ]) {
      const d = await svc.check({ path: '/orders/1', ...call });
      expect(d.http_status, JSON.stringify(call)).toBe(400);
      expect(d.reason).toBe('multiple_credentials');
    }
  });

  it('rules name the key source like an issuer: require.issuers, context_extensions.issuers, scopes, CEL', async () => {
    const jwt = await token();
    expect((await svc.check({ path: '/partners/x', headers: { 'x-api-key': good.key } })).decision).toBe(
      'allow',
    );
    const corpOnPartners = await svc.check({ path: '/partners/x', token: jwt });
    expect(corpOnPartners.http_status).toBe(403);
    expect(corpOnPartners.reason).toBe('issuer_not_allowed');
    const keyOnCorp = await svc.check({ path: '/corp/x', headers: { 'x-api-key': good.key } });
    expect(keyOnCorp.reason).toBe('issuer_not_allowed');
    expect(
      (await svc.check({ path: `/partners/x?api_key=${legacy.key}` })).reason,
      'another key source is another issuer',
    ).toBe('issuer_not_allowed');
    const ext = { issuers: 'legacy' };
    expect(
      (await svc.check({ path: '/orders/x', headers: { 'x-api-key': good.key }, context: ext })).reason,
    ).toBe('issuer_not_allowed');
    expect((await svc.check({ path: `/orders/x?api_key=${legacy.key}`, context: ext })).decision).toBe(
      'allow',
    );
    expect((await svc.check({ path: '/write/x', headers: { 'x-api-key': good.key } })).decision).toBe(
      'allow',
    );
    const noWrite = await svc.check({ path: '/write/x', headers: { 'x-api-key': reader.key } });
    expect(noWrite.http_status).toBe(403);
    expect(noWrite.reason).toBe('insufficient_scope');
    expect((await svc.check({ path: '/cel/x', headers: { 'x-api-key': good.key } })).decision).toBe('allow');
    expect((await svc.check({ path: '/cel/x', headers: { 'x-api-key': reader.key } })).reason).toBe(
      'expression_false',
    );
  });

  it('rate limits are keyed on the key source and the key’s sub', async () => {
    const results = [];
    for (let i = 0; i < 4; i++)
      results.push(await svc.check({ path: '/limited/x', headers: { 'x-api-key': reader.key } }));
    expect(results.map((r) => r.decision)).toEqual(['allow', 'allow', 'allow', 'deny']);
    expect(results[3]!.http_status).toBe(429);
    // Another key has its own counter.
    expect((await svc.check({ path: '/limited/x', headers: { 'x-api-key': good.key } })).decision).toBe(
      'allow',
    );
  });

  it('no key ever appears in a log line; the id of a refused key does', async () => {
    await svc.check({ path: '/orders/1', headers: { 'x-api-key': disabled.key } });
    await svc.check({ path: '/orders/1', headers: { 'x-api-key': expired.key } });
    const text = svc.logs.text();
    expect(text).toContain('api key \\"off\\" is disabled');
    expect(text).toContain('api key \\"old\\" has expired');
    for (const k of [good, reader, expired, disabled, legacy]) {
      expect(text).not.toContain(k.key);
      expect(text).not.toContain(k.key.slice(5, 25));
    }
  });
});

describe('api_keys: a memoised allow does not outlive the key', () => {
  it('a key allowed (and its allow reused) until expires_at is refused from then on', async () => {
    const soon = generateApiKey();
    const file = join(dir, 'soon.json');
    writeKeys(file, [entry('soon', soon, { expires_at: Date.now() / 1000 + 2 })]);
    const svc = await startPolicyService({
      api_keys: [{ name: 'partners', header: 'x-api-key', keys_file: file }],
      upstream: UPSTREAM,
    });
    const call = () => svc.check({ path: '/orders/1', headers: { 'x-api-key': soon.key } });
    const first = await call();
    expect(first.decision).toBe('allow');
    // The minted token never outlives the key.
    expect(minted(first).exp as number).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 2);
    expect((await call()).headers['x-jwt-assertion']).toBe(first.headers['x-jwt-assertion']);
    // expires_at passes on the service's clock (Date): moved, not waited for. Timers and sockets stay real.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 2100);
      const late = await call();
      expect(late.http_status).toBe(401);
      expect(late.reason).toBe('token_expired');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('api_keys with upstream.forward_original_token', () => {
  it('a bearer token is forwarded, an API key never is', async () => {
    const svc = await startPolicyService({
      api_keys: API_KEYS,
      upstream: { forward_original_token: true },
    });
    const byKey = await svc.check({ path: `/orders/1?api_key=${legacy.key}` });
    expect(byKey.decision).toBe('allow');
    expect(byKey.query_parameters_to_remove).toEqual(['api_key']);
    const byHeader = await svc.check({ path: '/orders/1', headers: { 'x-api-key': good.key } });
    expect(byHeader.headers_to_remove).toContain('x-api-key');
    const byToken = await svc.check({ path: '/orders/1', token: await token() });
    expect(byToken.decision).toBe('allow');
    expect(byToken.headers_to_remove ?? []).not.toContain('authorization');
  });
});

describe('api_keys: the keys file is read again when it changes', () => {
  it('adds and removes keys; a broken file keeps the previous keys and logs an error', async () => {
    const file = join(dir, 'reload.json');
    writeKeys(file, [entry('first', good)]);
    const svc = await startPolicyService({
      api_keys: [{ name: 'partners', header: 'x-api-key', keys_file: file }],
    });
    const status = async (k: { key: string }) =>
      (await svc.check({ path: '/x', headers: { 'x-api-key': k.key } })).decision;
    const eventually = async (k: { key: string }, want: string) => {
      for (let i = 0; i < 100 && (await status(k)) !== want; i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(await status(k)).toBe(want);
    };
    expect(await status(good)).toBe('allow');
    expect(await status(added)).toBe('deny');
    writeKeys(file, [entry('first', good), entry('added', added)]);
    await eventually(added, 'allow');
    writeKeys(file, [entry('added', added)]);
    await eventually(good, 'deny');
    expect(await status(added)).toBe('allow');
    // A broken file: the old keys stay, an error names the file and the entry.
    writeKeys(file, [entry('added', added), { id: 'broken', hash: 'sha256:nope', sub: 'x' }]);
    for (let i = 0; i < 100 && !svc.logs.lines.some((l: any) => l.msg?.includes('reload failed')); i++)
      await new Promise((r) => setTimeout(r, 100));
    const line = svc.logs.lines.find((l: any) => l.msg?.includes('api keys reload failed')) as any;
    expect(line).toBeDefined();
    expect(line.level).toBe('error');
    expect(JSON.stringify(line.problems)).toContain('keys[1] (id \\"broken\\").hash');
    expect(await status(added)).toBe('allow');
    expect(svc.logs.text()).not.toContain(added.key);
  });
});

describe('api_keys: configuration errors', () => {
  it('a malformed keys file is refused at start, naming the field, the file and the entry', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      `keys:\n  - id: a\n    hash: ${good.hash}\n    sub: s\n  - id: b\n    hash: md5:xyz\n    sub: s\n    extra: 1\n  - id: a\n    hash: ${apiKeyHash('x')}\n    sub: s\n    expires_at: soon\n`,
    );
    const problems = await startupProblems({
      api_keys: [{ name: 'p', header: 'x-api-key', keys_file: file }],
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^api_keys\[0\]\.keys_file: .*bad\.yaml: keys\[1\] \(id "b"\)\.hash: /),
        expect.stringMatching(/^api_keys\[0\]\.keys_file: .*keys\[1\] \(id "b"\)\.extra: unknown key/),
        expect.stringMatching(/keys\[2\] \(id "a"\)\.id: duplicate id "a"/),
        expect.stringMatching(/keys\[2\] \(id "a"\)\.expires_at: /),
      ]),
    );
    expect(
      await startupProblems({
        api_keys: [{ name: 'p', header: 'x-api-key', keys_file: join(dir, 'missing.json') }],
      }),
    ).toEqual([expect.stringMatching(/^api_keys\[0\]\.keys_file: cannot read .*missing\.json \(ENOENT\)/)]);
  });

  it('names are unique, distinct from issuers and "self"; exactly one of header, query; no shared header or parameter', async () => {
    const problems = await startupProblems({
      api_keys: [
        { name: 'corp', header: 'x-api-key', keys_file: partnersFile },
        { name: 'self', header: 'x-other', keys_file: partnersFile },
        { name: 'a', header: 'X-API-KEY', keys_file: partnersFile },
        { name: 'a', header: 'x-b', query: 'k', keys_file: partnersFile },
        { name: 'c', header: 'authorization', keys_file: partnersFile },
        { name: 'd', query: 'access%5Ftoken', keys_file: partnersFile },
        { name: 'e', header: 'X-User-Id', keys_file: partnersFile },
      ],
      upstream: { claim_headers: { 'x-user-id': 'sub' } },
      rules: [{ name: 'r', match: { path_prefix: '/' }, require: { issuers: ['nobody'] } }],
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'api_keys[0].name: "corp" is already an issuer name (issuers[].name)',
        expect.stringMatching(/^api_keys\[1\]\.name: "self" is reserved/),
        'api_keys[2].header: "X-API-KEY" is already read by api_keys[0]',
        'api_keys[3].name: duplicate name "a" (also api_keys[2])',
        'api_keys[3]: exactly one of header, query is required',
        'api_keys[4].header: "authorization" is already read by token_sources[0]',
        expect.stringMatching(/^api_keys\[5\]\.query: "access%5Ftoken" must be a plain parameter name/),
        'api_keys[6].header: "X-User-Id" is a header the service sets upstream (upstream.claim_headers or upstream.token.header)',
      ]),
    );
  });

  it('rules may name a key source in require.issuers (and nothing unknown)', async () => {
    expect(
      await startupProblems({
        api_keys: [{ name: 'partners', header: 'x-api-key', keys_file: partnersFile }],
        rules: [{ name: 'r', match: { path_prefix: '/' }, require: { issuers: ['partners', 'corp'] } }],
      }),
    ).toEqual([]);
    const problems = await startupProblems({
      rules: [{ name: 'r', match: { path_prefix: '/' }, require: { issuers: ['partners'] } }],
    });
    expect(problems.join('\n')).toMatch(/rules\[0\]\.require\.issuers.*partners/);
  });
});

describe('api keys under an audit (dry-run) rule', () => {
  it('a would-be denial is allowed as the key principal, enriched, and the key is never sent to a token verifier', async () => {
    const svc = await startPolicyService({
      api_keys: API_KEYS,
      rules: [
        {
          name: 'beta',
          match: { path_prefix: '/beta' },
          require: { scopes_all: ['beta'] },
          mode: 'audit',
        },
      ],
      upstream: UPSTREAM,
    });
    const d = await svc.check({ path: '/beta/x', headers: { 'x-api-key': reader.key } });
    expect(d.decision).toBe('allow');
    expect(d.dynamic_metadata?.dry_run).toMatchObject({ decision: 'deny', reason: 'insufficient_scope' });
    // Enriched as the key's principal, not as an anonymous caller.
    expect(d.headers['x-user-id']).toBe('svc-reader');
    expect(d.dynamic_metadata?.anonymous).toBeUndefined();
    expect(JSON.stringify(svc.logs.lines)).not.toContain(reader.key);
  });
});
