import { createHash, randomBytes } from 'node:crypto';
import { StoreUnavailableError } from '../store/index.js';
import { errorAnswer, OAuthError, type HttpAnswer, type ResponseFormat } from './errors.js';
import type { OAuthRequest, OAuthState } from './state.js';

// Request plumbing shared by the three endpoints: form parameters, scopes, random
// tokens, and turning any failure into an OAuth error answer.

export const GRANT_JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const GRANT_REFRESH_TOKEN = 'refresh_token';

// RFC 6749 §3.3 scope-token
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const MAX_RANDOM_TOKEN = 512;

export const sha256 = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

/** A random base64url string of exactly `length` characters. */
export function randomToken(length: number): string {
  return randomBytes(Math.ceil((length * 3) / 4) + 1)
    .toString('base64url')
    .slice(0, length);
}

/** Whether a string could be one of our random tokens (opaque access or refresh); anything else is unknown. */
export const isRandomTokenShape = (token: string): boolean =>
  token.length <= MAX_RANDOM_TOKEN && BASE64URL.test(token);

export const grantLabel = (grantType: string | undefined): string =>
  grantType === GRANT_JWT_BEARER
    ? 'jwt_bearer'
    : grantType === GRANT_REFRESH_TOKEN
      ? 'refresh_token'
      : 'unsupported';

/** A single-valued form parameter; empty means absent (RFC 6749 §3.1); repeated is invalid_request. */
export function param(req: OAuthRequest, name: string): string | undefined {
  const v = req.params[name];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string')
    throw new OAuthError('invalid_request', `the ${name} parameter must be given once`);
  return v;
}

function parseScope(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const parts = raw.split(' ').filter((s) => s !== '');
  if (parts.length === 0) return undefined;
  for (const p of parts) {
    if (!SCOPE_TOKEN.test(p)) throw new OAuthError('invalid_scope', 'the scope parameter is malformed');
  }
  return [...new Set(parts)];
}

/** The requested scope (all of `allowed` when none is asked for); more than `allowed` is invalid_scope. */
export function resolveScope(requested: string | undefined, allowed: readonly string[]): string {
  const asked = parseScope(requested);
  if (!asked) return allowed.join(' ');
  const set = new Set(allowed);
  const extra = asked.filter((s) => !set.has(s));
  if (extra.length > 0)
    throw new OAuthError('invalid_scope', 'the requested scope exceeds the scope granted to the client');
  return asked.join(' ');
}

/** The error answer for a failed request; fills the log record with the outcome. */
export function fail(
  state: OAuthState,
  err: unknown,
  format: ResponseFormat,
  log: Record<string, unknown>,
): HttpAnswer {
  let oauth: OAuthError;
  if (err instanceof OAuthError) {
    oauth = err;
  } else if (err instanceof StoreUnavailableError) {
    oauth = new OAuthError('temporarily_unavailable', 'the token store is unavailable; try again later', {
      logDetail: err.message,
    });
  } else {
    state.ctx.logger.error({ ...log, err: (err as Error)?.message }, 'token endpoint internal error');
    oauth = new OAuthError('server_error', 'the request could not be processed');
  }
  log.result = oauth.code;
  if (oauth.logDetail) log.detail = oauth.logDetail;
  if (oauth.description) log.error_description = oauth.description;
  return errorAnswer(oauth, format, state.realm);
}
