// Token exchange (RFC 8693), the client credentials grant, client_secret_post and a
// configured token path, over the real HTTP listener of the real service; every token
// issued is then presented to the real gRPC Check.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigObject } from '../../src/config/load.js';
import { CORP_ISS, ISSUERS, PARTNER_ISS, corpKey, corpToken, partnerToken, sign } from '../helpers/authz.js';
import { dpopProof, jktOf } from '../helpers/dpop.js';
import { startTestService, type Decision, type TestService } from '../helpers/harness.js';
import { generateEcKeyPair, type TestKeyPair } from '../helpers/keys.js';
import { startJwksServer } from '../helpers/jwks-server.js';

const ISSUER = 'https://authz.example.com';
const AUD = 'https://authz.example.com/oauth2/token';
const ORDERS = 'https://orders.example.com';
const BILLING = 'https://billing.example.com';
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const AXWAY_PATH = '/api/oauth/token';

const SECRETS: Record<string, string> = {
  gateway: 'gateway-secret-1',
  poster: 'poster-secret-2',
  portal: 'portal-secret-3',
  narrow: 'narrow-secret-4',
};

let dir: string;
let dpopKey: TestKeyPair;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'token-grants-'));
  writeFileSync(join(dir, 'signing.jwk.json'), JSON.stringify(generateEcKeyPair({ kid: 'at-1' }).privateJwk));
  for (const [id, secret] of Object.entries(SECRETS)) writeFileSync(join(dir, `${id}.secret`), secret);
  dpopKey = generateEcKeyPair();
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const services: TestService[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.close();
});

interface Opts {
  format?: 'jwt' | 'opaque';
  path?: string;
  exchange?: Record<string, unknown> | false;
  rateLimit?: { limit: number; window_seconds: number };
}

function tokenEndpoint(opts: Opts = {}): Record<string, unknown> {
  const exchangeClient = {
    client_id: 'gateway',
    client_secret_file: 'gateway.secret',
    scopes: ['read', 'write', 'admin'],
    grant_types: [EXCHANGE, 'client_credentials'],
    exchange_audiences: [ORDERS, BILLING],
  };
  return {
    enabled: true,
    issuer: ISSUER,
    audience: AUD,
    ...(opts.path ? { path: opts.path } : {}),
    access_token: {
      format: opts.format ?? 'jwt',
      audiences: [ISSUER, ORDERS, BILLING],
      signing: { alg: 'ES256', key_file: 'signing.jwk.json' },
    },
    refresh_token: { enabled: true },
    ...(opts.exchange === false
      ? {}
      : { exchange: opts.exchange ?? { subject_issuers: ['corp'], actor_issuers: ['corp', 'partner'] } }),
    ...(opts.rateLimit ? { rate_limit: opts.rateLimit } : {}),
    clients: [
      opts.exchange === false
        ? { ...exchangeClient, grant_types: ['client_credentials'], exchange_audiences: [] }
        : exchangeClient,
      {
        client_id: 'poster',
        client_secret_file: 'poster.secret',
        token_endpoint_auth_method: 'client_secret_post',
        grant_types: ['client_credentials'],
        scopes: ['read'],
      },
      // Defaults: HTTP Basic, the JWT bearer and refresh-token grants only.
      { client_id: 'portal', client_secret_file: 'portal.secret', scopes: ['read'] },
      ...(opts.exchange === false
        ? []
        : [
            {
              client_id: 'narrow',
              client_secret_file: 'narrow.secret',
              scopes: ['read'],
              grant_types: [EXCHANGE],
            },
          ]),
    ],
  };
}

/** /orders-api accepts only tokens for the orders audience (the docs' advice for exchanged tokens). */
const RULES = [
  { name: 'orders-api', match: { path_prefix: '/orders-api' }, require: { claims: { aud: [ORDERS] } } },
];

function config(opts: Opts = {}): Record<string, unknown> {
  return {
    issuers: ISSUERS,
    rules: RULES,
    default_action: 'authenticate',
    token_endpoint: tokenEndpoint(opts),
  };
}

async function start(opts: Opts = {}): Promise<TestService> {
  const svc = await startTestService(config(opts), { baseDir: dir, logLevel: 'info' });
  services.push(svc);
  return svc;
}

const basic = (id: string, secret = SECRETS[id]!) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

interface Posted {
  status: number;
  headers: Headers;
  json: Record<string, any>;
}

async function post(
  svc: TestService,
  form: Record<string, string | string[]>,
  opts: { auth?: string; path?: string; dpop?: string } = {},
): Promise<Posted> {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const x of [v].flat()) body.append(k, x);
  const res = await fetch(`${svc.httpUrl}${opts.path ?? '/oauth2/token'}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(opts.auth ? { authorization: opts.auth } : {}),
      ...(opts.dpop ? { dpop: opts.dpop } : {}),
    },
    body: body.toString(),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text === '' ? {} : JSON.parse(text) };
}

function exchange(
  svc: TestService,
  subjectToken: string,
  extra: Record<string, string | string[]> = {},
  opts: { auth?: string; dpop?: string } = {},
): Promise<Posted> {
  return post(
    svc,
    { grant_type: EXCHANGE, subject_token: subjectToken, subject_token_type: ACCESS_TOKEN, ...extra },
    { auth: basic('gateway'), ...opts },
  );
}

function expectError(res: Posted, status: number, error: string): void {
  expect(res.status, JSON.stringify(res.json)).toBe(status);
  expect(res.json.error).toBe(error);
  expect(typeof res.json.error_description).toBe('string');
  expect(res.json.access_token).toBeUndefined();
  expect(res.headers.get('cache-control')).toBe('no-store');
}

function expectOk(res: Posted): void {
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  expect(res.headers.get('cache-control')).toBe('no-store');
}

/** A corp token with the given exp (the `sign` helper always sets its own). */
function corpTokenExpiring(exp: number, claims: Record<string, unknown> = { sub: 'alice', scope: 'read' }) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: corpKey.kid, typ: 'JWT' })
    .setIssuer(CORP_ISS)
    .setAudience('api://orders')
    .setIssuedAt(exp - 600)
    .setExpirationTime(exp)
    .sign(corpKey.privateKey);
}

const checkBearer = (svc: TestService, token: string): Promise<Decision> =>
  svc.check({ host: 'api.example.com', path: '/api/orders', token });

async function expectCheckAllows(svc: TestService, token: string): Promise<Decision> {
  const d = await checkBearer(svc, token);
  expect(d.decision, JSON.stringify(d)).toBe('allow');
  expect(d.dynamic_metadata?.issuer).toBe('self');
  return d;
}

describe('client credentials grant', () => {
  it('issues a token with sub = client_id, the client scopes and no refresh token; it passes Check', async () => {
    const svc = await start();
    const res = await post(svc, { grant_type: 'client_credentials' }, { auth: basic('gateway') });
    expectOk(res);
    expect(res.json).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'read write admin' });
    expect(res.json.refresh_token).toBeUndefined();
    const claims = decodeJwt(res.json.access_token as string);
    expect(claims).toMatchObject({ iss: ISSUER, sub: 'gateway', client_id: 'gateway' });
    const d = await expectCheckAllows(svc, res.json.access_token as string);
    expect(d.dynamic_metadata?.sub).toBe('gateway');

    const narrowed = await post(
      svc,
      { grant_type: 'client_credentials', scope: 'read' },
      { auth: basic('gateway') },
    );
    expectOk(narrowed);
    expect(narrowed.json.scope).toBe('read');
  });

  it('refuses a scope beyond the client, a client without the grant, and a missing or wrong secret', async () => {
    const svc = await start();
    expectError(
      await post(
        svc,
        { grant_type: 'client_credentials', scope: 'read superuser' },
        { auth: basic('gateway') },
      ),
      400,
      'invalid_scope',
    );
    // portal keeps the default grant types (JWT bearer, refresh token).
    expectError(
      await post(svc, { grant_type: 'client_credentials' }, { auth: basic('portal') }),
      400,
      'unauthorized_client',
    );
    const anonymous = await post(svc, { grant_type: 'client_credentials' });
    expectError(anonymous, 401, 'invalid_client');
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    expectError(
      await post(svc, { grant_type: 'client_credentials' }, { auth: basic('gateway', 'wrong') }),
      401,
      'invalid_client',
    );
  });

  it('an unknown grant type is unsupported_grant_type', async () => {
    const svc = await start();
    expectError(
      await post(svc, { grant_type: 'password', username: 'a', password: 'b' }, { auth: basic('gateway') }),
      400,
      'unsupported_grant_type',
    );
  });

  it('counts against token_endpoint.rate_limit like the other grants', async () => {
    const svc = await start({ rateLimit: { limit: 2, window_seconds: 60 } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push(
        (await post(svc, { grant_type: 'client_credentials' }, { auth: basic('gateway') })).status,
      );
    expect(statuses).toEqual([200, 200, 429]);
    // The same per-client count covers token exchange.
    const res = await exchange(svc, await corpToken());
    expectError(res, 429, 'rate_limited');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});

describe('client_secret_post', () => {
  it('a client configured for it authenticates with client_id and client_secret in the body', async () => {
    const svc = await start();
    const res = await post(svc, {
      grant_type: 'client_credentials',
      client_id: 'poster',
      client_secret: SECRETS.poster!,
    });
    expectOk(res);
    expect(decodeJwt(res.json.access_token as string).sub).toBe('poster');
    await expectCheckAllows(svc, res.json.access_token as string);
    expectError(
      await post(svc, { grant_type: 'client_credentials', client_id: 'poster', client_secret: 'wrong' }),
      401,
      'invalid_client',
    );
  });

  it('is refused for a client not configured for it, and HTTP Basic for a client configured for it', async () => {
    const svc = await start();
    // gateway has a secret but the default method (client_secret_basic).
    const post1 = await post(svc, {
      grant_type: 'client_credentials',
      client_id: 'gateway',
      client_secret: SECRETS.gateway!,
    });
    expectError(post1, 401, 'invalid_client');
    expect(post1.json.error_description).toMatch(/client_secret_post/);
    expectError(
      await post(svc, { grant_type: 'client_credentials' }, { auth: basic('poster') }),
      401,
      'invalid_client',
    );
  });

  it('two methods at once, or client_secret without client_id, are invalid_request', async () => {
    const svc = await start();
    expectError(
      await post(
        svc,
        { grant_type: 'client_credentials', client_id: 'poster', client_secret: SECRETS.poster! },
        { auth: basic('poster') },
      ),
      400,
      'invalid_request',
    );
    expectError(
      await post(svc, { grant_type: 'client_credentials', client_secret: SECRETS.poster! }),
      400,
      'invalid_request',
    );
  });

  it('the secret never reaches the logs', async () => {
    const svc = await start();
    await post(svc, {
      grant_type: 'client_credentials',
      client_id: 'poster',
      client_secret: SECRETS.poster!,
    });
    await post(svc, {
      grant_type: 'client_credentials',
      client_id: 'gateway',
      client_secret: SECRETS.gateway!,
    });
    const logs = svc.logs.text();
    expect(logs).toContain('token request');
    expect(logs).not.toContain(SECRETS.poster);
    expect(logs).not.toContain(SECRETS.gateway);
  });
});

describe('token exchange', () => {
  it('exchanges a trusted issuer JWT for our token for the same subject and audience; it passes Check', async () => {
    const svc = await start();
    const subject = await corpToken({ scope: 'read write' });
    const res = await exchange(svc, subject, { audience: ORDERS });
    expectOk(res);
    expect(res.json).toMatchObject({
      issued_token_type: ACCESS_TOKEN,
      token_type: 'Bearer',
      scope: 'read write',
    });
    expect(res.json.refresh_token).toBeUndefined();
    const claims = decodeJwt(res.json.access_token as string);
    expect(claims).toMatchObject({
      iss: ISSUER,
      sub: 'alice',
      aud: ORDERS,
      client_id: 'gateway',
      scope: 'read write',
    });
    expect(claims.act).toBeUndefined();
    // Never longer-lived than the subject token (600 s).
    expect(claims.exp!).toBeLessThanOrEqual(decodeJwt(subject).exp!);
    expect(res.json.expires_in).toBeLessThanOrEqual(600);
    const d = await expectCheckAllows(svc, res.json.access_token as string);
    expect(d.dynamic_metadata?.sub).toBe('alice');
  });

  it('the issued token never outlives a short-lived subject token', async () => {
    const svc = await start();
    const now = Math.floor(Date.now() / 1000);
    const subject = await corpTokenExpiring(now + 90);
    const res = await exchange(svc, subject);
    expectOk(res);
    expect(decodeJwt(res.json.access_token as string).exp).toBe(now + 90);
    expect(res.json.expires_in).toBeLessThanOrEqual(90);
    expect(res.json.expires_in).toBeGreaterThan(60);
  });

  it('without a scope: the subject scopes the client also has; a smaller scope is granted, a larger one refused', async () => {
    const svc = await start();
    // narrow may have only "read".
    const both = await post(
      svc,
      {
        grant_type: EXCHANGE,
        subject_token: await corpToken({ scope: 'read write' }),
        subject_token_type: JWT,
      },
      { auth: basic('narrow') },
    );
    expectOk(both);
    expect(both.json.scope).toBe('read');
    const down = await exchange(svc, await corpToken({ scope: 'read write' }), { scope: 'write' });
    expectOk(down);
    expect(down.json.scope).toBe('write');
    await expectCheckAllows(svc, down.json.access_token as string);
    // admin: the client has it, the subject does not.
    const up = await exchange(svc, await corpToken({ scope: 'read' }), { scope: 'read admin' });
    expectError(up, 400, 'invalid_scope');
    expect(up.json.error_description).toMatch(/subject token/);
  });

  it('subject scopes are read as Check reads them (scope_claims: an scp array counts too)', async () => {
    const svc = await start();
    const res = await exchange(svc, await corpToken({ scope: undefined, scp: ['write', 'read'] }));
    expectOk(res);
    expect(res.json.scope).toBe('write read');
    expectError(
      await exchange(svc, await corpToken({ scope: undefined, scp: ['read'] }), { scope: 'write' }),
      400,
      'invalid_scope',
    );
  });

  it('requested_token_type jwt is answered with issued_token_type jwt', async () => {
    const svc = await start();
    const res = await exchange(svc, await corpToken(), { requested_token_type: JWT });
    expectOk(res);
    expect(res.json.issued_token_type).toBe(JWT);
    await expectCheckAllows(svc, res.json.access_token as string);
  });

  it('audience and resource must be allowed for the client: invalid_target', async () => {
    const svc = await start();
    const two = await exchange(svc, await corpToken(), { audience: [ORDERS, BILLING] });
    expectOk(two);
    expect(decodeJwt(two.json.access_token as string).aud).toEqual([ORDERS, BILLING]);
    const resource = await exchange(svc, await corpToken(), { resource: BILLING });
    expectOk(resource);
    expect(decodeJwt(resource.json.access_token as string).aud).toBe(BILLING);
    // A route can require the audience: the billing token does not reach the orders API.
    const ordersOnly = await exchange(svc, await corpToken(), { audience: ORDERS });
    const onOrders = (token: string) => svc.check({ host: 'api.example.com', path: '/orders-api/1', token });
    expect((await onOrders(ordersOnly.json.access_token as string)).decision).toBe('allow');
    const refused = await onOrders(resource.json.access_token as string);
    expect(refused.decision).toBe('deny');
    expect(refused.http_status).toBe(403);
    expectError(
      await exchange(svc, await corpToken(), { audience: 'https://evil.example.com' }),
      400,
      'invalid_target',
    );
    expectError(
      await exchange(svc, await corpToken(), { resource: 'https://evil.example.com/' }),
      400,
      'invalid_target',
    );
    expectError(
      await exchange(svc, await corpToken(), { audience: ORDERS, resource: 'https://evil.example.com/' }),
      400,
      'invalid_target',
    );
    // narrow has no exchange_audiences at all.
    expectError(
      await post(
        svc,
        {
          grant_type: EXCHANGE,
          subject_token: await corpToken(),
          subject_token_type: ACCESS_TOKEN,
          audience: ORDERS,
        },
        { auth: basic('narrow') },
      ),
      400,
      'invalid_target',
    );
  });

  it('invalid_request: missing or unsupported parameters, and subject tokens that do not verify', async () => {
    const svc = await start();
    const good = await corpToken();
    const cases: Record<string, string>[] = [
      { subject_token_type: ACCESS_TOKEN },
      { subject_token: good },
      { subject_token: good, subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' },
      {
        subject_token: good,
        subject_token_type: ACCESS_TOKEN,
        requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token',
      },
      { subject_token: good, subject_token_type: ACCESS_TOKEN, actor_token: good },
      { subject_token: good, subject_token_type: ACCESS_TOKEN, actor_token_type: ACCESS_TOKEN },
      // Signature broken.
      { subject_token: `${good.slice(0, -4)}AAAA`, subject_token_type: ACCESS_TOKEN },
      // partner is not a subject issuer.
      { subject_token: await partnerToken(), subject_token_type: ACCESS_TOKEN },
      // Not an audience the corp issuer entry accepts (verified as Check verifies it).
      {
        subject_token: await sign({ sub: 'alice' }, { aud: 'api://other' }),
        subject_token_type: ACCESS_TOKEN,
      },
      // Expired.
      {
        subject_token: await corpTokenExpiring(Math.floor(Date.now() / 1000) - 3600),
        subject_token_type: ACCESS_TOKEN,
      },
      // No sub.
      { subject_token: await sign({ scope: 'read' }), subject_token_type: ACCESS_TOKEN },
      // Not a token at all, and an opaque-looking string we never issued.
      { subject_token: 'garbage', subject_token_type: ACCESS_TOKEN },
      { subject_token: 'a.b.c', subject_token_type: JWT },
    ];
    for (const form of cases) {
      const res = await post(svc, { grant_type: EXCHANGE, ...form }, { auth: basic('gateway') });
      expect(res.status, `${JSON.stringify(Object.keys(form))}: ${JSON.stringify(res.json)}`).toBe(400);
      expect(res.json.error).toBe('invalid_request');
    }
  });

  it("temporarily_unavailable (503, Retry-After) while the subject issuer's keys cannot be fetched", async () => {
    const jwks = await startJwksServer({ mode: 'status500' });
    try {
      const FLAKY_ISS = 'https://flaky.example.com';
      const svc = await startTestService(
        {
          ...config({ exchange: { subject_issuers: ['corp', 'flaky'] } }),
          issuers: [
            ...ISSUERS,
            {
              name: 'flaky',
              issuer: FLAKY_ISS,
              audiences: ['api://orders'],
              algorithms: ['ES256'],
              jwks_uri: jwks.url,
            },
          ],
        },
        { baseDir: dir, logLevel: 'info' },
      );
      services.push(svc);
      const key = generateEcKeyPair({ kid: 'flaky-1' });
      const now = Math.floor(Date.now() / 1000);
      const subject = await new SignJWT({ sub: 'alice', scope: 'read' })
        .setProtectedHeader({ alg: 'ES256', kid: 'flaky-1' })
        .setIssuer(FLAKY_ISS)
        .setAudience('api://orders')
        .setIssuedAt(now)
        .setExpirationTime(now + 300)
        .sign(key.privateKey);
      const res = await exchange(svc, subject);
      expectError(res, 503, 'temporarily_unavailable');
      expect(res.headers.get('retry-after')).toBe('1');
    } finally {
      await jwks.close();
    }
  });

  it("applies the subject issuer's sender_constraint: an unbound token of an issuer that requires binding is refused", async () => {
    for (const [constraint, detail] of [
      [{ dpop: 'required' }, 'not DPoP-bound'],
      [{ mtls: 'required' }, 'bound to a client certificate'],
    ] as const) {
      const svc = await startTestService(
        {
          ...config(),
          issuers: ISSUERS.map((i) => (i.name === 'corp' ? { ...i, sender_constraint: constraint } : i)),
        },
        { baseDir: dir, logLevel: 'info' },
      );
      services.push(svc);
      const subject = await corpToken({ scope: 'read' });
      // Check refuses this token from that issuer (cnf_missing): so does the exchange.
      expect((await checkBearer(svc, subject)).decision).toBe('deny');
      const res = await exchange(svc, subject);
      expectError(res, 400, 'invalid_request');
      expect(String(res.json.error_description)).toContain(detail);
    }
  });

  it('needs an authenticated client allowed to exchange: invalid_client, unauthorized_client', async () => {
    const svc = await start();
    const subject = await corpToken();
    expectError(
      await post(svc, { grant_type: EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN }),
      401,
      'invalid_client',
    );
    expectError(await exchange(svc, subject, {}, { auth: basic('portal') }), 400, 'unauthorized_client');
  });

  it('is unsupported_grant_type when token_endpoint.exchange is not configured', async () => {
    const svc = await start({ exchange: false });
    expectError(await exchange(svc, await corpToken()), 400, 'unsupported_grant_type');
  });

  it('an actor token becomes act; exchanging that token again nests the chain; Check accepts both', async () => {
    const svc = await start();
    const subject = await corpToken({ scope: 'read write' });
    const first = await exchange(svc, subject, {
      actor_token: await partnerToken({ sub: 'agent-1' }),
      actor_token_type: JWT,
      audience: ORDERS,
    });
    expectOk(first);
    const once = decodeJwt(first.json.access_token as string);
    expect(once.sub).toBe('alice');
    expect(once.act).toEqual({ sub: 'agent-1', iss: PARTNER_ISS });
    await expectCheckAllows(svc, first.json.access_token as string);

    // Our own token as the subject, another actor: the earlier actor nests inside.
    const second = await exchange(svc, first.json.access_token as string, {
      actor_token: await corpToken({ sub: 'mcp-gateway' }),
      actor_token_type: ACCESS_TOKEN,
      audience: BILLING,
      scope: 'read',
    });
    expectOk(second);
    const twice = decodeJwt(second.json.access_token as string);
    expect(twice).toMatchObject({ sub: 'alice', aud: BILLING, scope: 'read' });
    expect(twice.act).toEqual({
      sub: 'mcp-gateway',
      iss: CORP_ISS,
      act: { sub: 'agent-1', iss: PARTNER_ISS },
    });
    expect(twice.exp!).toBeLessThanOrEqual(once.exp!);
    await expectCheckAllows(svc, second.json.access_token as string);

    // Without an actor token the chain is kept as it is.
    const third = await exchange(svc, second.json.access_token as string);
    expectOk(third);
    expect(decodeJwt(third.json.access_token as string).act).toEqual(twice.act);

    // An actor token from no accepted issuer, or a bad one, is invalid_request.
    expectError(
      await exchange(svc, subject, { actor_token: 'not-a-token', actor_token_type: JWT }),
      400,
      'invalid_request',
    );
    // A subject token whose act chain is malformed or too deep is refused.
    let deep: Record<string, unknown> = { sub: 'a0' };
    for (let i = 1; i < 10; i++) deep = { sub: `a${i}`, act: deep };
    expectError(await exchange(svc, await corpToken({ act: deep })), 400, 'invalid_request');
    expectError(await exchange(svc, await corpToken({ act: 'agent' })), 400, 'invalid_request');
  });

  it('a revoked token of ours cannot be exchanged', async () => {
    const svc = await start();
    const first = await exchange(svc, await corpToken());
    expectOk(first);
    const token = first.json.access_token as string;
    const revoked = await post(svc, { token }, { auth: basic('gateway'), path: '/oauth2/revoke' });
    expect(revoked.status).toBe(200);
    expectError(await exchange(svc, token), 400, 'invalid_request');
    expect((await checkBearer(svc, token)).decision).toBe('deny');
  });

  it('opaque tokens of ours can be exchanged; the issued token is opaque and passes Check', async () => {
    const svc = await start({ format: 'opaque' });
    const cc = await post(svc, { grant_type: 'client_credentials' }, { auth: basic('gateway') });
    expectOk(cc);
    const opaque = cc.json.access_token as string;
    expect(opaque.includes('.')).toBe(false);
    const res = await exchange(svc, opaque, { audience: ORDERS, scope: 'read' });
    expectOk(res);
    expect(res.json.issued_token_type).toBe(ACCESS_TOKEN);
    const d = await expectCheckAllows(svc, res.json.access_token as string);
    expect(d.dynamic_metadata?.sub).toBe('gateway');
    // An opaque token is not a JWT, and no JWT can be issued.
    expectError(await exchange(svc, opaque, { subject_token_type: JWT }), 400, 'invalid_request');
    expectError(await exchange(svc, opaque, { requested_token_type: JWT }), 400, 'invalid_request');
  });

  it('a request with a DPoP proof gets a DPoP-bound token (the binding of the other grants)', async () => {
    const svc = await start();
    const proof = await dpopProof(dpopKey, { htm: 'POST', htu: `${svc.httpUrl}/oauth2/token` });
    const res = await exchange(svc, await corpToken(), {}, { dpop: proof });
    expectOk(res);
    expect(res.json.token_type).toBe('DPoP');
    expect(decodeJwt(res.json.access_token as string).cnf).toEqual({ jkt: await jktOf(dpopKey) });
    // Bound: a bearer presentation is refused by Check.
    const d = await checkBearer(svc, res.json.access_token as string);
    expect(d.decision).toBe('deny');
    expect(d.reason).toBe('cnf_mismatch');
    // And it is exchanged again only with a proof by the same key.
    expectError(await exchange(svc, res.json.access_token as string), 400, 'invalid_request');
    const again = await exchange(
      svc,
      res.json.access_token as string,
      {},
      { dpop: await dpopProof(dpopKey, { htm: 'POST', htu: `${svc.httpUrl}/oauth2/token` }) },
    );
    expectOk(again);
  });
});

describe('token_endpoint.path (Axway: /api/oauth/token) and discovery metadata', () => {
  it('serves the token endpoint at the configured path only; the old path is 404', async () => {
    const svc = await start({ path: AXWAY_PATH });
    const res = await post(
      svc,
      { grant_type: 'client_credentials' },
      { auth: basic('gateway'), path: AXWAY_PATH },
    );
    expectOk(res);
    await expectCheckAllows(svc, res.json.access_token as string);
    const old = await post(svc, { grant_type: 'client_credentials' }, { auth: basic('gateway') });
    expect(old.status).toBe(404);
    expect(old.json.error).toBe('not_found');
    // A query string does not change the path; revoke and introspect stay where they are.
    expectOk(
      await post(
        svc,
        { grant_type: 'client_credentials' },
        { auth: basic('gateway'), path: `${AXWAY_PATH}?x=1` },
      ),
    );
    const intro = await post(
      svc,
      { token: res.json.access_token as string },
      { auth: basic('gateway'), path: '/oauth2/introspect' },
    );
    expect(intro.json.active).toBe(true);
    // DPoP proofs name the configured path.
    const proof = await dpopProof(dpopKey, { htm: 'POST', htu: `${svc.httpUrl}${AXWAY_PATH}` });
    const bound = await post(
      svc,
      { grant_type: 'client_credentials' },
      { auth: basic('gateway'), path: AXWAY_PATH, dpop: proof },
    );
    expectOk(bound);
    expect(bound.json.token_type).toBe('DPoP');
  });

  it('a reload moves the token endpoint (the path is read per request)', async () => {
    const svc = await start();
    const cc = { grant_type: 'client_credentials' };
    expectOk(await post(svc, cc, { auth: basic('gateway') }));
    await svc.service.reload(loadConfigObject(config({ path: AXWAY_PATH }), dir, {}));
    expectOk(await post(svc, cc, { auth: basic('gateway'), path: AXWAY_PATH }));
    expect((await post(svc, cc, { auth: basic('gateway') })).status).toBe(404);
    await svc.service.reload(loadConfigObject(config(), dir, {}));
    expectOk(await post(svc, cc, { auth: basic('gateway') }));
    expect((await post(svc, cc, { auth: basic('gateway'), path: AXWAY_PATH })).status).toBe(404);
  });

  it('discovery lists the configured token path, the enabled grants and the methods clients use', async () => {
    const svc = await start({ path: AXWAY_PATH });
    for (const doc of ['oauth-authorization-server', 'openid-configuration']) {
      const res = await fetch(`${svc.httpUrl}/.well-known/${doc}`);
      expect(res.status).toBe(200);
      const meta = (await res.json()) as Record<string, any>;
      expect(meta.issuer).toBe(ISSUER);
      expect(meta.token_endpoint).toBe(`${svc.httpUrl}${AXWAY_PATH}`);
      expect([...meta.grant_types_supported].sort()).toEqual(
        [JWT_BEARER, 'refresh_token', 'client_credentials', EXCHANGE].sort(),
      );
      // No client uses private_key_jwt here.
      expect(meta.token_endpoint_auth_methods_supported).toEqual([
        'client_secret_basic',
        'client_secret_post',
      ]);
      expect(meta.token_endpoint_auth_signing_alg_values_supported).toBeUndefined();
    }
    const plain = await start({ exchange: false });
    const meta = (await (
      await fetch(`${plain.httpUrl}/.well-known/oauth-authorization-server`)
    ).json()) as Record<string, any>;
    expect(meta.token_endpoint).toBe(`${plain.httpUrl}/oauth2/token`);
    expect(meta.grant_types_supported).not.toContain(EXCHANGE);
  });
});

describe('configuration errors name their field', () => {
  const load = (over: (te: Record<string, any>) => void, extra: Record<string, unknown> = {}) => {
    const te = tokenEndpoint() as Record<string, any>;
    over(te);
    return () => loadConfigObject({ issuers: ISSUERS, token_endpoint: te, ...extra }, dir, {});
  };

  it.each([
    [
      'an unknown subject issuer',
      (te: Record<string, any>) => (te.exchange = { subject_issuers: ['corp', 'nope'] }),
      /token_endpoint\.exchange\.subject_issuers\[1\]: no issuer named "nope"/,
    ],
    [
      'an unknown actor issuer',
      (te: Record<string, any>) => (te.exchange = { subject_issuers: ['corp'], actor_issuers: ['ghost'] }),
      /token_endpoint\.exchange\.actor_issuers\[0\]: no issuer named "ghost"/,
    ],
    [
      'empty subject issuers',
      (te: Record<string, any>) => (te.exchange = { subject_issuers: [] }),
      /token_endpoint\.exchange\.subject_issuers/,
    ],
    [
      'an exchange audience our tokens do not carry',
      (te: Record<string, any>) => te.clients[0].exchange_audiences.push('https://unknown.example.com'),
      /token_endpoint\.clients\[0\]\.exchange_audiences\[2\]: "https:\/\/unknown\.example\.com" is not an audience/,
    ],
    [
      'token exchange allowed without token_endpoint.exchange',
      (te: Record<string, any>) => delete te.exchange,
      /token_endpoint\.clients\[0\]\.grant_types: token exchange needs token_endpoint\.exchange/,
    ],
    [
      'an unknown grant type',
      (te: Record<string, any>) => (te.clients[1].grant_types = ['password']),
      /token_endpoint\.clients\[1\]\.grant_types(\[0\])?: must be one of .*client_credentials.*got "password"/,
    ],
    [
      'private_key_jwt for a client with only a secret',
      (te: Record<string, any>) => (te.clients[2].token_endpoint_auth_method = 'private_key_jwt'),
      /token_endpoint\.clients\[2\]\.token_endpoint_auth_method: private_key_jwt needs a certificate_file or jwks_file/,
    ],
    [
      'an unknown authentication method',
      (te: Record<string, any>) => (te.clients[2].token_endpoint_auth_method = 'tls_client_auth'),
      /token_endpoint\.clients\[2\]\.token_endpoint_auth_method: must be one of client_secret_basic, client_secret_post, private_key_jwt, got "tls_client_auth"/,
    ],
    [
      'a relative path',
      (te: Record<string, any>) => (te.path = 'oauth/token'),
      /token_endpoint\.path: "oauth\/token" must be an absolute path/,
    ],
    [
      'a path with a query',
      (te: Record<string, any>) => (te.path = '/token?x=1'),
      /token_endpoint\.path: "\/token\?x=1" must be an absolute path/,
    ],
    [
      'a path with dot segments',
      (te: Record<string, any>) => (te.path = '/a/../token'),
      /token_endpoint\.path: "\/a\/\.\.\/token" must be an absolute path/,
    ],
    [
      'the revoke path',
      (te: Record<string, any>) => (te.path = '/oauth2/revoke'),
      /token_endpoint\.path: "\/oauth2\/revoke" must be an absolute path/,
    ],
  ])('%s', (_what, over, message) => {
    expect(load(over)).toThrow(message);
  });

  it('check-config and serve (exit 1) report them with their field', () => {
    const main = new URL('../../dist/main.js', import.meta.url).pathname;
    expect(existsSync(main), 'dist/main.js is missing: run npm run build').toBe(true);
    const te = tokenEndpoint() as Record<string, any>;
    te.exchange = { subject_issuers: ['nope'] };
    te.clients[1].token_endpoint_auth_method = 'private_key_jwt';
    te.path = '/token?x';
    const file = join(dir, 'bad-config.json');
    writeFileSync(file, JSON.stringify({ issuers: ISSUERS, token_endpoint: te }));
    const env = { ...process.env, AUTHZ_GRPC_ADDRESS: '127.0.0.1:0', AUTHZ_HTTP_ADDRESS: '127.0.0.1:0' };
    for (const command of ['check-config', 'serve']) {
      const r = spawnSync(process.execPath, [main, command, '--config', file], {
        encoding: 'utf8',
        timeout: 30_000,
        env,
      });
      expect(r.status, `${command}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain('token_endpoint.exchange.subject_issuers[0]: no issuer named "nope"');
      expect(r.stderr).toContain(
        'token_endpoint.clients[1].token_endpoint_auth_method: private_key_jwt needs a certificate_file or jwks_file',
      );
      expect(r.stderr).toContain('token_endpoint.path: "/token?x" must be an absolute path');
    }
  });

  it('the test configuration itself is valid (so each case above fails for its own reason)', () => {
    expect(load(() => undefined)).not.toThrow();
    expect(load((te) => (te.path = AXWAY_PATH))).not.toThrow();
  });
});
