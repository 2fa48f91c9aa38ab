import { randomUUID } from 'node:crypto';
import { parseCompactJws } from '../../authn/jws.js';
import { CLIENT_ASSERTION_SKEW_SECONDS, rememberAssertion, verifyAssertion } from '../assertions.js';
import { authenticateClient } from '../client-auth.js';
import { limitClient } from '../client-throttle.js';
import { OAuthError } from '../answers.js';
import { issue } from '../issue.js';
import { allowGrant, GRANT_JWT_BEARER, param, resolveScope } from '../requests.js';
import { nowSec, type Client, type Family, type OAuthRequest, type OAuthState } from '../state.js';

/**
 * The JWT bearer grant (RFC 7523 §2.1). Two ways to trust the assertion: (a) Axway, a
 * registered client signs its own assertion with its registered key; (b) WSO2, a
 * trusted identity provider's JWT, exchanged by an authenticated client.
 */
export async function jwtBearerGrant(
  state: OAuthState,
  req: OAuthRequest,
  log: Record<string, unknown>,
  /** Thumbprint of the request's DPoP proof key: the issued tokens are bound to it. */
  jkt: string | undefined,
): Promise<Record<string, unknown>> {
  const assertion = param(req, 'assertion');
  if (assertion === undefined) throw new OAuthError('invalid_request', 'assertion is missing');
  const parsed = parseCompactJws(assertion, state.maxBodyBytes);
  if ('kind' in parsed) {
    throw new OAuthError('invalid_grant', 'the assertion is not a signed JWT (compact JWS)');
  }
  const iss = parsed.payload.iss;
  if (typeof iss !== 'string' || iss === '')
    throw new OAuthError('invalid_grant', 'the assertion has no issuer (iss)');
  const authenticated = await authenticateClient(state, req, false, log);
  const registered = state.clients.get(iss);
  let client: Client;
  let sub: string;
  let skew: number;
  let claims: Record<string, unknown>;
  let copied: Record<string, unknown> | undefined;
  if (registered) {
    log.client_id = registered.id;
    log.trust = 'client';
    if (!registered.assertionIssuer) {
      throw new OAuthError(
        'unauthorized_client',
        'the client has no registered certificate or JWKS to sign assertions',
      );
    }
    claims = await verifyAssertion(
      state,
      parsed,
      registered.assertionIssuer,
      registered.singleKey,
      'invalid_grant',
      { maxLifetimeSeconds: state.cfg.max_assertion_lifetime_seconds, requireJti: registered.requireJti },
    );
    if (claims.sub !== undefined && claims.sub !== registered.id) {
      throw new OAuthError('invalid_grant', 'assertion rejected: sub must be the client_id');
    }
    if (authenticated && authenticated.id !== registered.id) {
      throw new OAuthError('invalid_grant', 'assertion rejected: it was issued by another client');
    }
    client = registered;
    sub = registered.id;
    skew = CLIENT_ASSERTION_SKEW_SECONDS;
  } else {
    const idp = state.grantIssuers.get(iss);
    if (!idp) {
      throw new OAuthError(
        'invalid_grant',
        'the assertion issuer is not a registered client or trusted identity provider',
      );
    }
    log.idp = idp.verifier.name;
    log.trust = 'issuer';
    if (!authenticated) {
      throw new OAuthError(
        'invalid_client',
        'client authentication is required to exchange an identity provider assertion',
      );
    }
    log.client_id = authenticated.id;
    claims = await verifyAssertion(state, parsed, idp.verifier, false, 'invalid_grant', idp);
    if (typeof claims.sub !== 'string' || claims.sub === '') {
      throw new OAuthError('invalid_grant', 'assertion rejected: sub is required');
    }
    client = authenticated;
    sub = claims.sub;
    skew = idp.verifier.clockSkewSeconds;
    copied = copyClaims(claims, idp.copyClaims);
  }
  allowGrant(client, GRANT_JWT_BEARER);
  // Before the jti too: a refused request must not burn the assertion.
  await limitClient(state, client.id);
  // Scope before the jti: a scope error must not burn the assertion.
  const scope = resolveScope(param(req, 'scope'), client.scopes);
  await rememberAssertion(state, iss, claims, assertion, skew, 'invalid_grant');
  const family: Family | undefined = state.cfg.refresh_token.enabled
    ? { id: randomUUID(), exp: nowSec(state) + state.cfg.refresh_token.ttl_seconds, scope, isNew: true }
    : undefined;
  return issue(state, client, sub, scope, family, { copied, jkt });
}

/** The named claims the assertion has (grant_issuers copy_claims); undefined when none. */
function copyClaims(
  claims: Record<string, unknown>,
  names: readonly string[],
): Record<string, unknown> | undefined {
  if (names.length === 0) return undefined;
  const out: Record<string, unknown> = {};
  for (const name of names) if (claims[name] !== undefined) out[name] = claims[name];
  return Object.keys(out).length > 0 ? out : undefined;
}
