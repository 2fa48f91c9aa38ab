import { hashToken } from '../store/index.js';
import { authenticateClient } from './client-auth.js';
import { NO_STORE, OAuthError, type HttpAnswer } from './answers.js';
import { revokeFamilyTokens } from './issue.js';
import { fail, isRandomTokenShape, param } from './requests.js';
import { SELF_SKEW_SECONDS, verifyOwnJwt } from './self-tokens.js';
import { nowSec, type Client, type OAuthRequest, type OAuthState } from './state.js';

/** POST /oauth2/revoke (RFC 7009). */
export async function handleRevoke(state: OAuthState, req: OAuthRequest): Promise<HttpAnswer> {
  const log: Record<string, unknown> = { endpoint: 'revoke' };
  try {
    const client = (await authenticateClient(state, req, true, log))!;
    log.client_id = client.id;
    const token = param(req, 'token');
    if (token === undefined) throw new OAuthError('invalid_request', 'token is missing');
    log.revoked = await revoke(state, client, token);
    log.result = 'success';
    state.ctx.logger.info(log, 'revocation request');
    return { status: 200, headers: { ...NO_STORE }, body: '' };
  } catch (err) {
    const answer = fail(state, err, 'json', log);
    state.ctx.logger.info(log, 'revocation request');
    return answer;
  }
}

/** Returns what was revoked (for the log); another client's or an unknown token changes nothing. */
async function revoke(state: OAuthState, client: Client, token: string): Promise<string> {
  const { store } = state.ctx;
  const now = nowSec(state);
  const jwt = await verifyOwnJwt(state, token);
  if (jwt !== undefined) {
    if (jwt && jwt.client_id === client.id && typeof jwt.jti === 'string' && typeof jwt.exp === 'number') {
      await store.revokeJti(jwt.jti, Math.max(1, jwt.exp + SELF_SKEW_SECONDS - now));
      return 'access_token';
    }
    return 'nothing';
  }
  if (!isRandomTokenShape(token)) return 'nothing';
  const hash = hashToken(token);
  const access = await store.getAccessToken(hash);
  if (access) {
    if (access.claims.client_id !== client.id) return 'nothing';
    await store.deleteAccessToken(hash);
    return 'access_token';
  }
  const refresh = await store.getRefreshToken(hash);
  if (refresh && refresh.record.clientId === client.id) {
    // RFC 7009 §2.1: also the access tokens issued from it (its whole grant).
    await revokeFamilyTokens(state, refresh.record.familyId, refresh.record.familyExp);
    await store.deleteRefreshToken(hash);
    return 'refresh_token';
  }
  return 'nothing';
}
