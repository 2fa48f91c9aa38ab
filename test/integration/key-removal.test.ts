// Removing a key removes trust, through Check on the real service: a jwks_file rewritten to
// {"keys":[]}, a deleted truststore certificate, a deleted secret_file, and an identity
// provider answering 200 with a JWKS that holds no usable key all refuse the tokens those
// keys verified (401 key_not_found, even for a token the verified-token cache holds), and
// /readyz shows the issuer as no_keys. An outage (500, invalid JSON) or a local file that
// exists but does not parse keeps the old keys.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type Decision, type TestService } from '../helpers/harness.js';
import { startJwksServer, type JwksServer, type JwksServerMode } from '../helpers/jwks-server.js';
import {
  createSelfSignedCertificate,
  generateRsaKeyPair,
  makeJwks,
  type TestKeyPair,
} from '../helpers/keys.js';
import { mintJwt, standardClaims, type SigningKey } from '../helpers/tokens.js';
import { sleep } from '../helpers/wait.js';

const AUD = 'api://orders';
/** Scheduled refresh of the remote JWKS (the smallest max_age the config accepts). */
const CACHE = { max_age_seconds: 1, cooldown_seconds: 1, timeout_ms: 500, max_stale_seconds: 3600 };
/** Local files are polled every second; remote keys refresh every max_age: a few rounds of margin. */
const WITHIN_MS = 5000;

// Real waits below: files on disk and JWKS servers on real sockets are watched by the real service.

const fileKey = generateRsaKeyPair({ kid: 'file-key' });
const certKey = generateRsaKeyPair({ kid: 'partner' });
const remoteKey = generateRsaKeyPair({ kid: 'remote-key' });
const weakKey = generateRsaKeyPair({ kid: 'weak', bits: 1024 });
const SECRET = randomBytes(32);

let dir: string;
let svc: TestService;
const servers: Record<string, JwksServer> = {};
const REMOTE = ['idp-empty', 'idp-unusable', 'idp-500', 'idp-invalid-json'] as const;

const token = (iss: string, key: SigningKey, kid: string | undefined, alg = 'RS256'): string =>
  mintJwt({ privateKey: key, kid, alg }, standardClaims(`https://${iss}.example.com`, AUD));
const rsaToken = (iss: string, key: TestKeyPair) => token(iss, key.privateKey, key.kid);

async function readyz(): Promise<{ status: number; body: any }> {
  const res = await fetch(`${svc.httpUrl}/readyz`);
  return { status: res.status, body: await res.json() };
}

/** Checks until the decision has the reason, or WITHIN_MS passed; returns the last decision. */
async function checkUntil(t: string, reason: string): Promise<Decision> {
  const end = Date.now() + WITHIN_MS;
  for (;;) {
    const d = await svc.check({ token: t });
    if (d.reason === reason || Date.now() > end) return d;
    await sleep(100); // real polling: key changes must reach Check within WITHIN_MS
  }
}

async function expectAllowedTwice(t: string): Promise<void> {
  // The second check is answered from the verified-token cache (and its memoised decision).
  for (let i = 0; i < 2; i++) expect((await svc.check({ token: t })).decision).toBe('allow');
}

function expectKeyNotFound(d: Decision): void {
  expect({
    decision: d.decision,
    grpc_status: d.grpc_status,
    http_status: d.http_status,
    reason: d.reason,
  }).toEqual({ decision: 'deny', grpc_status: 16, http_status: 401, reason: 'key_not_found' });
  expect(d.body).toEqual({ error: 'invalid_token', error_description: expect.any(String) });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'key-removal-'));
  for (const name of ['file-idp', 'file-garbled']) {
    writeFileSync(join(dir, `${name}.json`), JSON.stringify(makeJwks(fileKey)));
  }
  mkdirSync(join(dir, 'certs'));
  writeFileSync(join(dir, 'certs', 'partner.pem'), createSelfSignedCertificate(certKey).pem);
  writeFileSync(join(dir, 'hs.secret'), SECRET);
  for (const name of REMOTE) servers[name] = await startJwksServer({ jwks: makeJwks(remoteKey) });

  const issuer = (name: string, source: Record<string, unknown>) => ({
    name,
    issuer: `https://${name}.example.com`,
    audiences: [AUD],
    ...source,
  });
  svc = await startTestService({
    issuers: [
      issuer('file-idp', { jwks_file: join(dir, 'file-idp.json') }),
      issuer('file-garbled', { jwks_file: join(dir, 'file-garbled.json') }),
      issuer('gateway', { truststore: { path: join(dir, 'certs'), default_alias: 'partner' } }),
      issuer('hmac', { secret_file: join(dir, 'hs.secret') }),
      ...REMOTE.map((name) => issuer(name, { jwks_uri: servers[name]!.url, jwks_cache: CACHE })),
    ],
    rules: [],
    default_action: 'authenticate',
  });
});

afterAll(async () => {
  await svc?.close();
  for (const s of Object.values(servers)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('local key sources: removal withdraws trust within the reload interval', () => {
  it('jwks_file rewritten to {"keys":[]}: a token valid before gets 401 key_not_found; /readyz no_keys', async () => {
    const t = rsaToken('file-idp', fileKey);
    await expectAllowedTwice(t);
    writeFileSync(join(dir, 'file-idp.json'), '{"keys":[]}');
    expectKeyNotFound(await checkUntil(t, 'key_not_found'));
    const { status, body } = await readyz();
    expect(status).toBe(200);
    expect(body.issuers['file-idp']).toMatchObject({ state: 'no_keys', keys: 0, loaded: true });
  });

  it('jwks_file that exists but is invalid JSON: the old keys stay, with an error log', async () => {
    const t = rsaToken('file-garbled', fileKey);
    await expectAllowedTwice(t);
    writeFileSync(join(dir, 'file-garbled.json'), '{"keys": [ {"kty": "RSA", ');
    const end = Date.now() + WITHIN_MS;
    const failed = () =>
      svc.logs.lines.find(
        (l) =>
          l.level === 'error' && l.issuer === 'file-garbled' && String(l.reason).includes('invalid json'),
      );
    while (!failed() && Date.now() < end) await sleep(50);
    expect(failed()).toMatchObject({ msg: 'key reload failed; keeping the previous keys' });
    expect((await svc.check({ token: t })).decision).toBe('allow');
    expect((await svc.check({ token: rsaToken('file-garbled', fileKey) })).decision).toBe('allow');
    const { body } = await readyz();
    expect(body.issuers['file-garbled']).toMatchObject({
      state: 'stale',
      keys: 1,
      lastError: expect.stringContaining('invalid json'),
    });
  });

  it('truststore certificate deleted: a token valid before gets 401 key_not_found; /readyz no_keys', async () => {
    const byAlias = rsaToken('gateway', certKey);
    const byDefault = token('gateway', certKey.privateKey, undefined);
    await expectAllowedTwice(byAlias);
    await expectAllowedTwice(byDefault);
    unlinkSync(join(dir, 'certs', 'partner.pem'));
    expectKeyNotFound(await checkUntil(byAlias, 'key_not_found'));
    expectKeyNotFound(await svc.check({ token: byDefault }));
    expect((await readyz()).body.issuers.gateway).toMatchObject({ state: 'no_keys', keys: 0 });
  });

  it('secret_file deleted: an HS256 token valid before gets 401 key_not_found; /readyz no_keys', async () => {
    const t = token('hmac', SECRET, undefined, 'HS256');
    await expectAllowedTwice(t);
    unlinkSync(join(dir, 'hs.secret'));
    expectKeyNotFound(await checkUntil(t, 'key_not_found'));
    expect((await readyz()).body.issuers.hmac).toMatchObject({ state: 'no_keys', keys: 0 });
    expect(svc.logs.text()).not.toContain(SECRET.toString('base64'));
  });
});

describe('remote JWKS: a 200 answer with a well-formed JWKS is authoritative', () => {
  it.each([
    ['{"keys":[]}', 'idp-empty', { keys: [] }],
    [
      'only unusable keys (RSA-1024, the same key marked use: enc)',
      'idp-unusable',
      { keys: [weakKey.publicJwk, { ...remoteKey.publicJwk, use: 'enc' }] },
    ],
  ])(
    'a JWKS holding %s: a token valid before gets 401 key_not_found; /readyz no_keys',
    async (_n, name, jwks) => {
      const t = rsaToken(name, remoteKey);
      await expectAllowedTwice(t);
      servers[name]!.setJwks(jwks);
      expectKeyNotFound(await checkUntil(t, 'key_not_found'));
      const { status, body } = await readyz();
      expect(status).toBe(200);
      expect(body.issuers[name]).toMatchObject({ state: 'no_keys', keys: 0, loaded: true });
      expect(body.issuers[name].lastError).toBeUndefined();
      expect(
        svc.logs.lines.some((l) => l.level === 'warn' && l.issuer === name && /no usable key/.test(l.msg)),
      ).toBe(true);
    },
  );

  it.each([
    ['status500', 'idp-500', 'status 500'],
    ['invalidJson', 'idp-invalid-json', 'invalid json'],
  ] as [JwksServerMode, string, string][])(
    'an outage (%s) keeps the old keys: the token stays valid, /readyz stale',
    async (mode, name, reason) => {
      const t = rsaToken(name, remoteKey);
      await expectAllowedTwice(t);
      servers[name]!.setMode(mode);
      const end = Date.now() + WITHIN_MS;
      const failed = () =>
        svc.logs.lines.find((l) => l.msg === 'JWKS fetch failed' && l.issuer === name && l.reason === reason);
      while (!failed() && Date.now() < end) await sleep(50);
      expect(failed()).toMatchObject({ serving: 'last good keys' });
      expect((await svc.check({ token: t })).decision).toBe('allow');
      expect((await svc.check({ token: rsaToken(name, remoteKey) })).decision).toBe('allow');
      expect((await readyz()).body.issuers[name]).toMatchObject({
        state: 'stale',
        keys: 1,
        lastError: reason,
      });
    },
  );
});
