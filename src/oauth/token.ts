import { tokenRequestProofKey } from './dpop-binding.js';
import { OAuthError, tokenAnswer, type HttpAnswer, type ResponseFormat } from './answers.js';
import { jwtBearerGrant } from './grants/jwt-bearer.js';
import { clientCredentialsGrant } from './grants/client-credentials.js';
import { refreshGrant } from './grants/refresh.js';
import { tokenExchangeGrant } from './grants/token-exchange.js';
import {
  fail,
  grantLabel,
  GRANT_CLIENT_CREDENTIALS,
  GRANT_JWT_BEARER,
  GRANT_REFRESH_TOKEN,
  GRANT_TOKEN_EXCHANGE,
  param,
} from './requests.js';
import type { Grant, OAuthRequest, OAuthState } from './state.js';

/** The grant types this endpoint serves with its configuration (a client may be allowed fewer). */
export function enabledGrants(state: Pick<OAuthState, 'cfg' | 'exchange'>): Map<string, Grant> {
  const grants = new Map<string, Grant>([
    [GRANT_JWT_BEARER, jwtBearerGrant],
    [GRANT_CLIENT_CREDENTIALS, clientCredentialsGrant],
  ]);
  if (state.cfg.refresh_token.enabled) grants.set(GRANT_REFRESH_TOKEN, refreshGrant);
  if (state.exchange) grants.set(GRANT_TOKEN_EXCHANGE, tokenExchangeGrant);
  return grants;
}

/** POST to the token path (token_endpoint.path, default /oauth2/token): picks the grant, answers in the requested format, counts and logs the outcome. */
export async function handleToken(state: OAuthState, req: OAuthRequest): Promise<HttpAnswer> {
  const t0 = performance.now();
  let format: ResponseFormat = 'json';
  const log: Record<string, unknown> = { endpoint: 'token' };
  let label = 'unsupported';
  let answer: HttpAnswer;
  try {
    const f = param(req, 'format');
    if (f !== undefined) {
      if (f !== 'json' && f !== 'urlencoded' && f !== 'xml') {
        throw new OAuthError('invalid_request', 'format must be json, urlencoded or xml');
      }
      format = f;
    }
    const grantType = param(req, 'grant_type');
    label = grantLabel(grantType);
    log.grant_type = label;
    if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is missing');
    const grant = state.grants.get(grantType);
    if (!grant) throw new OAuthError('unsupported_grant_type', 'the grant type is not supported');
    // Before the grant: a bad or replayed proof must not use up the assertion or refresh token.
    const jkt = await tokenRequestProofKey(state, req);
    if (jkt !== undefined) log.dpop = true;
    const fields = await grant(state, req, log, jkt);
    log.result = 'success';
    answer = tokenAnswer(fields, format);
  } catch (err) {
    answer = fail(state, err, format, log);
  }
  state.ctx.metrics.tokenRequestsTotal.inc({ grant_type: label, result: String(log.result) });
  log.status = answer.status;
  log.duration_ms = Math.round((performance.now() - t0) * 1000) / 1000;
  state.ctx.logger.info(log, 'token request');
  return answer;
}
