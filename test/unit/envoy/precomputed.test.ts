// Denials answered from precomputed bytes: the same bytes for the same request-independent
// denial, never for one whose response reads the request or carries a field the cache
// does not know.
import { describe, expect, it } from 'vitest';
import { deny, type Deny } from '../../../src/core/decision.js';
import { DenyWireCache } from '../../../src/envoy/precomputed.js';
import { checkResponseSerializer } from '../../../src/envoy/protos.js';
import { toCheckResponse } from '../../../src/envoy/response.js';

const serialize = checkResponseSerializer();

function counting(realm: string) {
  const calls: Deny[] = [];
  const encode = (d: Deny) => {
    calls.push(d);
    return serialize(toCheckResponse(d, realm));
  };
  return { calls, encode };
}

describe('DenyWireCache', () => {
  it('encodes a request-independent denial once and answers the same bytes after', () => {
    const cache = new DenyWireCache('r');
    const { calls, encode } = counting('r');
    const a = cache.bytesFor(
      deny('signature_invalid', 'the token signature is invalid', { issuer: 'x' }),
      encode,
    );
    const b = cache.bytesFor(
      deny('signature_invalid', 'the token signature is invalid', {
        issuer: 'y',
        rule: 'api',
        logDetail: 'z',
      }),
      encode,
    );
    expect(calls).toHaveLength(1);
    expect(b).toBe(a);
    expect(
      Buffer.compare(
        a,
        serialize(toCheckResponse(deny('signature_invalid', 'the token signature is invalid'), 'r')),
      ),
    ).toBe(0);
  });

  it('keeps denials apart by reason, description, scope and scheme', () => {
    const cache = new DenyWireCache('r');
    const { calls, encode } = counting('r');
    const variants = [
      deny('signature_invalid', 'a'),
      deny('signature_invalid', 'b'),
      deny('token_expired', 'a'),
      deny('insufficient_scope', 'a', { scope: 'read' }),
      deny('insufficient_scope', 'a', { scope: 'write' }),
      deny('signature_invalid', 'a', { scheme: 'DPoP' }),
    ];
    const bytes = variants.map((d) => cache.bytesFor(d, encode));
    expect(calls).toHaveLength(variants.length);
    expect(new Set(bytes.map((b) => b.toString('hex'))).size).toBe(variants.length);
    for (const [i, d] of variants.entries()) expect(cache.bytesFor({ ...d }, encode)).toBe(bytes[i]);
  });

  it('never reuses a deny_response body that names {request_id}', () => {
    const cache = new DenyWireCache('r');
    const { calls, encode } = counting('r');
    const response = { headers: [], body: 'request={request_id}' };
    const one = cache.bytesFor(deny('token_missing', undefined, { response, requestId: 'one' }), encode);
    const two = cache.bytesFor(deny('token_missing', undefined, { response, requestId: 'two' }), encode);
    expect(calls).toHaveLength(2);
    expect(one.includes('request=one')).toBe(true);
    expect(two.includes('request=two')).toBe(true);
  });

  it('caches a deny_response without {request_id}, apart from another rule’s', () => {
    const cache = new DenyWireCache('r');
    const { calls, encode } = counting('r');
    const r1 = { status: 302, headers: [{ key: 'location', value: '/a' }], body: 'e={error}' };
    const r2 = { status: 302, headers: [{ key: 'location', value: '/b' }], body: 'e={error}' };
    const a = cache.bytesFor(deny('token_missing', undefined, { response: r1, requestId: '1' }), encode);
    expect(cache.bytesFor(deny('token_missing', undefined, { response: r1, requestId: '2' }), encode)).toBe(
      a,
    );
    const b = cache.bytesFor(deny('token_missing', undefined, { response: r2 }), encode);
    expect(calls).toHaveLength(2);
    expect(b.includes('/b')).toBe(true);
  });

  it('encodes afresh a denial carrying a field it does not know', () => {
    const cache = new DenyWireCache('r');
    const { calls, encode } = counting('r');
    const d = { ...deny('token_missing'), extraHeaders: [{ key: 'x-ratelimit', value: '1' }] } as Deny;
    cache.bytesFor(d, encode);
    cache.bytesFor(d, encode);
    expect(calls).toHaveLength(2);
    expect(cache.size).toBe(0);
  });
});
