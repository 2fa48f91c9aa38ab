import { describe, expect, it } from 'vitest';
import {
  DENY_OUTCOMES,
  GRPC_OK,
  GRPC_PERMISSION_DENIED,
  GRPC_UNAUTHENTICATED,
  GRPC_UNAVAILABLE,
  deny,
  type DenyReason,
} from '../../../src/core/decision.js';
import { challenge, toCheckResponse, toStruct, toValue } from '../../../src/envoy/response.js';
import { allowDecision } from '../../helpers/decisions.js';

const REALM = 'api';

const allow = allowDecision;

function headerOf(response: any, key: string): string | undefined {
  const h = response.denied_response.headers.find((e: any) => e.header.key === key);
  return h?.header.value;
}

// Every reason, with the status pair Envoy must see.
const EXPECTED: Record<DenyReason, [grpc: number, http: number]> = {
  token_missing: [GRPC_UNAUTHENTICATED, 401],
  token_too_large: [GRPC_UNAUTHENTICATED, 401],
  token_malformed: [GRPC_UNAUTHENTICATED, 401],
  issuer_unknown: [GRPC_UNAUTHENTICATED, 401],
  alg_not_allowed: [GRPC_UNAUTHENTICATED, 401],
  header_invalid: [GRPC_UNAUTHENTICATED, 401],
  crit_unsupported: [GRPC_UNAUTHENTICATED, 401],
  key_not_found: [GRPC_UNAUTHENTICATED, 401],
  signature_invalid: [GRPC_UNAUTHENTICATED, 401],
  token_expired: [GRPC_UNAUTHENTICATED, 401],
  token_not_yet_valid: [GRPC_UNAUTHENTICATED, 401],
  iat_in_future: [GRPC_UNAUTHENTICATED, 401],
  audience_invalid: [GRPC_UNAUTHENTICATED, 401],
  claim_missing: [GRPC_UNAUTHENTICATED, 401],
  claim_invalid: [GRPC_UNAUTHENTICATED, 401],
  lifetime_exceeded: [GRPC_UNAUTHENTICATED, 401],
  typ_invalid: [GRPC_UNAUTHENTICATED, 401],
  token_revoked: [GRPC_UNAUTHENTICATED, 401],
  token_inactive: [GRPC_UNAUTHENTICATED, 401],
  insufficient_scope: [GRPC_PERMISSION_DENIED, 403],
  rule_deny: [GRPC_PERMISSION_DENIED, 403],
  claims_condition: [GRPC_PERMISSION_DENIED, 403],
  issuer_not_allowed: [GRPC_PERMISSION_DENIED, 403],
  peer_not_allowed: [GRPC_PERMISSION_DENIED, 403],
  keys_unavailable: [GRPC_UNAVAILABLE, 503],
  introspection_unavailable: [GRPC_UNAVAILABLE, 503],
  store_unavailable: [GRPC_UNAVAILABLE, 503],
  mint_failed: [GRPC_UNAVAILABLE, 500],
  internal_error: [GRPC_UNAVAILABLE, 500],
  request_invalid: [GRPC_PERMISSION_DENIED, 400],
  multiple_credentials: [GRPC_PERMISSION_DENIED, 400],
  cnf_missing: [GRPC_UNAUTHENTICATED, 401],
  cnf_mismatch: [GRPC_UNAUTHENTICATED, 401],
  dpop_invalid: [GRPC_UNAUTHENTICATED, 401],
  dpop_replayed: [GRPC_UNAUTHENTICATED, 401],
  expression_false: [GRPC_PERMISSION_DENIED, 403],
  expression_error: [GRPC_PERMISSION_DENIED, 403],
  rate_limited: [8, 429],
};

describe('toCheckResponse: denials', () => {
  it('covers every deny reason of the decision table', () => {
    expect(Object.keys(EXPECTED).sort()).toEqual(Object.keys(DENY_OUTCOMES).sort());
  });

  for (const [reason, [grpc, http]] of Object.entries(EXPECTED) as [DenyReason, [number, number]][]) {
    it(`${reason} → gRPC ${grpc}, HTTP ${http}, JSON body, reason as status message`, () => {
      const r = toCheckResponse(deny(reason), REALM);
      expect(r.status).toEqual({ code: grpc, message: reason });
      expect(r.denied_response!.status).toEqual({ code: http });
      expect(r.ok_response).toBeUndefined();
      expect(r.denied_response!.headers[0]).toEqual({
        header: { key: 'content-type', value: 'application/json' },
      });
      // append unset: it defaults to false (replace) in a CheckResponse.
      for (const h of r.denied_response!.headers) expect(h.append).toBeUndefined();
      expect(() => JSON.parse(r.denied_response!.body)).not.toThrow();
      const hasChallenge = http === 401 || reason === 'insufficient_scope';
      expect(headerOf(r, 'www-authenticate') !== undefined).toBe(hasChallenge);
    });
  }

  it('a missing token: bare Bearer challenge and "unauthorized" body', () => {
    const r = toCheckResponse(deny('token_missing'), REALM);
    expect(headerOf(r, 'www-authenticate')).toBe('Bearer realm="api"');
    expect(JSON.parse(r.denied_response!.body)).toEqual({ error: 'unauthorized' });
  });

  it('an invalid token: error="invalid_token" with the description in challenge and body', () => {
    const r = toCheckResponse(deny('token_expired', 'the token has expired'), REALM);
    expect(headerOf(r, 'www-authenticate')).toBe(
      'Bearer realm="api", error="invalid_token", error_description="the token has expired"',
    );
    expect(JSON.parse(r.denied_response!.body)).toEqual({
      error: 'invalid_token',
      error_description: 'the token has expired',
    });
  });

  it('an invalid token without a description gets a generic one', () => {
    const r = toCheckResponse(deny('signature_invalid'), REALM);
    expect(headerOf(r, 'www-authenticate')).toContain('error_description="the token is invalid"');
    expect(JSON.parse(r.denied_response!.body).error_description).toBe('the token is invalid');
  });

  it('insufficient scope: 403 challenge naming the scopes needed', () => {
    const r = toCheckResponse(deny('insufficient_scope', undefined, { scope: 'read write' }), REALM);
    expect(headerOf(r, 'www-authenticate')).toBe(
      'Bearer realm="api", error="insufficient_scope", error_description="the token lacks the required scope", scope="read write"',
    );
    expect(JSON.parse(r.denied_response!.body)).toEqual({
      error: 'insufficient_scope',
      error_description: 'the token lacks the required scope',
      scope: 'read write',
    });
  });

  it('quotes backslashes and double quotes in the realm and description', () => {
    const r = toCheckResponse(deny('claim_invalid', 'claim "x\\y" is wrong'), 'my "realm"');
    expect(headerOf(r, 'www-authenticate')).toBe(
      'Bearer realm="my \\"realm\\"", error="invalid_token", error_description="claim \\"x\\\\y\\" is wrong"',
    );
    expect(JSON.parse(r.denied_response!.body).error_description).toBe('claim "x\\y" is wrong');
  });

  it('the fixed bodies of forbidden, bad request, unavailable and server errors', () => {
    const body = (reason: DenyReason) =>
      JSON.parse(toCheckResponse(deny(reason), REALM).denied_response!.body);
    expect(body('rule_deny')).toEqual({ error: 'forbidden' });
    expect(body('request_invalid')).toEqual({ error: 'invalid_request' });
    expect(body('keys_unavailable')).toEqual({ error: 'temporarily_unavailable' });
    expect(body('internal_error')).toEqual({ error: 'server_error' });
  });

  it('never sends the log-only detail', () => {
    const r = toCheckResponse(deny('internal_error', 'boom', { logDetail: 'secret detail' }), REALM);
    expect(JSON.stringify(r)).not.toContain('secret detail');
    expect(JSON.stringify(r)).not.toContain('boom');
  });

  it('challenge() is undefined for kinds that have none', () => {
    expect(challenge(deny('rule_deny'), REALM)).toBeUndefined();
    expect(challenge(deny('keys_unavailable'), REALM)).toBeUndefined();
  });
});

describe('toCheckResponse: allows', () => {
  it('OK status with headers set (append unset: replace), headers and query parameters removed', () => {
    const r = toCheckResponse(
      allow({
        headers: [
          { key: 'x-user', value: 'alice' },
          { key: 'authorization', value: 'Bearer minted' },
        ],
        headersToRemove: ['x-forwarded-user', 'cookie'],
        queryParametersToRemove: ['access_token'],
      }),
      REALM,
    );
    expect(r.status).toEqual({ code: GRPC_OK });
    expect(r.denied_response).toBeUndefined();
    expect(r.ok_response).toEqual({
      headers: [
        { header: { key: 'x-user', value: 'alice' } },
        { header: { key: 'authorization', value: 'Bearer minted' } },
      ],
      headers_to_remove: ['x-forwarded-user', 'cookie'],
      query_parameters_to_remove: ['access_token'],
    });
  });

  it('no dynamic_metadata for an anonymous allow', () => {
    expect(toCheckResponse(allow({ reason: 'rule_allow' }), REALM).dynamic_metadata).toBeUndefined();
  });

  it('dynamic_metadata is a Struct of issuer, sub, scope and claims', () => {
    const r = toCheckResponse(
      allow({
        metadata: {
          issuer: 'https://idp',
          sub: 'alice',
          scope: 'read',
          claims: { n: 3, ok: true, none: null, roles: ['a', 'b'], org: { id: 'x' } },
        },
      }),
      REALM,
    );
    expect(r.dynamic_metadata).toEqual({
      fields: {
        issuer: { stringValue: 'https://idp' },
        scope: { stringValue: 'read' },
        claims: {
          structValue: {
            fields: {
              n: { numberValue: 3 },
              ok: { boolValue: true },
              none: { nullValue: 0 },
              roles: { listValue: { values: [{ stringValue: 'a' }, { stringValue: 'b' }] } },
              org: { structValue: { fields: { id: { stringValue: 'x' } } } },
            },
          },
        },
        sub: { stringValue: 'alice' },
      },
    });
  });

  it('leaves sub out of the metadata when the token has none', () => {
    const r = toCheckResponse(allow({ metadata: { issuer: 'i', scope: '', claims: {} } }), REALM);
    expect(Object.keys(r.dynamic_metadata!.fields).sort()).toEqual(['claims', 'issuer', 'scope']);
  });
});

describe('Struct encoding', () => {
  it('non-finite numbers, undefined and functions become null', () => {
    expect(toValue(Number.NaN)).toEqual({ nullValue: 0 });
    expect(toValue(Number.POSITIVE_INFINITY)).toEqual({ nullValue: 0 });
    expect(toValue(undefined)).toEqual({ nullValue: 0 });
    expect(toValue(() => 1)).toEqual({ nullValue: 0 });
    expect(toValue(10n)).toEqual({ nullValue: 0 });
  });

  it('stops at a nesting depth so a deep claim cannot blow the stack', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 100; i++) deep = [deep];
    const encoded = JSON.stringify(toStruct({ deep: deep as unknown }));
    expect(encoded).toContain('"nullValue":0');
    expect(encoded).not.toContain('leaf');
  });
});
