import { createHash, randomBytes } from 'node:crypto';
import { StoreUnavailableError } from '../store/index.js';
import { errorAnswer, OAuthError, type HttpAnswer, type ResponseFormat } from './answers.js';
import { GRANT_TYPE_JWT_BEARER, GRANT_TYPE_TOKEN_EXCHANGE } from '../config/schema.js';
import type { Client, OAuthRequest, OAuthState } from './state.js';

// Request plumbing shared by the three endpoints: form parameters, scopes, random
// tokens, and turning any failure into an OAuth error answer.

export const GRANT_JWT_BEARER = GRANT_TYPE_JWT_BEARER;
export const GRANT_REFRESH_TOKEN = 'refresh_token';
export const GRANT_CLIENT_CREDENTIALS = 'client_credentials';
export const GRANT_TOKEN_EXCHANGE = GRANT_TYPE_TOKEN_EXCHANGE;

const GRANT_LABELS: Readonly<Record<string, string>> = {
  [GRANT_JWT_BEARER]: 'jwt_bearer',
  [GRANT_REFRESH_TOKEN]: 'refresh_token',
  [GRANT_CLIENT_CREDENTIALS]: 'client_credentials',
  [GRANT_TOKEN_EXCHANGE]: 'token_exchange',
};

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
  (grantType !== undefined && Object.hasOwn(GRANT_LABELS, grantType) ? GRANT_LABELS[grantType] : undefined) ??
  'unsupported';

/** A client may use only the grant types it is registered for (clients[].grant_types). */
export function allowGrant(client: Client, grantType: string): void {
  if (!client.grantTypes.has(grantType)) {
    throw new OAuthError('unauthorized_client', 'the client is not allowed to use this grant type');
  }
}

/** A single-valued form parameter; empty means absent (RFC 6749 §3.1); repeated is invalid_request. */
export function param(req: OAuthRequest, name: string): string | undefined {
  const v = req.params[name];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string')
    throw new OAuthError('invalid_request', `the ${name} parameter must be given once`);
  return v;
}

/** A form parameter that may be repeated (token exchange audience / resource): every non-empty value. */
export function params(req: OAuthRequest, name: string): string[] {
  const v = req.params[name];
  if (v === undefined || v === null || v === '') return [];
  const all = Array.isArray(v) ? v : [v];
  if (!all.every((x): x is string => typeof x === 'string'))
    throw new OAuthError('invalid_request', `the ${name} parameter is malformed`);
  return all.filter((x) => x !== '');
}

export function parseScope(raw: string | undefined): string[] | undefined {
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
