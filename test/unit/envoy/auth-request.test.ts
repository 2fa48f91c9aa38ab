import { describe, expect, it } from 'vitest';
import type { DecodedCheckRequest } from '../../../src/envoy/messages.js';
import { INVALID_REQUEST_ID, loggableRequestId, toAuthRequest } from '../../../src/envoy/auth-request.js';

/** A request of any shape: the mapping must cope with whatever a decoder hands it. */
function hostile(request: unknown): DecodedCheckRequest {
  return request as DecodedCheckRequest;
}

function check(http: unknown, contextExtensions?: unknown): DecodedCheckRequest {
  return hostile({ attributes: { request: { http }, context_extensions: contextExtensions } });
}

function rawEntry(key: string, value: string): { key: string; raw_value: Uint8Array } {
  return { key, raw_value: new Uint8Array(Buffer.from(value, 'latin1')) };
}

describe('toAuthRequest', () => {
  it('maps the plain headers map and the http attributes', () => {
    const req = toAuthRequest(
      check(
        {
          method: 'post',
          path: '/api/items?x=1',
          host: 'api.example.com',
          headers: { authorization: 'Bearer abc', 'x-request-id': 'req-1' },
        },
        { route: 'items' },
      ),
    );
    expect(req).toEqual({
      method: 'POST',
      rawPath: '/api/items?x=1',
      host: 'api.example.com',
      headers: { authorization: 'Bearer abc', 'x-request-id': 'req-1' },
      contextExtensions: { route: 'items' },
      requestId: 'req-1',
    });
  });

  it('reads header_map (raw header values) when the plain map is empty', () => {
    const req = toAuthRequest(
      check({
        method: 'GET',
        path: '/a',
        headers: {},
        header_map: { headers: [rawEntry('Authorization', 'Bearer t'), rawEntry('X-Custom', 'caf\u00e9')] },
      }),
    );
    expect(req?.headers).toEqual({ authorization: 'Bearer t', 'x-custom': 'caf\u00e9' });
  });

  it('prefers a non-empty string value over raw_value in header_map', () => {
    const req = toAuthRequest(
      check({
        header_map: {
          headers: [{ key: 'x-a', value: 'text', raw_value: new Uint8Array(Buffer.from('raw')) }],
        },
      }),
    );
    expect(req?.headers['x-a']).toBe('text');
  });

  it('ignores header_map when the plain headers map has entries', () => {
    const req = toAuthRequest(
      check({ headers: { 'x-plain': '1' }, header_map: { headers: [rawEntry('x-raw', '2')] } }),
    );
    expect(req?.headers).toEqual({ 'x-plain': '1' });
  });

  it('joins repeated header_map entries with a comma, in order', () => {
    const req = toAuthRequest(
      check({
        header_map: {
          headers: [
            rawEntry('Cookie', 'a=1'),
            rawEntry('x-other', 'o'),
            rawEntry('cookie', 'b=2'),
            rawEntry('COOKIE', ''),
          ],
        },
      }),
    );
    expect(req?.headers.cookie).toBe('a=1,b=2,');
    expect(req?.headers['x-other']).toBe('o');
  });

  it('skips header_map entries without a string key and treats a missing value as empty', () => {
    const req = toAuthRequest(
      check({ header_map: { headers: [{ key: 7, value: 'x' }, null, { key: 'x-empty' }] } }),
    );
    expect(req?.headers).toEqual({ 'x-empty': '' });
  });

  it('cannot be tricked into writing an object prototype by a __proto__ header', () => {
    const req = toAuthRequest(
      check({ header_map: { headers: [rawEntry('__proto__', 'x'), rawEntry('a', 'b')] } }),
    );
    expect(Object.getPrototypeOf(req!.headers)).toBeNull();
    expect(req?.headers['__proto__']).toBe('x');
    expect(req?.headers.a).toBe('b');
  });

  it('falls back to the :path, :method and :authority pseudo-headers', () => {
    const req = toAuthRequest(
      check({ headers: { ':path': '/from/pseudo', ':method': 'delete', ':authority': 'pseudo.example' } }),
    );
    expect(req).toMatchObject({ rawPath: '/from/pseudo', method: 'DELETE', host: 'pseudo.example' });
  });

  it('uses the pseudo-headers from header_map too', () => {
    const req = toAuthRequest(
      check({
        header_map: {
          headers: [rawEntry(':path', '/raw/path'), rawEntry(':method', 'PUT'), rawEntry(':authority', 'h')],
        },
      }),
    );
    expect(req).toMatchObject({ rawPath: '/raw/path', method: 'PUT', host: 'h' });
  });

  it('prefers the http attributes over the pseudo-headers', () => {
    const req = toAuthRequest(
      check({
        method: 'GET',
        path: '/attr',
        host: 'attr.example',
        headers: { ':path': '/pseudo', ':method': 'POST', ':authority': 'p' },
      }),
    );
    expect(req).toMatchObject({ rawPath: '/attr', method: 'GET', host: 'attr.example' });
  });

  it('defaults to GET / with an empty host when nothing names them', () => {
    const req = toAuthRequest(check({}));
    expect(req).toEqual({
      method: 'GET',
      rawPath: '/',
      host: '',
      headers: {},
      contextExtensions: {},
      requestId: undefined,
    });
  });

  it('returns undefined when the request carries no http attributes', () => {
    expect(toAuthRequest(hostile(undefined))).toBeUndefined();
    expect(toAuthRequest({})).toBeUndefined();
    expect(toAuthRequest({ attributes: {} })).toBeUndefined();
    expect(toAuthRequest({ attributes: { request: {} } })).toBeUndefined();
    expect(toAuthRequest(hostile({ attributes: { request: { http: 'GET /' } } }))).toBeUndefined();
    expect(toAuthRequest(hostile({ attributes: { request: { http: null } } }))).toBeUndefined();
  });

  it('ignores context_extensions that are not an object', () => {
    expect(toAuthRequest(check({}, 'nope'))?.contextExtensions).toEqual({});
  });

  it('sanitises the request id taken from the headers', () => {
    expect(toAuthRequest(check({ headers: { 'x-request-id': 'bad id\n{"msg":"forged"}' } }))?.requestId).toBe(
      INVALID_REQUEST_ID,
    );
    expect(toAuthRequest(check({ headers: { 'x-request-id': 'a1b2-c3d4' } }))?.requestId).toBe('a1b2-c3d4');
  });
});

describe('loggableRequestId', () => {
  it('keeps a short plain id', () => {
    expect(loggableRequestId('7f3c9a2e-1b4d-4e8f-9a6b-0c1d2e3f4a5b')).toBe(
      '7f3c9a2e-1b4d-4e8f-9a6b-0c1d2e3f4a5b',
    );
    expect(loggableRequestId('svc.v1:req_42')).toBe('svc.v1:req_42');
  });

  it('keeps an id of exactly 128 characters and replaces a longer one', () => {
    expect(loggableRequestId('a'.repeat(128))).toBe('a'.repeat(128));
    expect(loggableRequestId('a'.repeat(129))).toBe(INVALID_REQUEST_ID);
  });

  it('replaces ids with spaces, control characters, quotes or non-ASCII', () => {
    for (const raw of ['a b', 'a\nb', 'a\r\nb', 'a"b', 'a\u0000b', 'caf\u00e9', 'a/b', '{}']) {
      expect(loggableRequestId(raw)).toBe(INVALID_REQUEST_ID);
    }
  });

  it('leaves an absent or empty id absent', () => {
    expect(loggableRequestId(undefined)).toBeUndefined();
    expect(loggableRequestId('')).toBeUndefined();
  });
});
