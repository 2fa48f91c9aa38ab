// A token read from a query parameter is removed by Envoy through
// query_parameters_to_remove, which compares the raw (still percent-encoded) keys of
// the query. Backends read keys decoded (and often case-folded), so the service lists
// every raw spelling of the parameter, also when the same token was allowed before under
// the plain name; a second spelling with a value is a second credential.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/harness.js';
import { generateEcKeyPair } from '../helpers/keys.js';
import { forgeToken } from '../helpers/tokens.js';

const key = generateEcKeyPair();
const ISS = 'https://idp.query.test';

describe('query token removal names the raw parameter keys', () => {
  let svc: TestService;
  const now = Math.floor(Date.now() / 1000);
  const jwt = forgeToken({
    header: { alg: 'ES256', kid: key.kid, typ: 'JWT' },
    payload: { iss: ISS, aud: 'api', sub: 'alice', iat: now, exp: now + 300 },
    key: key.privateKey,
  });

  beforeAll(async () => {
    svc = await startTestService({
      issuers: [
        {
          name: 'idp',
          issuer: ISS,
          audiences: ['api'],
          algorithms: ['ES256'],
          jwks: { keys: [key.publicJwk] },
        },
      ],
      token_sources: [{ query: 'access_token' }],
      rules: [],
      default_action: 'authenticate',
      upstream: { forward_original_token: false, claim_headers: { 'x-user-id': 'sub' } },
    });
  });
  afterAll(() => svc?.close());

  it('plain name → that name', async () => {
    const d = await svc.check({ path: `/x?access_token=${jwt}` });
    expect(d.decision).toBe('allow');
    expect(d.query_parameters_to_remove).toEqual(['access_token']);
  });

  it('a percent-encoded name is not a token source (Envoy could not strip it by that name)', async () => {
    const d = await svc.check({ path: `/x?a=1&access%5Ftoken=${jwt}` });
    expect(d.decision).toBe('deny');
    expect(d.http_status).toBe(401);
    expect(d.body).toEqual({ error: 'unauthorized' });
  });

  it('on an allow route every spelling of an unverified query credential is removed', async () => {
    const d = await svc.check({
      path: `/public?access%5Ftoken=${jwt}&%61ccess_token=x&keep=1`,
      context: { action: 'allow' },
    });
    expect(d.decision).toBe('allow');
    expect(d.query_parameters_to_remove).toEqual(
      expect.arrayContaining(['access_token', 'access%5Ftoken', '%61ccess_token']),
    );
  });

  it('several spellings with a value in one query → a second credential, refused', async () => {
    const d = await svc.check({
      path: `/x?access_token=${jwt}&%61ccess_token=1&access_token=2&access%5ftoken=3&other=4`,
    });
    expect(d.decision).toBe('deny');
    expect(d.reason).toBe('multiple_credentials');
  });

  it('empty spellings beside the token → all of them, once each', async () => {
    const d = await svc.check({
      path: `/x?access_token=${jwt}&%61ccess_token=&access%5ftoken&other=4`,
    });
    expect(d.decision).toBe('allow');
    expect(d.query_parameters_to_remove).toEqual(['access_token', '%61ccess_token', 'access%5ftoken']);
  });
});
