// What an allowed request carries upstream: claim headers (spoofed ones removed and
// encoded safely), the original token kept or removed, dynamic_metadata and claim
// mappings (docs/upstream.md "What upstream services receive").
import { describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import {
  corpToken,
  partnerToken,
  expectAllow,
  expectForbidden,
  svc,
  sources,
  forwarding,
  useAuthzServices,
} from '../helpers/authz.js';

useAuthzServices();

// ------------------------------------------------------------------ spoofing

describe('spoofed identity headers', () => {
  it('client-sent x-user-id / x-jwt-assertion are overwritten on authenticated allow', async () => {
    const raw = await svc.checkRaw({
      path: '/api/x',
      token: await corpToken(),
      headers: { 'x-user-id': 'admin', 'x-jwt-assertion': 'forged' },
    });
    expect(raw.status.code).toBe(0);
    const set = Object.fromEntries(
      raw.ok_response.headers.map((h: any) => [h.header.key, { value: h.header.value, append: h.append }]),
    );
    // append unset: Envoy's default in a CheckResponse is to replace the client's value.
    expect(set['x-user-id']).toEqual({ value: 'alice', append: undefined });
    expect(set['x-jwt-assertion'].append).toBeUndefined();
    expect(set['x-jwt-assertion'].value).not.toBe('forged');
    expect(decodeJwt(set['x-jwt-assertion'].value).sub).toBe('alice');
    expect(raw.ok_response.headers_to_remove ?? []).not.toContain('x-user-id');
    expect(raw.ok_response.headers_to_remove ?? []).not.toContain('x-jwt-assertion');
  });

  it('spoofed headers are removed on public routes', async () => {
    const d = await svc.check({
      path: '/public/x',
      headers: { 'x-user-id': 'admin', 'x-jwt-assertion': 'forged', 'x-user-roles': 'admin' },
    });
    expectAllow(d);
    expect(d.headers).toEqual({});
    expect(d.headers_to_remove).toEqual(
      expect.arrayContaining(['x-user-id', 'x-jwt-assertion', 'x-user-roles']),
    );
  });

  it('a claim the token lacks puts its header in headers_to_remove', async () => {
    const d = await svc.check({
      path: '/api/x',
      token: await corpToken(),
      headers: { 'x-email': 'ceo@example.com' },
    });
    expectAllow(d);
    expect(d.headers['x-email']).toBeUndefined();
    expect(d.headers_to_remove).toContain('x-email');
    expect(d.headers_to_remove).toContain('x-profile');
    expect(d.headers_to_remove).not.toContain('x-user-id');
  });
});

// ------------------------------------------------------------------ original token

describe('forward_original_token', () => {
  it('false (default): Authorization header token → authorization removed', async () => {
    const d = await svc.check({ path: '/api/x', token: await corpToken() });
    expectAllow(d);
    expect(d.headers_to_remove).toContain('authorization');
    expect(d.query_parameters_to_remove ?? []).toEqual([]);
  });

  it('false: query token → query_parameters_to_remove [access_token]', async () => {
    const t = await corpToken();
    const d = await sources.check({ path: `/api/x?a=1&access_token=${t}` });
    expectAllow(d);
    expect(d.query_parameters_to_remove).toEqual(['access_token']);
    expect(d.headers_to_remove).not.toContain('authorization');
    expect(d.headers.cookie).toBeUndefined();
  });

  it('false: cookie token → cookie header re-set without it, others kept', async () => {
    const t = await corpToken();
    const d = await sources.check({
      path: '/api/x',
      headers: { cookie: `theme=dark; access_token=${t}; lang=en` },
    });
    expectAllow(d);
    expect(d.headers.cookie).toBe('theme=dark; lang=en');
    expect(d.headers_to_remove).not.toContain('cookie');
    expect(d.query_parameters_to_remove ?? []).toEqual([]);
  });

  it('false: the rewritten cookie header is set with append unset (replace)', async () => {
    const raw = await sources.checkRaw({
      path: '/api/x',
      headers: { cookie: `access_token=${await corpToken()}; theme=dark` },
    });
    expect(raw.status.code).toBe(0);
    const cookie = raw.ok_response.headers.find((h: any) => h.header.key === 'cookie');
    expect(cookie?.header.value).toBe('theme=dark');
    expect(cookie?.append).toBeUndefined();
  });

  it('false: cookie token as the only cookie → cookie header removed', async () => {
    const d = await sources.check({
      path: '/api/x',
      headers: { cookie: `access_token=${await corpToken()}` },
    });
    expectAllow(d);
    expect(d.headers.cookie).toBeUndefined();
    expect(d.headers_to_remove).toContain('cookie');
  });

  it('true: nothing about the original token is removed', async () => {
    const t = await corpToken();
    const viaHeader = await forwarding.check({ path: '/api/x', token: t });
    expectAllow(viaHeader);
    expect(viaHeader.headers_to_remove).not.toContain('authorization');

    const viaQuery = await forwarding.check({ path: `/api/x?access_token=${t}` });
    expectAllow(viaQuery);
    expect(viaQuery.query_parameters_to_remove ?? []).toEqual([]);

    const viaCookie = await forwarding.check({
      path: '/api/x',
      headers: { cookie: `a=1; access_token=${t}` },
    });
    expectAllow(viaCookie);
    expect(viaCookie.headers.cookie).toBeUndefined();
    expect(viaCookie.headers_to_remove).not.toContain('cookie');
  });
});

// ------------------------------------------------------------------ metadata & claims

describe('dynamic_metadata and claim mappings', () => {
  it('carries {issuer, sub, scope, claims}', async () => {
    const d = await svc.check({ path: '/api/x', token: await corpToken({ scope: 'read write' }) });
    expectAllow(d);
    expect(d.dynamic_metadata).toMatchObject({ issuer: 'corp', sub: 'alice', scope: 'read write' });
    expect(d.dynamic_metadata?.claims).toMatchObject({
      sub: 'alice',
      roles: ['eng', 'ops'],
      department: 'eng',
    });
  });

  it('issuer is the configured name for the second issuer too', async () => {
    const d = await svc.check({ path: '/api/x', token: await partnerToken({ scp: ['read', 'write'] }) });
    expectAllow(d);
    expect(d.dynamic_metadata).toMatchObject({ issuer: 'partner', sub: 'bob', scope: 'read write' });
  });

  it('nested realm_access.roles → roles feeds require.claims and a claim header', async () => {
    const d = await svc.check({ path: '/claims/arr', token: await corpToken() });
    expectAllow(d);
    expect(d.headers['x-user-roles']).toBe('eng,ops');
    expectForbidden(
      await svc.check({ path: '/claims/arr', token: await corpToken({ realm_access: { roles: ['eng'] } }) }),
    );
  });

  it('a mapping onto an existing claim replaces it', async () => {
    const d = await svc.check({
      path: '/claims/str',
      token: await corpToken({ roles: ['superadmin'], department: 'sales', org: { department: 'eng' } }),
    });
    expectAllow(d);
    expect(d.headers['x-user-roles']).toBe('eng,ops');
    expect(d.headers['x-department']).toBe('eng');
    expect(d.dynamic_metadata?.claims.roles).toEqual(['eng', 'ops']);
    expect(d.dynamic_metadata?.claims.department).toBe('eng');
  });

  it('a mapping replaces an existing claim also when that makes a condition fail', async () => {
    const d = await svc.check({
      path: '/claims/str',
      token: await corpToken({ department: 'eng', org: { department: 'sales' } }),
    });
    expectForbidden(d);
  });

  it('"__proto__": {"admin": true} does not grant admin and does not pollute', async () => {
    const evil = JSON.parse('{"__proto__": {"admin": true}, "constructor": {"prototype": {"admin": true}}}');
    const evilToken = await corpToken(evil);
    const sent = JSON.parse(Buffer.from(evilToken.split('.')[1]!, 'base64url').toString());
    expect(Object.keys(sent)).toEqual(expect.arrayContaining(['__proto__', 'constructor']));
    const d = await svc.check({ path: '/claims/admin', token: evilToken });
    expectForbidden(d);
    expect(({} as any).admin).toBeUndefined();
    expect((Object.prototype as any).admin).toBeUndefined();
    // A clean token afterwards is not granted either.
    expectForbidden(await svc.check({ path: '/claims/admin', token: await corpToken() }));
    // A real admin claim is.
    expectAllow(await svc.check({ path: '/claims/admin', token: await corpToken({ admin: true }) }));
    const ok = await svc.check({ path: '/api/x', token: await corpToken(evil) });
    expectAllow(ok);
    expect(Object.keys(ok.dynamic_metadata?.claims ?? {})).not.toContain('__proto__');
    expect(Object.keys(ok.dynamic_metadata?.claims ?? {})).not.toContain('constructor');
    expect(ok.dynamic_metadata?.claims.admin).toBeUndefined();
  });
});

// ------------------------------------------------------------------ claim headers

describe('claim header encoding', () => {
  it('arrays joined with ",", objects as JSON, numbers and booleans as strings', async () => {
    const d = await svc.check({
      path: '/api/x',
      token: await corpToken({ profile: { team: 'core', n: 1 }, level: 7, verified: true }),
    });
    expectAllow(d);
    expect(d.headers['x-user-roles']).toBe('eng,ops');
    expect(JSON.parse(d.headers['x-profile']!)).toEqual({ team: 'core', n: 1 });
    expect(d.headers['x-profile']).toBe('{"team":"core","n":1}');
    expect(d.headers['x-level']).toBe('7');
    expect(d.headers['x-verified']).toBe('true');
  });

  it('false and 0 are encoded, not dropped', async () => {
    const d = await svc.check({ path: '/api/x', token: await corpToken({ level: 0, verified: false }) });
    expect(d.headers['x-level']).toBe('0');
    expect(d.headers['x-verified']).toBe('false');
  });

  it('a claim containing CR/LF is not set, is removed, and logged as a warning', async () => {
    const before = svc.logs.lines.length;
    const d = await svc.check({
      path: '/api/x',
      token: await corpToken({ note: 'hello\r\nx-user-id: admin' }),
      headers: { 'x-note': 'spoofed' },
    });
    expectAllow(d);
    expect(d.headers['x-note']).toBeUndefined();
    expect(d.headers_to_remove).toContain('x-note');
    expect(d.headers['x-user-id']).toBe('alice');
    const warns = svc.logs.lines.slice(before).filter((l) => l.level === 'warn' && l.header === 'x-note');
    expect(warns.length).toBe(1);
    expect(warns[0]!.claim).toBe('note');
    expect(JSON.stringify(warns[0])).not.toContain('hello');
  });
});
