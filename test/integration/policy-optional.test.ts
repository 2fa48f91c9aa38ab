// action: optional — no token is an anonymous caller; a present token must verify.
import { afterAll, describe, expect, it } from 'vitest';
import { closePolicyServices, otherKey, startPolicyService, token } from '../helpers/policy.js';

afterAll(closePolicyServices);

const upstream = {
  claim_headers: { 'x-user-id': 'sub' },
  token: { issuer: 'https://authz.internal', audiences: ['backend'] },
};

describe('action: optional', () => {
  it('lets a request without a token through as anonymous, removing injectable headers', async () => {
    const svc = await startPolicyService({
      rules: [{ name: 'catalog', match: { path_prefix: '/catalog' }, action: 'optional' }],
      upstream,
    });
    const r = await svc.check({
      path: '/catalog/items',
      headers: { 'x-user-id': 'mallory', 'x-jwt-assertion': 'forged' },
    });
    expect(r.decision).toBe('allow');
    expect(r.headers).toEqual({});
    expect(r.headers_to_remove).toEqual(
      expect.arrayContaining(['x-user-id', 'x-jwt-assertion', 'authorization']),
    );
    expect(r.dynamic_metadata).toEqual({ anonymous: true });
  });

  it('enriches a request with a valid token like authenticate', async () => {
    const svc = await startPolicyService({
      rules: [{ name: 'catalog', match: { path_prefix: '/catalog' }, action: 'optional' }],
      upstream,
    });
    const r = await svc.check({ path: '/catalog/items', token: await token() });
    expect(r.decision).toBe('allow');
    expect(r.headers['x-user-id']).toBe('alice');
    expect(r.headers['x-jwt-assertion']).toMatch(/^ey/);
    expect(r.dynamic_metadata).toMatchObject({ issuer: 'corp', sub: 'alice' });
    expect(r.dynamic_metadata?.anonymous).toBeUndefined();
  });

  it('refuses a present token that does not verify (401), never falling back to anonymous', async () => {
    const svc = await startPolicyService({
      rules: [{ name: 'catalog', match: { path_prefix: '/catalog' }, action: 'optional' }],
      upstream,
    });
    const r = await svc.check({ path: '/catalog/items', token: await token({}, { key: otherKey }) });
    expect(r.decision).toBe('deny');
    expect(r.http_status).toBe(401);
    expect(r.reason).toBe('signature_invalid');
  });

  it('applies require to a present token', async () => {
    const svc = await startPolicyService({
      rules: [
        {
          name: 'catalog',
          match: { path_prefix: '/catalog' },
          action: 'optional',
          require: { scopes_all: ['catalog:read'] },
        },
      ],
    });
    const anonymous = await svc.check({ path: '/catalog/items' });
    expect(anonymous.decision).toBe('allow');
    const lacking = await svc.check({ path: '/catalog/items', token: await token() });
    expect(lacking.http_status).toBe(403);
    expect(lacking.reason).toBe('insufficient_scope');
  });

  it('is accepted as a context_extensions action', async () => {
    const svc = await startPolicyService({});
    const without = await svc.check({ path: '/anything' });
    expect(without.http_status).toBe(401);
    const r = await svc.check({ path: '/anything', context: { action: 'optional' } });
    expect(r.decision).toBe('allow');
    expect(r.dynamic_metadata).toEqual({ anonymous: true });
  });

  it('does not skip authentication on a path with an encoded separator', async () => {
    const svc = await startPolicyService({
      rules: [{ name: 'catalog', match: { path_prefix: '/catalog' }, action: 'optional' }],
      reject_ambiguous_paths: false,
    });
    const r = await svc.check({ path: '/catalog/a%2Fb' });
    expect(r.decision).toBe('deny');
    expect(r.http_status).toBe(401);
  });
});
