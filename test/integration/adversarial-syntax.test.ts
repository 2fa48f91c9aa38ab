// Adversarial tokens against the real service: malformed compact serialisation, JSON
// tricks, token extraction, and no token ever reaching the logs. Every case asserts the
// exact outcome Envoy receives and the deny reason, and that a valid token still passes.
import { afterEach, describe, expect, it } from 'vitest';
import { b64url, forgeToken, nonCanonicalSignature, standardClaims } from '../helpers/tokens.js';
import {
  ISS,
  AUD,
  RFC8037_A4_TEXT_PAYLOAD,
  rsa,
  good,
  svc,
  sent,
  expectInvalid,
  expectMissing,
  expectAllow,
  send,
  useAdversarialService,
} from '../helpers/adversarial.js';

useAdversarialService();

describe('adversarial tokens (default max_token_bytes)', () => {
  afterEach(async () => {
    // After every case the process still answers a fresh valid token.
    expectAllow(await send(good()));
  });

  it('baseline: a valid RS256 token is allowed, with metadata', async () => {
    const d = await send(good());
    expectAllow(d);
    expect(d.dynamic_metadata).toMatchObject({ issuer: 'corp-idp', sub: 'user-1' });
  });

  // ------------------------------------------------------------------ syntax
  it.each([
    ['1 segment', (t: string) => t.split('.')[0]!],
    ['2 segments', (t: string) => t.split('.').slice(0, 2).join('.')],
    ['2 segments and a trailing dot', (t: string) => t.split('.').slice(0, 2).join('.') + '.'],
    ['4 segments', (t: string) => `${t}.${t.split('.')[2]}`],
    ['5 segments (JWE shape)', (t: string) => `${b64url({ alg: 'RSA-OAEP-256', enc: 'A256GCM' })}.${t}.AAAA`],
    ['5 segments made of the token', (t: string) => `${t}.${t.split('.')[0]}.${t.split('.')[1]}`],
    ['an empty payload segment', (t: string) => `${t.split('.')[0]}..${t.split('.')[2]}`],
    ['a leading dot', (t: string) => `.${t}`],
  ])('%s is malformed', async (_label, mutate) => {
    const t = mutate(good());
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it.each([
    [
      '= padding on the payload',
      (h: string, p: string, s: string) => `${h}.${p}${'='.repeat((4 - (p.length % 4)) % 4 || 1)}.${s}`,
    ],
    ['= padding on the signature', (h: string, p: string, s: string) => `${h}.${p}.${s}==`],
    ['= padding on the header', (h: string, p: string, s: string) => `${h}=.${p}.${s}`],
    [
      'a space inside the payload',
      (h: string, p: string, s: string) => `${h}.${p.slice(0, 10)} ${p.slice(10)}.${s}`,
    ],
    [
      'a newline inside the payload',
      (h: string, p: string, s: string) => `${h}.${p.slice(0, 10)}\n${p.slice(10)}.${s}`,
    ],
    [
      'a tab inside the signature',
      (h: string, p: string, s: string) => `${h}.${p}.${s.slice(0, 10)}\t${s.slice(10)}`,
    ],
    [
      'a CRLF inside the header',
      (h: string, p: string, s: string) => `${h.slice(0, 5)}\r\n${h.slice(5)}.${p}.${s}`,
    ],
    [
      'standard base64 characters (+ /)',
      (h: string, p: string, s: string) => `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}+/`,
    ],
  ])('%s is malformed', async (_label, mutate) => {
    const [h, p, s] = good().split('.') as [string, string, string];
    const t = mutate(h, p, s);
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it('a non-canonical base64url signature (same bytes, different last char) is malformed', async () => {
    const original = good();
    const t = nonCanonicalSignature(original);
    expect(t).not.toBe(original);
    expectAllow(await send(original));
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  // ------------------------------------------------------------------ JSON
  it('a non-JSON header is malformed', async () => {
    const t = forgeToken({
      header: { raw: '{"alg":"RS256",' },
      payload: standardClaims(ISS, AUD),
      signature: 'AAAA',
    });
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it.each([
    ['a JSON array', { raw: '["RS256"]' }],
    ['a JSON string', { raw: '"RS256"' }],
    ['null', { raw: 'null' }],
  ])('a header that is %s is malformed', async (_label, header) => {
    const t = forgeToken({ header, payload: standardClaims(ISS, AUD), signature: 'AAAA' });
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it.each([
    ['non-JSON text', { raw: 'hello world' }],
    ['truncated JSON', { raw: `{"iss":"${ISS}","aud":"${AUD}"` }],
    ['invalid UTF-8 bytes', { raw: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }],
    ['a JSON array', { raw: JSON.stringify([standardClaims(ISS, AUD)]) }],
    ['a JSON string', { raw: JSON.stringify(ISS) }],
    ['a JSON number', { raw: '42' }],
    ['JSON null', { raw: 'null' }],
    ['JSON true', { raw: 'true' }],
  ])('a payload that is %s (validly signed by the trusted key) is malformed', async (_label, payload) => {
    const t = forgeToken({ header: { alg: 'RS256', kid: 'rsa-main' }, payload, key: rsa.privateKey });
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it('the RFC 8037 A.4 EdDSA token (text payload) is malformed', async () => {
    expectInvalid(await send(RFC8037_A4_TEXT_PAYLOAD), 'token_malformed', { token: RFC8037_A4_TEXT_PAYLOAD });
  });

  // ------------------------------------------------------------------ extraction
  it.each(['bearer', 'BEARER', 'bEaReR'])('the %s scheme (any case) is accepted', async (scheme) => {
    const t = good();
    sent.push(t);
    expectAllow(await svc.check({ headers: { authorization: `${scheme} ${t}` } }));
  });

  it('a Basic authorization header is no token (401 without error attribute)', async () => {
    const basic = Buffer.from('alice:secret').toString('base64');
    expectMissing(await svc.check({ headers: { authorization: `Basic ${basic}` } }));
  });

  it('no authorization header, an empty one, or a bare scheme is no token', async () => {
    expectMissing(await svc.check({}));
    expectMissing(await svc.check({ headers: { authorization: '' } }));
    expectMissing(await svc.check({ headers: { authorization: 'Bearer' } }));
    expectMissing(await svc.check({ headers: { authorization: 'Bearer ' } }));
  });

  it('two Authorization headers (joined with ",") are refused: two credentials', async () => {
    const a = good();
    const b = good({ sub: 'user-2' });
    sent.push(a, b);
    for (const second of [b, a]) {
      // The same valid token twice is refused too.
      const d = await svc.check({ token: a, headers: { authorization: `Bearer ${second}` } });
      expect(d).toMatchObject({ decision: 'deny', http_status: 400, reason: 'multiple_credentials' });
      expect(d.body).toEqual({ error: 'invalid_request' });
    }
  });
});

describe('adversarial tokens: logs', () => {
  it('no log line contains a token that was sent, nor a signature segment', async () => {
    const text = svc.logs.text();
    expect(svc.logs.lines.some((l) => l.msg === 'check denied')).toBe(true);
    const distinct = [...new Set(sent)].filter((t) => t.length >= 16);
    expect(distinct.length).toBeGreaterThan(50);
    for (const t of distinct) {
      expect(text.includes(t)).toBe(false);
      const sig = t.split('.')[2];
      if (sig && sig.length >= 16) expect(text.includes(sig)).toBe(false);
    }
  });
});
