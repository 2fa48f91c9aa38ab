import { authenticateClient } from '../client-auth.js';
import { OAuthError } from '../answers.js';
import { issue } from '../issue.js';
import { limitClient } from '../client-throttle.js';
import { allowGrant, GRANT_CLIENT_CREDENTIALS, param, resolveScope } from '../requests.js';
import type { OAuthRequest, OAuthState } from '../state.js';

/**
 * The client credentials grant (RFC 6749 §4.4): a registered client asks for a token for
 * itself. sub is its client_id, the scope at most its own scopes, and no refresh token.
 */
export async function clientCredentialsGrant(
  state: OAuthState,
  req: OAuthRequest,
  log: Record<string, unknown>,
  /** Thumbprint of the request's DPoP proof key: the issued token is bound to it. */
  jkt: string | undefined,
): Promise<Record<string, unknown>> {
  const client = await authenticateClient(state, req, true, log);
  if (!client) throw new OAuthError('invalid_client', 'client authentication is required');
  log.client_id = client.id;
  allowGrant(client, GRANT_CLIENT_CREDENTIALS);
  await limitClient(state, client.id);
  const scope = resolveScope(param(req, 'scope'), client.scopes);
  return issue(state, client, client.id, scope, undefined, { jkt });
}
