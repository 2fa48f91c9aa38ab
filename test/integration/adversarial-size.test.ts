// Oversized tokens and kids against the real service, with the default max_token_bytes
// and a raised one: refused quickly, never looked up, never logged.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/harness.js';
import {
  ISS,
  AUD,
  REALM,
  CACHE,
  good,
  jwks,
  expectInvalid,
  expectAllow,
  send,
  tokenOfLength,
  useAdversarialService,
} from '../helpers/adversarial.js';

useAdversarialService();

describe('adversarial tokens (default max_token_bytes)', () => {
  afterEach(async () => {
    // After every case the process still answers a fresh valid token.
    expectAllow(await send(good()));
  });

  // ------------------------------------------------------------------ size
  it('a 1 MB token is too large, and answered quickly', async () => {
    const t = good({ pad: 'x'.repeat(1024 * 1024) });
    expect(t.length).toBeGreaterThan(1024 * 1024);
    expectInvalid(await send(t), 'token_too_large', { token: t });
  });

  it('a valid token of exactly max_token_bytes (16384) is allowed; one byte more is too large', async () => {
    const exact = tokenOfLength(16384);
    expectAllow(await send(exact));
    const over = tokenOfLength(16385);
    expectInvalid(await send(over), 'token_too_large', { token: over });
  });

  it('max_token_bytes counts bytes: 8200 two-byte characters (16400 bytes) are too large', async () => {
    const t = 'é'.repeat(8200);
    expect(Buffer.byteLength(t, 'utf8')).toBeGreaterThan(16384);
    expectInvalid(await send(t), 'token_too_large');
  });
});

describe('adversarial tokens with max_token_bytes 262144', () => {
  let big: TestService;
  beforeAll(async () => {
    big = await startTestService({
      realm: REALM,
      max_token_bytes: 262144,
      issuers: [
        {
          name: 'corp-idp',
          issuer: ISS,
          jwks_uri: jwks.url,
          audiences: [AUD],
          algorithms: ['RS256'],
          jwks_cache: CACHE,
        },
      ],
      rules: [],
      default_action: 'authenticate',
    });
  });
  afterAll(async () => {
    await big?.close();
  });

  it('a kid of 100k characters is an invalid header (not a lookup)', async () => {
    const kid = 'K'.repeat(100_000);
    const before = jwks.requests;
    const t = good({}, { kid });
    expectInvalid(await send(t, {}, big), 'header_invalid', { token: t, kid });
    expect(jwks.requests).toBe(before);
  });

  it('a 1 MB token is still too large', async () => {
    const t = good({ pad: 'x'.repeat(1024 * 1024) });
    expectInvalid(await send(t, {}, big), 'token_too_large', { token: t });
  });

  it('a valid 200 kB token is allowed under the raised limit', async () => {
    expectAllow(await send(good({ pad: 'x'.repeat(150_000) }), {}, big));
  });

  it('logs never contain the large tokens', () => {
    const text = big.logs.text();
    expect(text).not.toContain('K'.repeat(1000));
    expect(text).not.toContain('x'.repeat(1000));
  });
});
