// A truststore issuer finds a WSO2 token's certificate by kid (the alias), else by its
// x5t / x5t#S256 thumbprint in either form WSO2 writes (base64url of the raw digest, or
// base64url of the lower-case hex digest), else, when the token names neither, by
// gateway_certificate_alias. Through the real gRPC Check.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import {
  createSelfSignedCertificate,
  generateRsaKeyPair,
  makeJwks,
  type TestKeyPair,
} from '../helpers/keys.js';

const GW_ISS = 'https://apim.example.com:9443/oauth2/token';
const JWKS_ISS = 'https://idp.example.com';
const AUD = 'api://orders';

let dir: string;
let gateway: TestKeyPair;
let other: TestKeyPair;
let jwksKey: TestKeyPair;
let der: Buffer;
let svc: TestService;

const hexForm = (alg: string, bytes: Buffer) =>
  Buffer.from(createHash(alg).update(bytes).digest('hex')).toString('base64url');
const rawForm = (alg: string, bytes: Buffer) => createHash(alg).update(bytes).digest('base64url');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wso2-thumbprints-'));
  gateway = generateRsaKeyPair();
  other = generateRsaKeyPair();
  jwksKey = generateRsaKeyPair({ kid: 'idp-1' });
  const cert = createSelfSignedCertificate(gateway, { subject: 'wso2carbon' });
  der = cert.der;
  mkdirSync(join(dir, 'certs'));
  // WSO2's stock alias for its gateway certificate; a second certificate beside it.
  writeFileSync(join(dir, 'certs', 'wso2carbon.pem'), cert.pem);
  writeFileSync(
    join(dir, 'certs', 'other.pem'),
    createSelfSignedCertificate(other, { subject: 'other' }).pem,
  );
  svc = await startTestService(
    {
      issuers: [
        {
          name: 'apim',
          issuer: GW_ISS,
          audiences: [AUD],
          truststore: { path: 'certs', gateway_certificate_alias: 'wso2carbon' },
        },
        {
          name: 'idp',
          issuer: JWKS_ISS,
          audiences: [AUD],
          jwks: makeJwks({ ...jwksKey.publicJwk, x5t: rawForm('sha1', der) }),
        },
      ],
    },
    { baseDir: dir },
  );
});

afterAll(async () => {
  await svc?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function tokenWith(
  header: Record<string, unknown>,
  key: TestKeyPair = gateway,
  iss = GW_ISS,
): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss, sub: 'admin', aud: AUD, iat, exp: iat + 600, jti: randomUUID() })
    .setProtectedHeader({ alg: 'RS256', ...header })
    .sign(key.privateKey);
}

describe('truststore issuer: WSO2 thumbprints', () => {
  it('x5t as base64url of the hex SHA-256 thumbprint and no kid (WSO2 Identity Server) selects the certificate', async () => {
    const d = await svc.check({ token: await tokenWith({ x5t: hexForm('sha256', der) }) });
    expect(d.decision, JSON.stringify(d)).toBe('allow');
    expect(d.dynamic_metadata?.issuer).toBe('apim');
  });

  it('x5t as base64url of the hex SHA-1 thumbprint, and the standard raw form', async () => {
    for (const x5t of [hexForm('sha1', der), rawForm('sha1', der)]) {
      const d = await svc.check({ token: await tokenWith({ x5t }) });
      expect(d.decision, `${x5t}: ${JSON.stringify(d)}`).toBe('allow');
    }
  });

  it('x5t#S256 in either form', async () => {
    for (const t of [hexForm('sha256', der), rawForm('sha256', der)]) {
      const d = await svc.check({ token: await tokenWith({ 'x5t#S256': t }) });
      expect(d.decision, `${t}: ${JSON.stringify(d)}`).toBe('allow');
    }
  });

  it('the kid (alias) comes first; a thumbprint of another certificate does not help a wrong signature', async () => {
    expect((await svc.check({ token: await tokenWith({ kid: 'other' }, other) })).decision).toBe('allow');
    // Signed by "other", but its thumbprint names the gateway certificate: the signature fails.
    const d = await svc.check({ token: await tokenWith({ x5t: hexForm('sha256', der) }, other) });
    expect(d.reason).toBe('signature_invalid');
  });

  it('with neither kid nor thumbprint, gateway_certificate_alias is used', async () => {
    expect((await svc.check({ token: await tokenWith({}) })).decision).toBe('allow');
    // Not "other": only the default alias is tried.
    expect((await svc.check({ token: await tokenWith({}, other) })).reason).toBe('signature_invalid');
  });

  it('a thumbprint that names no certificate is key_not_found (upper-case hex is not a form WSO2 writes)', async () => {
    const upper = Buffer.from(createHash('sha256').update(der).digest('hex').toUpperCase()).toString(
      'base64url',
    );
    for (const header of [{ x5t: upper }, { 'x5t#S256': hexForm('sha256', Buffer.from('x')) }]) {
      const d = await svc.check({ token: await tokenWith(header) });
      expect(d.reason, JSON.stringify(header)).toBe('key_not_found');
    }
  });

  it('a JWKS issuer keeps to the standard forms: the hex form of a thumbprint its key declares names nothing', async () => {
    const raw = await tokenWith({ x5t: rawForm('sha1', der) }, jwksKey, JWKS_ISS);
    expect((await svc.check({ token: raw })).decision).toBe('allow');
    const hex = await tokenWith({ x5t: hexForm('sha1', der) }, jwksKey, JWKS_ISS);
    expect((await svc.check({ token: hex })).reason).toBe('key_not_found');
  });
});

describe('config: truststore.gateway_certificate_alias', () => {
  const problems = (truststore: Record<string, unknown>): string[] => {
    try {
      validateConfig(
        {
          issuers: [
            { name: 'gw', issuer: GW_ISS, audiences: [AUD], truststore: { path: '.', ...truststore } },
          ],
        },
        {},
      );
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
  };

  it('is accepted alone, and is an error beside default_alias', () => {
    expect(problems({ gateway_certificate_alias: 'wso2carbon' })).toEqual([]);
    expect(problems({ gateway_certificate_alias: 'a', default_alias: 'b' })).toEqual([
      expect.stringContaining('issuers[0].truststore.gateway_certificate_alias'),
    ]);
    expect(problems({ gateway_certificate_alias: '' })).toEqual([
      expect.stringContaining('issuers[0].truststore.gateway_certificate_alias'),
    ]);
  });
});
