import { createHash } from 'node:crypto';
import type { ParsedJws } from '../authn/jws.js';
import { verifyParsedJwt, type CompiledIssuer } from '../authn/verify.js';
import { systemClock } from '../core/time.js';
import { OAuthError } from './answers.js';
import type { AssertionPolicy, OAuthState } from './state.js';

// JWT assertions (RFC 7523): the grant's `assertion` and a client's `client_assertion`.

/** Clock skew allowed on assertions from registered clients (they have no issuer entry to configure it). */
export const CLIENT_ASSERTION_SKEW_SECONDS = 60;

export type AssertionErrorCode = 'invalid_grant' | 'invalid_client';

function stripKeyHints(header: Record<string, unknown>): Record<string, unknown> {
  const { kid: _kid, x5t: _x5t, 'x5t#S256': _s256, ...rest } = header;
  return rest;
}

/** Signature and claims of an assertion (docs/token-endpoint.md "Overview"). */
export async function verifyAssertion(
  state: OAuthState,
  parsed: ParsedJws,
  issuer: CompiledIssuer,
  singleKey: boolean,
  code: AssertionErrorCode,
  policy: AssertionPolicy,
): Promise<Record<string, unknown>> {
  // A certificate is the client's only key: kid / thumbprint headers cannot select another.
  const input = singleKey ? { ...parsed, header: stripKeyHints(parsed.header) } : parsed;
  const now = state.clock.nowSeconds();
  // The key-fetch deadline bounds real I/O: it is on the wall clock, whatever clock the claims use.
  const result = await verifyParsedJwt(input, issuer, { now, deadline: systemClock.nowMs() + 3000 });
  if (!result.ok) {
    if (result.deny.reason === 'keys_unavailable') {
      throw new OAuthError(
        'temporarily_unavailable',
        'the keys of the assertion issuer are unavailable; try again later',
      );
    }
    const why = (result.deny.description ?? result.deny.reason).replace(/^the token\b/, 'the assertion');
    throw new OAuthError(code, `assertion rejected: ${why}`);
  }
  const claims = result.claims;
  const exp = claims.exp;
  if (typeof exp !== 'number') throw new OAuthError(code, 'assertion rejected: exp is required');
  const max = policy.maxLifetimeSeconds;
  if (exp - now > max) {
    throw new OAuthError(code, `assertion rejected: exp must be at most ${max} seconds in the future`);
  }
  const jti = claims.jti;
  if (jti === undefined && !policy.requireJti) return claims;
  if (typeof jti !== 'string' || jti === '' || jti.length > 256) {
    const what = policy.requireJti ? 'jti is required' : 'jti is invalid';
    throw new OAuthError(code, `assertion rejected: ${what} (a string of at most 256 characters)`);
  }
  return claims;
}

/**
 * Remembers (iss, jti) until exp + skew; a second use is refused, on every replica.
 * An assertion without a jti (allowed by require_jti: false) is remembered by the
 * SHA-256 of its whole text instead, so the very same assertion cannot be used twice.
 */
export async function rememberAssertion(
  state: OAuthState,
  iss: string,
  claims: Record<string, unknown>,
  assertion: string,
  skew: number,
  code: AssertionErrorCode,
): Promise<void> {
  const byJti = typeof claims.jti === 'string';
  const key = createHash('sha256')
    .update(byJti ? `${iss}\n${claims.jti as string}` : `assertion\n${assertion}`)
    .digest('base64url');
  const ttl = (claims.exp as number) + skew - state.clock.nowSeconds();
  if (!(await state.ctx.store.rememberOnce(key, ttl))) {
    throw new OAuthError(code, `assertion rejected: it has already been used${byJti ? ' (jti)' : ''}`);
  }
}
