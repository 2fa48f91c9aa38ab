// A reload (SIGHUP: the config file is read again and handed to App.reload) keeps what
// the running service knows whenever the settings it depends on did not change: the
// store (revocations, used assertion jtis, opaque and refresh tokens), ephemeral
// signing keys, and each issuer's key source with its fetched keys.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { describeCheckResponse, envoyCheckRequest } from '../../src/cli/check.js';
import { loadConfigFile } from '../../src/config/load.js';
import { authorizationClientConstructor } from '../../src/envoy/protos.js';
import { startTestService, type Decision, type TestService } from '../helpers/harness.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import {
  createSelfSignedCertificate,
  generateEcKeyPair,
  generateRsaKeyPair,
  makeJwks,
  type TestKeyPair,
} from '../helpers/keys.js';
import { getRedisUrl, redisSkipReason, uniquePrefix, type RedisHandle } from '../helpers/redis.js';

const ISSUER = 'https://authz.example.com';
const AUD = 'https://authz.example.com/oauth2/token';
const CORP_ISS = 'https://idp.example.com';
const CORP_AUD = 'api://orders';
const DOWN_ISS = 'https://authz.internal';
const CLIENT = 'SampleConfidentialApp';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Check may answer from a store cache for up to 1 s after a revocation. */
const REVOCATION_BOUND_MS = 2000;
const CACHE = { max_age_seconds: 600, cooldown_seconds: 0, timeout_ms: 2000, max_stale_seconds: 3600 };

let dir: string;
let clientKey: TestKeyPair;
let corp: TestKeyPair;
let jwks: JwksServer;
let configCount = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'reload-'));
  clientKey = generateRsaKeyPair({ kid: 'client-1' });
  writeFileSync(join(dir, 'client.crt'), createSelfSignedCertificate(clientKey, { subject: CLIENT }).pem);
  writeFileSync(join(dir, 'signing.jwk.json'), JSON.stringify(generateEcKeyPair({ kid: 'at-1' }).privateJwk));
  corp = generateEcKeyPair({ kid: 'corp-1' });
  jwks = await startJwksServer({ jwks: makeJwks(corp) });
});

afterAll(async () => {
  await jwks?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  jwks.setJwks(makeJwks(corp));
  jwks.resetCounts();
});

interface Opts {
  format?: 'jwt' | 'opaque';
  /** Token endpoint and downstream token signed with keys generated in memory (no key file). */
  ephemeral?: boolean;
  /** alg of the ephemeral keys (default ES256). */
  alg?: string;
  store?: Record<string, unknown>;
  jwksUri?: string;
  corpAudiences?: string[];
  /** A rule that changes nothing for the paths used here: makes a reload a real config change. */
  extraRule?: boolean;
  downstreamTtl?: number;
}

function config(opts: Opts = {}): Record<string, unknown> {
  const alg = opts.alg ?? 'ES256';
  return {
    issuers: [
      {
        name: 'corp',
        issuer: CORP_ISS,
        audiences: opts.corpAudiences ?? [CORP_AUD],
        jwks_uri: opts.jwksUri ?? jwks.url,
        jwks_cache: CACHE,
      },
    ],
    rules: opts.extraRule
      ? [{ name: 'reports', match: { path_prefix: '/reports' }, require: { scopes_all: ['reports'] } }]
      : [],
    default_action: 'authenticate',
    upstream: {
      token: {
        issuer: DOWN_ISS,
        audiences: ['backend'],
        ttl_seconds: opts.downstreamTtl ?? 300,
        signing: { alg },
      },
    },
    token_endpoint: {
      enabled: true,
      issuer: ISSUER,
      audience: AUD,
      access_token: {
        format: opts.format ?? 'jwt',
        signing: opts.ephemeral ? { alg } : { alg: 'ES256', key_file: 'signing.jwk.json' },
      },
      refresh_token: { enabled: true },
      clients: [{ client_id: CLIENT, certificate_file: 'client.crt', scopes: ['read', 'write'] }],
    },
    ...(opts.store ? { store: opts.store } : {}),
  };
}

interface Svc extends TestService {
  readonly file: string;
}

const services: TestService[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.close();
});

/** Starts the service from a config file, as `serve --config FILE` does. */
async function serve(opts: Opts = {}): Promise<Svc> {
  const file = join(dir, `config-${++configCount}.yaml`);
  const svc = await startTestService(config(opts), { configFile: file, logLevel: 'info' });
  services.push(svc);
  return Object.assign(svc, { file });
}

/** What SIGHUP does: rewrite the file, read it again, reload. */
async function reload(svc: Svc, opts: Opts): Promise<void> {
  writeFileSync(svc.file, JSON.stringify(config(opts)));
  await svc.service.reload(loadConfigFile(svc.file, {}));
}

/** An assertion signed by the registered client (iss = sub = client_id). */
function assertion(): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'RS256' })
    .setIssuer(CLIENT)
    .setSubject(CLIENT)
    .setAudience(AUD)
    .setIssuedAt(now)
    .setExpirationTime(now + 120)
    .sign(clientKey.privateKey);
}

/** A token of the remote identity provider, signed with `key` under `kid`. */
function corpToken(key: TestKeyPair = corp, kid = key.kid): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ scope: 'read' })
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
    .setIssuer(CORP_ISS)
    .setSubject('alice')
    .setAudience(CORP_AUD)
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(key.privateKey);
}

async function post(svc: Pick<TestService, 'httpUrl'>, path: string, form: Record<string, string>) {
  const res = await fetch(`${svc.httpUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  return { status: res.status, json: (text === '' ? {} : JSON.parse(text)) as Record<string, any> };
}

async function grant(svc: Pick<TestService, 'httpUrl'>, assertionJwt?: string) {
  const res = await post(svc, '/oauth2/token', {
    grant_type: JWT_BEARER,
    assertion: assertionJwt ?? (await assertion()),
  });
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  return res.json as { access_token: string; refresh_token: string };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls Check until it answers as `until` says (at most limitMs). */
async function pollCheck(
  svc: TestService,
  token: string,
  until: (d: Decision) => boolean,
  limitMs = REVOCATION_BOUND_MS,
): Promise<Decision> {
  const t0 = Date.now();
  for (;;) {
    const d = await svc.check({ token });
    if (until(d)) return d;
    if (Date.now() - t0 >= limitMs) throw new Error(`no matching decision: ${JSON.stringify(d)}`);
    await sleep(100); // real polling: how soon a revocation reaches Check is the bound under test
  }
}

function expectAllowed(d: Decision): void {
  expect(d.decision, JSON.stringify(d)).toBe('allow');
}

function expectDenied(d: Decision, http: number, reason: string): void {
  expect(d.decision, JSON.stringify(d)).toBe('deny');
  expect(d.http_status).toBe(http);
  expect(d.reason).toBe(reason);
}

const storeNotKept = (svc: TestService) =>
  svc.logs.lines.filter((l) => l.msg.startsWith('store settings changed'));

describe('a reload keeps the memory store', () => {
  it('a JWT revoked before the reload is still refused by Check after it', async () => {
    const svc = await serve();
    const { access_token: token } = await grant(svc);
    expectAllowed(await svc.check({ token }));
    const res = await post(svc, '/oauth2/revoke', {
      token,
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: await assertion(),
    });
    expect(res.status).toBe(200);
    expectDenied(await pollCheck(svc, token, (d) => d.decision === 'deny'), 401, 'token_revoked');

    await reload(svc, { extraRule: true });
    expectDenied(await svc.check({ token }), 401, 'token_revoked');
    // A token issued after the reload, by the same key, is fine: only the revoked one is refused.
    expectAllowed(await svc.check({ token: (await grant(svc)).access_token }));
    expect(storeNotKept(svc)).toEqual([]);
  });

  it('an assertion used before the reload is refused (invalid_grant) after it', async () => {
    const svc = await serve();
    const used = await assertion();
    await grant(svc, used);

    await reload(svc, { extraRule: true });
    const again = await post(svc, '/oauth2/token', { grant_type: JWT_BEARER, assertion: used });
    expect(again.status).toBe(400);
    expect(again.json.error).toBe('invalid_grant');
    // A fresh assertion still works.
    await grant(svc);
  });

  it('opaque access and refresh tokens issued before the reload keep working after it', async () => {
    const svc = await serve({ format: 'opaque' });
    const first = await grant(svc);
    expectAllowed(await svc.check({ token: first.access_token }));

    await reload(svc, { format: 'opaque', extraRule: true });
    expectAllowed(await svc.check({ token: first.access_token }));
    const refreshed = await post(svc, '/oauth2/token', {
      grant_type: 'refresh_token',
      refresh_token: first.refresh_token,
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: await assertion(),
    });
    expect(refreshed.status, JSON.stringify(refreshed.json)).toBe(200);
    expectAllowed(await svc.check({ token: refreshed.json.access_token as string }));
  });

  it('the old runtime closing after the drain does not close the store the new one took over', async () => {
    const svc = await serve({ format: 'opaque' });
    const first = await grant(svc);
    const old = svc.service.current;
    await reload(svc, { format: 'opaque', extraRule: true });
    expect(svc.service.current.store).toBe(old.store);
    await old.close();
    expect(svc.service.current.store!.isReady()).toBe(true);
    expectAllowed(await svc.check({ token: first.access_token }));
    expectAllowed(await svc.check({ token: (await grant(svc)).access_token }));
  });

  it('changed store settings: a new store, and a log line says the state was not carried over', async () => {
    const svc = await serve();
    const used = await assertion();
    await grant(svc, used);

    await reload(svc, { store: { type: 'memory', purge_interval_seconds: 30 } });
    const lines = storeNotKept(svc);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe('warn');
    expect(lines[0]!.msg).toContain('not carried over');
    // As the log line says: the new store does not know the used assertion.
    await grant(svc, used);
  });
});

describe('a reload keeps ephemeral signing keys', () => {
  async function mintedVia(svc: TestService): Promise<string> {
    const d = await svc.check({ token: await corpToken() });
    expectAllowed(d);
    return d.headers['x-jwt-assertion']!;
  }

  async function publishedKeys(svc: TestService): Promise<JSONWebKeySet> {
    const res = await fetch(`${svc.httpUrl}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    return (await res.json()) as JSONWebKeySet;
  }

  it('a downstream token minted before the reload verifies against /.well-known/jwks.json after it; new ones use the same kid', async () => {
    const svc = await serve({ ephemeral: true });
    const before = await mintedVia(svc);
    const kid = decodeProtectedHeader(before).kid;
    expect(kid).toBeTypeOf('string');

    // The downstream token's own settings change (ttl), its signing section does not.
    await reload(svc, { ephemeral: true, downstreamTtl: 120 });
    const keys = createLocalJWKSet(await publishedKeys(svc));
    const { payload } = await jwtVerify(before, keys, { issuer: DOWN_ISS, audience: 'backend' });
    expect(payload.sub).toBe('alice');
    const after = await mintedVia(svc);
    expect(decodeProtectedHeader(after).kid).toBe(kid);
    const verified = await jwtVerify(after, keys, { issuer: DOWN_ISS, audience: 'backend' });
    expect(verified.payload.exp! - verified.payload.iat!).toBe(120);
  });

  it('a token-endpoint JWT signed with an ephemeral key before the reload still passes Check after it', async () => {
    const svc = await serve({ ephemeral: true });
    const { access_token: token } = await grant(svc);
    expectAllowed(await svc.check({ token }));

    await reload(svc, { ephemeral: true, extraRule: true });
    const d = await svc.check({ token });
    expectAllowed(d);
    expect(d.dynamic_metadata?.issuer).toBe('self');
  });

  it('a changed alg means a new ephemeral key: tokens of the old one no longer verify', async () => {
    const svc = await serve({ ephemeral: true });
    const { access_token: token } = await grant(svc);
    const kid = decodeProtectedHeader(await mintedVia(svc)).kid;

    await reload(svc, { ephemeral: true, alg: 'ES384' });
    expect((await svc.check({ token })).decision).toBe('deny');
    const after = await mintedVia(svc);
    expect(decodeProtectedHeader(after).alg).toBe('ES384');
    expect(decodeProtectedHeader(after).kid).not.toBe(kid);
    expect((await publishedKeys(svc)).keys.map((k) => k.kid)).not.toContain(kid);
  });
});

describe('a reload keeps fetched key sets', () => {
  it('unchanged key-source settings: the remote JWKS is not fetched again, and the old runtime closing leaves it running', async () => {
    const svc = await serve();
    expect(jwks.requests).toBe(1);
    expectAllowed(await svc.check({ token: await corpToken() }));
    const old = svc.service.current;

    // Only fields the verifier reads change (audiences), plus a rule.
    await reload(svc, { corpAudiences: [CORP_AUD, 'api://other'], extraRule: true });
    expect(jwks.requests).toBe(1);
    expectAllowed(await svc.check({ token: await corpToken() }));
    const source = svc.service.current.issuers.find((i) => i.name === 'corp')!.keySource;
    expect(source).toBe(old.issuers.find((i) => i.name === 'corp')!.keySource);

    // The old graph is closed after the drain; the key source it shares with the new one
    // keeps working: a token with a new kid still triggers a refetch (a closed source never fetches).
    await old.close();
    const rotated = generateEcKeyPair({ kid: 'corp-2' });
    jwks.setJwks(makeJwks(corp, rotated));
    expectAllowed(await svc.check({ token: await corpToken(rotated) }));
    expect(jwks.requests).toBe(2);
  });

  it('a changed jwks_uri builds a new key source (fetched at once); the old one is closed with the old runtime', async () => {
    const svc = await serve();
    expect(jwks.requests).toBe(1);
    const old = svc.service.current;
    const oldSource = old.issuers.find((i) => i.name === 'corp')!.keySource;
    const other = await startJwksServer({ jwks: makeJwks(corp) });
    try {
      await reload(svc, { jwksUri: other.url });
      expect(other.requests).toBe(1);
      expect(svc.service.current.issuers.find((i) => i.name === 'corp')!.keySource).not.toBe(oldSource);
      expectAllowed(await svc.check({ token: await corpToken() }));

      await old.close();
      await oldSource.refreshForUnknownKid();
      expect(jwks.requests).toBe(1);
      expect(other.requests).toBe(1);
    } finally {
      await other.close();
    }
  });
});

describe('shutdown right after a reload', () => {
  it('closes the replaced runtime too, and with it the key source both shared', async () => {
    const svc = await serve();
    const source = svc.service.current.issuers.find((i) => i.name === 'corp')!.keySource;
    await reload(svc, { extraRule: true });
    services.splice(services.indexOf(svc), 1);
    await svc.close();
    // A running source refetches for an unknown kid (cooldown 0); a closed one never fetches.
    const before = jwks.requests;
    await source.refreshForUnknownKid();
    expect(jwks.requests).toBe(before);
  });
});

describe('a reload keeps file-based key sources and re-reads them', () => {
  it('the running jwks_file source is kept, and a file changed just before the reload is read at once', async () => {
    const file = join(dir, `config-${++configCount}.yaml`);
    const keysFile = join(dir, `corp-${configCount}.jwks.json`);
    writeFileSync(keysFile, JSON.stringify(makeJwks(corp)));
    const cfg = (audiences: string[]) => ({
      issuers: [{ name: 'corp', issuer: CORP_ISS, audiences, jwks_file: keysFile }],
      default_action: 'authenticate',
    });
    const svc = Object.assign(
      await startTestService(cfg([CORP_AUD]), { configFile: file, logLevel: 'info' }),
      {
        file,
      },
    );
    services.push(svc);
    expectAllowed(await svc.check({ token: await corpToken() }));
    const source = svc.service.current.issuers[0]!.keySource;

    const rotated = generateEcKeyPair({ kid: 'corp-file-2' });
    writeFileSync(keysFile, JSON.stringify(makeJwks(rotated)));
    writeFileSync(file, JSON.stringify(cfg([CORP_AUD, 'api://other'])));
    await svc.service.reload(loadConfigFile(file, {}));
    expect(svc.service.current.issuers[0]!.keySource).toBe(source);
    expectAllowed(await svc.check({ token: await corpToken(rotated) }));
  });
});

describe('a reload keeps the Redis store connection', () => {
  let redis: RedisHandle | undefined;
  beforeAll(async () => {
    redis = await getRedisUrl();
  }, 60_000);
  afterAll(async () => {
    await redis?.stop();
  });

  it('unchanged store settings: the same connection serves on after the old runtime closed', async (ctx) => {
    if (!redis) ctx.skip(redisSkipReason);
    const store = { type: 'redis', redis_url: redis!.url, key_prefix: uniquePrefix('reload') };
    const svc = await serve({ format: 'opaque', store });
    // Real polling: the service waits for a real Redis connection.
    for (let i = 0; i < 50 && !svc.service.current.ready(); i++) await sleep(100);
    const first = await grant(svc);
    const old = svc.service.current;

    await reload(svc, { format: 'opaque', store, extraRule: true });
    expect(svc.service.current.store).toBe(old.store);
    await old.close();
    expect(svc.service.current.store!.isReady()).toBe(true);
    expectAllowed(await svc.check({ token: first.access_token }));
    expect(storeNotKept(svc)).toEqual([]);

    await reload(svc, { format: 'opaque', store: { ...store, key_prefix: uniquePrefix('reload') } });
    const lines = storeNotKept(svc);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe('info');
  });
});

describe('SIGHUP to `serve --config FILE` (node dist/main.js; npm test builds first)', () => {
  const MAIN = new URL('../../dist/main.js', import.meta.url).pathname;
  let child: ChildProcess | undefined;
  afterEach(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
  });

  it('a revoked token stays revoked and an ephemeral-key token stays valid across the signal', async () => {
    const file = join(dir, `config-${++configCount}.yaml`);
    writeFileSync(file, JSON.stringify(config({ ephemeral: true })));
    child = spawn(process.execPath, [MAIN, 'serve', '--config', file], {
      env: {
        ...process.env,
        AUTHZ_LOG_LEVEL: 'info',
        AUTHZ_GRPC_ADDRESS: '127.0.0.1:0',
        AUTHZ_HTTP_ADDRESS: '127.0.0.1:0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (b) => (out += b));
    child.stderr!.on('data', (b) => (out += b));
    const waitFor = async (re: RegExp, from = 0): Promise<RegExpMatchArray> => {
      for (let t = 0; t < 300; t++) {
        const m = out.slice(from).match(re);
        if (m) return m;
        if (child!.exitCode !== null) throw new Error(`exited ${child!.exitCode}: ${out}`);
        await sleep(50); // real polling: output of a real child process
      }
      throw new Error(`timeout waiting for ${re}: ${out}`);
    };
    const [, grpcPort, httpPort] = await waitFor(/"grpc_port":(\d+),"http_port":(\d+)/);
    await waitFor(/"msg":"ready"/);
    const http = { httpUrl: `http://127.0.0.1:${httpPort}` };
    const Client = authorizationClientConstructor();
    const client = new Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure()) as any;
    const check = (token: string): Promise<Decision> =>
      new Promise((resolve, reject) =>
        client.Check(
          envoyCheckRequest({
            method: 'GET',
            path: '/api/orders',
            host: 'api.example.com',
            token,
            headers: [],
            context: [],
          }),
          { deadline: Date.now() + 5000 },
          (err: Error | null, res: unknown) =>
            err ? reject(err) : resolve(describeCheckResponse(res as any) as unknown as Decision),
        ),
      );
    try {
      const revoked = (await grant(http)).access_token;
      const kept = (await grant(http)).access_token;
      const res = await post(http, '/oauth2/revoke', {
        token: revoked,
        client_assertion_type: CLIENT_ASSERTION_TYPE,
        client_assertion: await assertion(),
      });
      expect(res.status).toBe(200);
      for (let t = 0; (await check(revoked)).decision !== 'deny'; t++) {
        expect(t).toBeLessThan(20);
        await sleep(100); // real polling: the revocation bound of a real process under test
      }

      const mark = out.length;
      writeFileSync(file, JSON.stringify(config({ ephemeral: true, extraRule: true })));
      child.kill('SIGHUP');
      await waitFor(/configuration reloaded/, mark);
      expectDenied(await check(revoked), 401, 'token_revoked');
      expectAllowed(await check(kept));
    } finally {
      client.close();
    }
    child.kill('SIGTERM');
  });
});
