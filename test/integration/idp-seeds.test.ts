// The identity providers' own sample flows, as their documentation shows them, through
// the REAL service (HTTP token endpoint, then gRPC Check with the issued token):
// - WSO2 API Manager's JWT grant with a stock WSO2 Identity Server JWT: header with x5t
//   and kid, claims incl. azp, 3600 s lifetime, aud = the per-IdP alias (not our audience);
// - Axway's sample assertion: header {"alg":"RS256"}, iss = client_id, aud = the gateway's
//   token endpoint, exp within five minutes, iat, and no jti.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigObject, validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import {
  createSelfSignedCertificate,
  generateEcKeyPair,
  generateRsaKeyPair,
  makeJwks,
  type TestKeyPair,
} from '../helpers/keys.js';

const ISSUER = 'https://authz.example.com';
// Axway's default JWT filter audience.
const AXWAY_AUD = 'http://apigateway/api/oauth/token';
const AXWAY_CLIENT = 'SampleConfidentialApp';
// WSO2 IS defaults: its token endpoint is the iss; aud is the IS OAuth client's key (the "alias").
const WSO2_ISS = 'https://localhost:9444/oauth2/token';
const WSO2_ALIAS = 'q5YUK9hcYLqFWzvZARGomT78z58a';
const APIM_CLIENT = '4WCCBckEpMMM5oFmC59EEtJXpzEa';
const APIM_SECRET = '_htM8KV73STHfzBO4TGbnC9iSswa';
const PARTNER_ISS = 'https://partner.example.com';
const PARTNER_AUD = 'https://authz.example.com/partner';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

let dir: string;
let wso2: TestKeyPair;
let wso2Kid: string;
let wso2X5t: string;
let axway: TestKeyPair;
let partner: TestKeyPair;
let svc: TestService;

function config(): Record<string, unknown> {
  return {
    issuers: [
      // The IdP's certificate in a truststore, under the kid its JWTs carry (seed 002).
      {
        name: 'wso2is',
        issuer: WSO2_ISS,
        audiences: 'api://orders, api://billing',
        truststore: { path: 'wso2-certs' },
      },
      { name: 'partner', issuer: PARTNER_ISS, audiences: ['api://orders'], jwks: makeJwks(partner) },
    ],
    token_endpoint: {
      enabled: true,
      issuer: ISSUER,
      audience: AXWAY_AUD,
      access_token: { signing: { alg: 'ES256' } },
      refresh_token: { enabled: true },
      clients: [
        {
          client_id: AXWAY_CLIENT,
          certificate_file: 'axway-client.crt',
          scopes: ['read'],
          require_jti: false,
        },
        { client_id: APIM_CLIENT, client_secret_file: 'apim.secret', scopes: ['read', 'write'] },
      ],
      grant_issuers: [
        {
          issuer: 'wso2is',
          audience: WSO2_ALIAS,
          max_assertion_lifetime_seconds: 3600,
          copy_claims: ['azp', 'aut'],
        },
        { issuer: 'partner', audience: PARTNER_AUD, require_jti: false },
      ],
    },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'idp-seeds-'));
  wso2 = generateRsaKeyPair();
  const cert = createSelfSignedCertificate(wso2, { subject: 'wso2carbon' });
  // WSO2 IS: x5t = base64url of the hex SHA-256 certificate thumbprint; kid = that + "_RS256".
  wso2X5t = Buffer.from(createHash('sha256').update(cert.der).digest('hex')).toString('base64url');
  wso2Kid = `${wso2X5t}_RS256`;
  mkdirSync(join(dir, 'wso2-certs'));
  writeFileSync(join(dir, 'wso2-certs', `${wso2Kid}.pem`), cert.pem);
  axway = generateRsaKeyPair();
  writeFileSync(
    join(dir, 'axway-client.crt'),
    createSelfSignedCertificate(axway, { subject: AXWAY_CLIENT }).pem,
  );
  writeFileSync(join(dir, 'apim.secret'), `${APIM_SECRET}\n`);
  partner = generateEcKeyPair({ kid: 'partner-1' });
  svc = await startTestService(config(), { baseDir: dir, logLevel: 'info' });
});

afterAll(async () => {
  await svc?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const nowSec = () => Math.floor(Date.now() / 1000);
const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function token(params: Record<string, string>, auth?: string) {
  const res = await fetch(`${svc.httpUrl}/oauth2/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(auth ? { authorization: auth } : {}),
    },
    body: new URLSearchParams(params).toString(),
  });
  const text = await res.text();
  return {
    status: res.status,
    text,
    json: (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : {},
  };
}

/** A JWT shaped exactly like WSO2 Identity Server's sample (header key order included). */
async function wso2Token(overrides: Record<string, unknown> = {}): Promise<string> {
  const iat = nowSec();
  const claims = {
    sub: 'admin',
    aut: 'APPLICATION_USER',
    aud: WSO2_ALIAS,
    nbf: iat,
    azp: WSO2_ALIAS,
    iss: WSO2_ISS,
    exp: iat + 3600,
    iat,
    jti: randomUUID(),
    ...overrides,
  };
  return new SignJWT(claims)
    .setProtectedHeader({ x5t: wso2X5t, kid: wso2Kid, alg: 'RS256' })
    .sign(wso2.privateKey);
}

/** Axway's sample assertion: header {"alg":"RS256"} only, and no jti. */
async function axwayAssertion(lifetime = 300): Promise<string> {
  const iat = nowSec();
  return new SignJWT({ iss: AXWAY_CLIENT, aud: AXWAY_AUD, exp: iat + lifetime, iat })
    .setProtectedHeader({ alg: 'RS256' })
    .sign(axway.privateKey);
}

describe('WSO2 API Manager JWT grant with a stock WSO2 Identity Server JWT (seed 001)', () => {
  it('exchanges the IS token as-is, carries azp/aut, and Check accepts the issued token as "self"', async () => {
    const assertion = await wso2Token();
    const header = decodeProtectedHeader(assertion);
    expect(Object.keys(header)).toEqual(['x5t', 'kid', 'alg']);
    const res = await token({ grant_type: JWT_BEARER, assertion }, basic(APIM_CLIENT, APIM_SECRET));
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ token_type: 'Bearer', scope: 'read write' });
    const access = res.json.access_token as string;
    expect(decodeJwt(access)).toMatchObject({
      iss: ISSUER,
      sub: 'admin',
      client_id: APIM_CLIENT,
      azp: WSO2_ALIAS,
      aut: 'APPLICATION_USER',
    });
    const decision = await svc.check({ token: access });
    expect(decision.decision).toBe('allow');
    expect(decision.dynamic_metadata?.issuer).toBe('self');
  });

  it('copied claims stay in the tokens of a refresh grant', async () => {
    const auth = basic(APIM_CLIENT, APIM_SECRET);
    const first = await token({ grant_type: JWT_BEARER, assertion: await wso2Token() }, auth);
    expect(first.status, first.text).toBe(200);
    const refreshed = await token(
      { grant_type: 'refresh_token', refresh_token: first.json.refresh_token as string },
      auth,
    );
    expect(refreshed.status, refreshed.text).toBe(200);
    expect(decodeJwt(refreshed.json.access_token as string)).toMatchObject({
      sub: 'admin',
      azp: WSO2_ALIAS,
      aut: 'APPLICATION_USER',
    });
  });

  it('the same JWT is refused once used (its jti is remembered)', async () => {
    const assertion = await wso2Token();
    const auth = basic(APIM_CLIENT, APIM_SECRET);
    expect((await token({ grant_type: JWT_BEARER, assertion }, auth)).status).toBe(200);
    const again = await token({ grant_type: JWT_BEARER, assertion }, auth);
    expect(again.status).toBe(400);
    expect(again.json.error).toBe('invalid_grant');
  });

  it('the per-IdP alias is the only accepted aud, and 3600 s is its own lifetime cap', async () => {
    const auth = basic(APIM_CLIENT, APIM_SECRET);
    const wrongAud = await token(
      { grant_type: JWT_BEARER, assertion: await wso2Token({ aud: AXWAY_AUD }) },
      auth,
    );
    expect(wrongAud.json).toMatchObject({ error: 'invalid_grant' });
    expect(String(wrongAud.json.error_description)).toMatch(/audience/);
    const tooLong = await token(
      { grant_type: JWT_BEARER, assertion: await wso2Token({ exp: nowSec() + 3700 }) },
      auth,
    );
    expect(tooLong.json).toMatchObject({ error: 'invalid_grant' });
    expect(String(tooLong.json.error_description)).toMatch(/at most 3600 seconds/);
  });

  it('iat is optional (RFC 7523): an IS token without iat is exchanged', async () => {
    const res = await token(
      { grant_type: JWT_BEARER, assertion: await wso2Token({ iat: undefined, nbf: undefined }) },
      basic(APIM_CLIENT, APIM_SECRET),
    );
    expect(res.status, res.text).toBe(200);
  });

  it('an IdP entry with require_jti: false takes a jti-less JWT once; a second use is invalid_grant', async () => {
    const iat = nowSec();
    const assertion = await new SignJWT({ iss: PARTNER_ISS, sub: 'alice', aud: PARTNER_AUD, exp: iat + 120 })
      .setProtectedHeader({ alg: 'ES256', kid: 'partner-1' })
      .sign(partner.privateKey);
    const auth = basic(APIM_CLIENT, APIM_SECRET);
    const first = await token({ grant_type: JWT_BEARER, assertion }, auth);
    expect(first.status, first.text).toBe(200);
    const second = await token({ grant_type: JWT_BEARER, assertion }, auth);
    expect(second.status).toBe(400);
    expect(second.json).toMatchObject({ error: 'invalid_grant' });
    expect(String(second.json.error_description)).toMatch(/already been used/);
  });
});

describe("Axway's sample assertion without a jti (seed 000)", () => {
  it('is exchanged (format=xml as Axway allows) and the token passes Check', async () => {
    const res = await token({ grant_type: JWT_BEARER, assertion: await axwayAssertion(), format: 'xml' });
    expect(res.status, res.text).toBe(200);
    const access = /<access_token>([^<]+)<\/access_token>/.exec(res.text)?.[1];
    expect(access).toBeDefined();
    expect(decodeJwt(access!)).toMatchObject({ sub: AXWAY_CLIENT, client_id: AXWAY_CLIENT, scope: 'read' });
    expect((await svc.check({ token: access! })).decision).toBe('allow');
  });

  it('replaying the same jti-less assertion is invalid_grant', async () => {
    // RS256 signatures are deterministic: another lifetime makes it a different assertion.
    const assertion = await axwayAssertion(299);
    expect((await token({ grant_type: JWT_BEARER, assertion })).status).toBe(200);
    const again = await token({ grant_type: JWT_BEARER, assertion });
    expect(again.status).toBe(400);
    expect(again.json).toMatchObject({ error: 'invalid_grant' });
  });
});

describe('config: grant_issuers objects, require_jti, comma-separated audiences', () => {
  const problems = (input: Record<string, unknown>): string[] => {
    try {
      validateConfig(input, {});
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
  };
  const idp = { name: 'idp', issuer: 'https://idp', audiences: ['a'], jwks_uri: 'https://idp/jwks' };
  const te = { enabled: true, issuer: ISSUER, audience: AXWAY_AUD };

  it('splits audiences written as one comma-separated string, everywhere audiences are configured', () => {
    const { config: c } = loadConfigObject(
      {
        issuers: [{ ...idp, audiences: 'api://a,api://b' }],
        upstream: { token: { issuer: ISSUER, audiences: 'svc-1, svc-2' } },
        token_endpoint: {
          ...te,
          audience: 'x, y',
          access_token: { audiences: 'api://a,api://b' },
          grant_issuers: [{ issuer: 'idp', audience: 'alias-1,alias-2' }],
        },
      },
      dir,
      {},
    );
    expect(c.issuers[0]!.audiences).toEqual(['api://a', 'api://b']);
    expect(c.upstream.token!.audiences).toEqual(['svc-1', 'svc-2']);
    expect(c.token_endpoint.audience).toEqual(['x', 'y']);
    expect(c.token_endpoint.access_token.audiences).toEqual(['api://a', 'api://b']);
    expect(c.token_endpoint.grant_issuers[0]!.audience).toEqual(['alias-1', 'alias-2']);
  });

  it('a name is shorthand for { issuer: name } with the defaults', () => {
    const { config: c } = loadConfigObject(
      { issuers: [idp], token_endpoint: { ...te, grant_issuers: ['idp'] } },
      dir,
      {},
    );
    expect(c.token_endpoint.grant_issuers).toEqual([
      { issuer: 'idp', require_jti: true, require_iat: false, copy_claims: [] },
    ]);
    expect(
      loadConfigObject(
        { issuers: [idp], token_endpoint: { ...te, clients: [{ client_id: 'c', client_secret_file: 's' }] } },
        dir,
        {},
      ).config.token_endpoint.clients[0]!.require_jti,
    ).toBe(true);
  });

  it('errors name the field', () => {
    expect(
      problems({
        issuers: [idp],
        token_endpoint: {
          ...te,
          clients: [{ client_id: 'c', client_secret_file: 's', require_jti: 'no' }],
          grant_issuers: [
            { issuer: 'nope' },
            {
              issuer: 'idp',
              max_assertion_lifetime_seconds: 0,
              copy_claims: ['email', 'sub'],
              audience: ' , ',
            },
            { issuer: 'idp', require_jti: 'sometimes' },
            42,
            { audience: 'x', colour: 'blue' },
          ],
        },
      }),
    ).toEqual(
      expect.arrayContaining([
        'token_endpoint.clients[0].require_jti: must be true or false, got string',
        'token_endpoint.grant_issuers[1].audience: must not be empty',
        'token_endpoint.grant_issuers[1].max_assertion_lifetime_seconds: must be >= 1, got 0',
        'token_endpoint.grant_issuers[2].require_jti: must be true or false, got string',
        'token_endpoint.grant_issuers[3]: must be an issuer name or an object, got number',
        expect.stringMatching(/^token_endpoint\.grant_issuers\[4\]\.colour: unknown key/),
        'token_endpoint.grant_issuers[4].issuer: required',
      ]),
    );
    expect(
      problems({
        issuers: [idp],
        token_endpoint: {
          ...te,
          grant_issuers: ['nope', { issuer: 'idp', copy_claims: ['email', 'sub'] }, 'idp'],
        },
      }),
    ).toEqual([
      'token_endpoint.grant_issuers[0].issuer: no issuer named "nope"',
      'token_endpoint.grant_issuers[1].copy_claims[1]: "sub" is set by the service itself and cannot be copied',
      'token_endpoint.grant_issuers[2].issuer: "idp" is listed twice',
    ]);
  });
});
