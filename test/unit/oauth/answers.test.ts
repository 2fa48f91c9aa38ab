import { describe, expect, it } from 'vitest';
import { errorAnswer, OAuthError, serialize, tokenAnswer, xmlEscape } from '../../../src/oauth/answers.js';

describe('OAuth response formats', () => {
  const fields = {
    access_token: 'a<b>&"c\'',
    token_type: 'Bearer',
    expires_in: 3600,
    scope: 'read write',
    refresh_token: undefined,
  };

  it('json drops undefined fields', () => {
    expect(JSON.parse(serialize(fields, 'json', 'token_response'))).toEqual({
      access_token: 'a<b>&"c\'',
      token_type: 'Bearer',
      expires_in: 3600,
      scope: 'read write',
    });
  });

  it('urlencoded', () => {
    const p = new URLSearchParams(serialize(fields, 'urlencoded', 'token_response'));
    expect(p.get('access_token')).toBe('a<b>&"c\'');
    expect(p.get('expires_in')).toBe('3600');
    expect(p.has('refresh_token')).toBe(false);
  });

  it('xml: one child element per field, escaped', () => {
    expect(serialize(fields, 'xml', 'token_response')).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><token_response><access_token>a&lt;b&gt;&amp;&quot;c&apos;</access_token>' +
        '<token_type>Bearer</token_type><expires_in>3600</expires_in><scope>read write</scope></token_response>',
    );
    expect(xmlEscape('<&>')).toBe('&lt;&amp;&gt;');
    expect(serialize({ error: 'x\u0001y' }, 'xml', 'error_response')).toContain('<error>xy</error>');
  });

  it('answers carry no-store; invalid_client is 401 with a Basic challenge; unavailable is 503', () => {
    const ok = tokenAnswer({ access_token: 't' }, 'xml');
    expect(ok.headers).toMatchObject({
      'content-type': expect.stringMatching(/^application\/xml/),
      'cache-control': 'no-store',
      pragma: 'no-cache',
    });
    const e = errorAnswer(new OAuthError('invalid_client', 'no'), 'json', 'my "realm"');
    expect(e.status).toBe(401);
    expect(e.headers['www-authenticate']).toBe('Basic realm="my realm"');
    expect(JSON.parse(e.body)).toEqual({ error: 'invalid_client', error_description: 'no' });
    const u = errorAnswer(new OAuthError('temporarily_unavailable'), 'xml', 'r');
    expect(u.status).toBe(503);
    expect(u.body).toContain('<error_response><error>temporarily_unavailable</error></error_response>');
    expect(errorAnswer(new OAuthError('invalid_grant'), 'json', 'r').status).toBe(400);
  });
});
