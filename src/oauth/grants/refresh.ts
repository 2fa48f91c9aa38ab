import { hashToken } from '../../store/index.js';
import { authenticateClient } from '../client-auth.js';
import { limitClient } from '../client-throttle.js';
import { OAuthError } from '../answers.js';
import { issue, revokeFamilyTokens } from '../issue.js';
import { allowGrant, GRANT_REFRESH_TOKEN, isRandomTokenShape, param, resolveScope } from '../requests.js';
import { nowSec, type OAuthRequest, type OAuthState } from '../state.js';

/** The refresh-token grant with rotation; a reused refresh token revokes its whole family (RFC 9700 §4.14.2). */
export async function refreshGrant(
  state: OAuthState,
  req: OAuthRequest,
  log: Record<string, unknown>,
  /** Thumbprint of the request's DPoP proof key; a DPoP-bound refresh token needs its own key's. */
  jkt: string | undefined,
): Promise<Record<string, unknown>> {
  const { ctx } = state;
  const client = await authenticateClient(state, req, true, log);
  if (!client) throw new OAuthError('invalid_client', 'client authentication is required');
  log.client_id = client.id;
  allowGrant(client, GRANT_REFRESH_TOKEN);
  await limitClient(state, client.id);
  const token = param(req, 'refresh_token');
  if (token === undefined) throw new OAuthError('invalid_request', 'refresh_token is missing');
  const invalid = () => new OAuthError('invalid_grant', 'the refresh token is invalid, expired or revoked');
  if (!isRandomTokenShape(token)) throw invalid();
  const hash = hashToken(token);
  const found = await ctx.store.getRefreshToken(hash);
  if (!found) throw invalid();
  const rec = found.record;
  if (rec.clientId !== client.id) {
    throw new OAuthError('invalid_grant', 'the refresh token was not issued to this client', {
      logDetail: 'refresh token of another client',
    });
  }
  // Before reuse detection: whoever lacks the key cannot use the token, nor revoke its grant.
  if (rec.jkt !== undefined && rec.jkt !== jkt) {
    throw new OAuthError(
      'invalid_grant',
      'the refresh token is DPoP-bound: send a DPoP proof signed with the key it is bound to',
      { logDetail: jkt === undefined ? 'no DPoP proof for a bound refresh token' : 'DPoP key mismatch' },
    );
  }
  const now = nowSec(state);
  if (rec.familyExp <= now) throw invalid();
  const reuse = async () => {
    await revokeFamilyTokens(state, rec.familyId, rec.familyExp);
    log.reuse_detected = true;
    ctx.logger.warn(
      { client_id: client.id, family: rec.familyId },
      'refresh token reuse detected; family revoked',
    );
    return new OAuthError(
      'invalid_grant',
      'the refresh token was already used; all tokens of its grant are revoked',
    );
  };
  if (found.used) throw await reuse();
  if (await ctx.store.isFamilyRevoked(rec.familyId)) throw invalid();
  const granted = rec.scope.split(' ').filter((s) => s !== '');
  // Never more than the original grant, nor more than the client has now.
  const scope = resolveScope(
    param(req, 'scope'),
    granted.filter((s) => client.scopeSet.has(s)),
  );
  if (!(await ctx.store.markRefreshTokenUsed(hash, rec.familyExp - now))) throw await reuse();
  return issue(
    state,
    client,
    rec.sub,
    scope,
    {
      id: rec.familyId,
      exp: rec.familyExp,
      scope: rec.scope,
      isNew: false,
    },
    { copied: rec.claims, jkt },
  );
}
