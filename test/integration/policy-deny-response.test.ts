// deny_response: a rule's own 401/403 answer.
import { afterAll, describe, expect, it } from 'vitest';
import { closePolicyServices, startPolicyService, startupProblems, token } from '../helpers/policy.js';

afterAll(closePolicyServices);

const loginRedirect = {
  name: 'app',
  match: { path_prefix: '/app' },
  require: { scopes_all: ['app'] },
  deny_response: {
    status: 302,
    headers: { Location: 'https://login.example.com/?next=/app' },
    body: 'error={error} description={error_description} request={request_id}',
  },
};

describe('deny_response', () => {
  it('replaces status, headers and body of a 401, keeping the challenge', async () => {
    const svc = await startPolicyService({ rules: [loginRedirect] });
    const r = await svc.check({ path: '/app/home', headers: { 'x-request-id': 'req-123' } });
    expect(r.decision).toBe('deny');
    expect(r.reason).toBe('token_missing');
    expect(r.http_status).toBe(302);
    expect(r.headers.location).toBe('https://login.example.com/?next=/app');
    expect(r.headers['www-authenticate']).toBe('Bearer realm="envoy-jwt-authz"');
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(r.body).toBe('error=unauthorized description= request=req-123');
  });

  it('is used for the rule’s 403 too, with the error description', async () => {
    const svc = await startPolicyService({ rules: [loginRedirect] });
    const r = await svc.check({ path: '/app/home', token: await token(), headers: { 'x-request-id': 'r2' } });
    expect(r.reason).toBe('insufficient_scope');
    expect(r.http_status).toBe(302);
    expect(r.body).toBe(
      'error=insufficient_scope description=the token lacks the scope this route requires request=r2',
    );
  });

  it('lets the rule replace WWW-Authenticate and keep the default body when none is given', async () => {
    const svc = await startPolicyService({
      rules: [
        {
          name: 'custom',
          match: { path_prefix: '/x' },
          deny_response: { headers: { 'WWW-Authenticate': 'Basic realm="legacy"' } },
        },
      ],
    });
    const r = await svc.check({ path: '/x' });
    expect(r.http_status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Basic realm="legacy"');
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.body).toEqual({ error: 'unauthorized' });
  });

  it('applies to a deny rule and leaves other rules with the defaults', async () => {
    const svc = await startPolicyService({
      rules: [
        {
          name: 'gone',
          match: { path_prefix: '/old' },
          action: 'deny',
          deny_response: { status: 410, body: 'gone' },
        },
      ],
    });
    const gone = await svc.check({ path: '/old/a' });
    expect(gone.http_status).toBe(410);
    expect(gone.body).toBe('gone');
    const other = await svc.check({ path: '/new' });
    expect(other.http_status).toBe(401);
    expect(other.body).toEqual({ error: 'unauthorized' });
  });

  it('refuses a bad status, header or placeholder at load', async () => {
    const problems = await startupProblems({
      rules: [
        {
          name: 'bad',
          match: {},
          deny_response: { status: 200, headers: { 'bad header': 'x', ok: 'a\r\nb' }, body: '{token}' },
        },
      ],
    });
    expect(problems).toEqual(
      expect.arrayContaining([expect.stringMatching(/rules\[0\]\.deny_response\.status: must be >= 300/)]),
    );
    expect(
      await startupProblems({ rules: [{ match: {}, action: 'allow', deny_response: { status: 302 } }] }),
    ).toEqual(['rules[0].deny_response: an "allow" rule never denies']);
    const more = await startupProblems({
      rules: [
        {
          name: 'bad',
          match: {},
          deny_response: { headers: { 'bad header': 'x', ok: 'a\r\nb' }, body: '{token}' },
        },
      ],
    });
    expect(more).toEqual([
      expect.stringMatching(/rules\[0\]\.deny_response\.headers\.bad header: not a header/),
      expect.stringMatching(/rules\[0\]\.deny_response\.headers\.ok: must not contain CR, LF or NUL/),
      expect.stringMatching(/rules\[0\]\.deny_response\.body: unknown placeholder "\{token\}"/),
    ]);
  });
});
