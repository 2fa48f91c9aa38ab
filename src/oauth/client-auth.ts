import { timingSafeEqual } from 'node:crypto';
import { parseCompactJws } from '../authn/jws.js';
import { CLIENT_ASSERTION_SKEW_SECONDS, rememberAssertion, verifyAssertion } from './assertions.js';
import { OAuthError } from './answers.js';
import { param, sha256 } from './requests.js';
import type { Client, ClientAuthMethod, OAuthRequest, OAuthState } from './state.js';

// Client authentication (RFC 6749 §2.3): HTTP Basic or the form body (client_secret_post)
// for clients with a secret, or a client assertion (RFC 7523 §2.2) for clients with a
// certificate / JWKS. A client may use only its configured method.

export const CLIENT_ASSERTION_TYPE_JWT = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const BASE64_STD = /^[A-Za-z0-9+/]+={0,2}$/;
const DUMMY_DIGEST = sha256('no client has this secret');

/** The authenticated client (at most one method per request), or undefined when none was tried and none is required. */
export async function authenticateClient(
  state: OAuthState,
  req: OAuthRequest,
  required: boolean,
  log: Record<string, unknown>,
): Promise<Client | undefined> {
  const claimed = req.params.client_id;
  if (typeof claimed === 'string' && claimed !== '') log.client_id = loggableClientId(state, claimed);
  const auth = req.authorization;
  const basic = auth !== undefined && /^basic\s/i.test(auth) ? auth.slice(6).trim() : undefined;
  const assertionType = param(req, 'client_assertion_type');
  const assertion = param(req, 'client_assertion');
  const postSecret = param(req, 'client_secret');
  const used = [basic, postSecret, assertion ?? assertionType].filter((m) => m !== undefined).length;
  if (used > 1) throw new OAuthError('invalid_request', 'use exactly one client authentication method');
  if (basic !== undefined) {
    return allowMethod(authenticateBasic(state, basic, param(req, 'client_id'), log), 'client_secret_basic');
  }
  if (postSecret !== undefined) {
    const id = param(req, 'client_id');
    if (id === undefined) throw new OAuthError('invalid_request', 'client_id is required with client_secret');
    return allowMethod(checkSecret(state, id, postSecret, log), 'client_secret_post');
  }
  if (assertion !== undefined || assertionType !== undefined) {
    if (assertionType !== CLIENT_ASSERTION_TYPE_JWT) {
      throw new OAuthError('invalid_request', `client_assertion_type must be ${CLIENT_ASSERTION_TYPE_JWT}`);
    }
    if (assertion === undefined) throw new OAuthError('invalid_request', 'client_assertion is missing');
    return authenticateClientAssertion(state, assertion, param(req, 'client_id'));
  }
  if (required) throw new OAuthError('invalid_client', 'client authentication is required');
  return undefined;
}

/** A client may authenticate only with its configured method (clients[].token_endpoint_auth_method). */
function allowMethod(client: Client, method: ClientAuthMethod): Client {
  if (!client.authMethods.has(method)) {
    throw new OAuthError('invalid_client', `the client is not registered for ${method} authentication`, {
      logDetail: `authentication method ${method} not allowed for the client`,
    });
  }
  return client;
}

/**
 * A client id as it may be logged: a registered one as is, anything else as "unknown".
 * Callers type secrets into the wrong field; an unregistered value must not reach the logs.
 */
function loggableClientId(state: OAuthState, id: string): string {
  return state.clients.has(id) ? id : 'unknown';
}

function authenticateBasic(
  state: OAuthState,
  credentials: string,
  bodyClientId: string | undefined,
  log: Record<string, unknown>,
): Client {
  const bad = () => new OAuthError('invalid_client', 'client authentication failed');
  if (!BASE64_STD.test(credentials)) throw bad();
  const decoded = Buffer.from(credentials, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw bad();
  let id: string;
  let secret: string;
  try {
    // RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
    id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
    secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
  } catch {
    throw bad();
  }
  const client = checkSecret(state, id, secret, log);
  if (bodyClientId !== undefined && bodyClientId !== client.id) {
    throw new OAuthError('invalid_request', 'client_id does not match the authenticated client');
  }
  return client;
}

/** The client whose secret this is (compared in constant time), else invalid_client. */
function checkSecret(state: OAuthState, id: string, secret: string, log: Record<string, unknown>): Client {
  const client = state.clients.get(id);
  log.client_id = client ? client.id : 'unknown';
  const expected = client?.secretDigest ?? DUMMY_DIGEST;
  const ok = timingSafeEqual(sha256(secret), expected) && client?.secretDigest !== undefined;
  if (!ok || !client)
    throw new OAuthError('invalid_client', 'client authentication failed', {
      logDetail: !client
        ? 'unknown client'
        : client.secretDigest
          ? 'wrong client secret'
          : 'the client has no client secret',
    });
  return client;
}

async function authenticateClientAssertion(
  state: OAuthState,
  assertion: string,
  bodyClientId: string | undefined,
): Promise<Client> {
  const parsed = parseCompactJws(assertion, state.maxBodyBytes);
  if ('kind' in parsed) throw new OAuthError('invalid_client', 'the client assertion is not a signed JWT');
  const iss = parsed.payload.iss;
  const client = typeof iss === 'string' ? state.clients.get(iss) : undefined;
  if (!client?.assertionIssuer) throw new OAuthError('invalid_client', 'client authentication failed');
  // Before the assertion is verified and its jti spent.
  allowMethod(client, 'private_key_jwt');
  if (parsed.payload.sub !== client.id) {
    throw new OAuthError('invalid_client', 'the client assertion sub must be the client_id');
  }
  if (bodyClientId !== undefined && bodyClientId !== client.id) {
    throw new OAuthError('invalid_request', 'client_id does not match the authenticated client');
  }
  const claims = await verifyAssertion(
    state,
    parsed,
    client.assertionIssuer,
    client.singleKey,
    'invalid_client',
    { maxLifetimeSeconds: state.cfg.max_assertion_lifetime_seconds, requireJti: client.requireJti },
  );
  await rememberAssertion(
    state,
    client.id,
    claims,
    assertion,
    CLIENT_ASSERTION_SKEW_SECONDS,
    'invalid_client',
  );
  return client;
}
