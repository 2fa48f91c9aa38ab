import { hashToken } from '../store/index.js';
import { authenticateClient } from './client-auth.js';
import { jsonAnswer, OAuthError, type HttpAnswer } from './answers.js';
import { fail, isRandomTokenShape, param } from './requests.js';
import { verifyOwnJwt } from './self-tokens.js';
import { nowSec, type Client, type OAuthRequest, type OAuthState } from './state.js';

/** POST /oauth2/introspect (RFC 7662). */
export async function handleIntrospect(state: OAuthState, req: OAuthRequest): Promise<HttpAnswer> {
  const log: Record<string, unknown> = { endpoint: 'introspect' };
  try {
    const client = (await authenticateClient(state, req, true, log))!;
    log.client_id = client.id;
    const token = param(req, 'token');
    if (token === undefined) throw new OAuthError('invalid_request', 'token is missing');
    const fields = await introspect(state, client, token);
    log.result = 'success';
    log.active = fields.active;
    state.ctx.logger.info(log, 'introspection request');
    return jsonAnswer(200, fields);
  } catch (err) {
    const answer = fail(state, err, 'json', log);
    state.ctx.logger.info(log, 'introspection request');
    return answer;
  }
}

/** Another client's token, or one we do not know, is simply inactive. */
async function introspect(
  state: OAuthState,
  client: Client,
  token: string,
): Promise<Record<string, unknown>> {
  const { store } = state.ctx;
  const inactive = { active: false };
  const now = nowSec(state);
  const jwt = await verifyOwnJwt(state, token);
  if (jwt !== undefined) {
    if (!jwt || jwt.client_id !== client.id) return inactive;
    if (typeof jwt.jti === 'string' && (await store.isJtiRevoked(jwt.jti))) return inactive;
    return { active: true, ...jwt, token_type: tokenType(jwt) };
  }
  if (!isRandomTokenShape(token)) return inactive;
  const hash = hashToken(token);
  const access = await store.getAccessToken(hash);
  if (access) {
    const exp = access.claims.exp;
    if (access.claims.client_id !== client.id || typeof exp !== 'number' || exp <= now) return inactive;
    return { active: true, ...access.claims, token_type: tokenType(access.claims) };
  }
  const refresh = await store.getRefreshToken(hash);
  if (!refresh) return inactive;
  const rec = refresh.record;
  if (rec.clientId !== client.id || refresh.used || rec.familyExp <= now) return inactive;
  if (await store.isFamilyRevoked(rec.familyId)) return inactive;
  return {
    active: true,
    iss: state.issuer,
    sub: rec.sub,
    client_id: rec.clientId,
    scope: rec.scope,
    exp: rec.familyExp,
    ...(rec.jkt !== undefined ? { cnf: { jkt: rec.jkt } } : {}),
    token_type: 'refresh_token',
  };
}

/** DPoP for a token bound to a DPoP key (its cnf.jkt, returned with the claims), else Bearer. */
function tokenType(claims: Record<string, unknown>): 'DPoP' | 'Bearer' {
  const cnf = claims.cnf;
  return typeof cnf === 'object' && cnf !== null && typeof (cnf as Record<string, unknown>).jkt === 'string'
    ? 'DPoP'
    : 'Bearer';
}
