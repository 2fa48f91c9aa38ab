import { parseCompactJws } from '../../authn/jws.js';
import { verifyParsedJwt, type CompiledIssuer } from '../../authn/verify.js';
import { isPlainObject } from '../../core/objects.js';
import { systemClock } from '../../core/time.js';
import { authenticateClient } from '../client-auth.js';
import { OAuthError } from '../answers.js';
import { issue } from '../issue.js';
import { limitClient } from '../client-throttle.js';
import { allowGrant, GRANT_TOKEN_EXCHANGE, param, params, parseScope } from '../requests.js';
import { nowSec, type OAuthRequest, type OAuthState } from '../state.js';

// Token exchange (RFC 8693): an authenticated client trades a subject token (one of a
// configured identity provider's JWTs, or a token this service issued) for one of our
// access tokens for the same subject, possibly for another audience, with fewer scopes,
// and naming who acts for the subject (act).

export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
const INPUT_TOKEN_TYPES: ReadonlySet<string> = new Set([TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT]);

/** Deepest delegation chain (act within act) accepted in a subject token. */
export const MAX_ACT_DEPTH = 8;

interface ExchangedToken {
  readonly claims: Record<string, unknown>;
  /** The issuer's configured name ("self" for our own tokens). */
  readonly issuerName: string;
}

export async function tokenExchangeGrant(
  state: OAuthState,
  req: OAuthRequest,
  log: Record<string, unknown>,
  /** Thumbprint of the request's DPoP proof key: the issued token is bound to it. */
  jkt: string | undefined,
): Promise<Record<string, unknown>> {
  const policy = state.exchange;
  if (!policy) throw new OAuthError('unsupported_grant_type', 'the grant type is not supported');
  const client = await authenticateClient(state, req, true, log);
  if (!client) throw new OAuthError('invalid_client', 'client authentication is required');
  log.client_id = client.id;
  allowGrant(client, GRANT_TOKEN_EXCHANGE);
  await limitClient(state, client.id);

  const subjectToken = param(req, 'subject_token');
  if (subjectToken === undefined) throw new OAuthError('invalid_request', 'subject_token is missing');
  const subjectType = tokenType(req, 'subject_token_type', true)!;
  const actorToken = param(req, 'actor_token');
  const actorType = tokenType(req, 'actor_token_type', false);
  if ((actorToken === undefined) !== (actorType === undefined)) {
    throw new OAuthError('invalid_request', 'actor_token and actor_token_type go together');
  }
  const requested = param(req, 'requested_token_type') ?? TOKEN_TYPE_ACCESS_TOKEN;
  if (!INPUT_TOKEN_TYPES.has(requested)) {
    throw new OAuthError(
      'invalid_request',
      `requested_token_type must be ${TOKEN_TYPE_ACCESS_TOKEN} or ${TOKEN_TYPE_JWT}`,
    );
  }
  if (requested === TOKEN_TYPE_JWT && !state.keys) {
    throw new OAuthError('invalid_request', 'this service issues opaque access tokens, not JWTs');
  }
  const targets = [...new Set([...params(req, 'audience'), ...params(req, 'resource')])];
  for (const t of targets) {
    if (!client.exchangeAudiences.has(t)) {
      throw new OAuthError(
        'invalid_target',
        'the client may not ask for a token for this audience or resource',
      );
    }
  }

  const subject = await verifyToken(state, subjectToken, subjectType, policy.subjectIssuers, 'subject', jkt);
  const sub = subject.claims.sub;
  if (typeof sub !== 'string' || sub === '')
    throw new OAuthError('invalid_request', 'the subject token has no sub');
  const exp = subject.claims.exp;
  if (typeof exp !== 'number' || exp - nowSec(state) < 1) {
    throw new OAuthError('invalid_request', 'the subject token has no exp or expires too soon');
  }
  const chain = subject.claims.act;
  if (chain !== undefined && !isActChain(chain, 1)) {
    throw new OAuthError('invalid_request', `the subject token's act claim is malformed or nested too deep`);
  }
  let act = chain as Record<string, unknown> | undefined;
  if (actorToken !== undefined) {
    const actor = await verifyToken(state, actorToken, actorType!, policy.actorIssuers, 'actor', jkt);
    const actorSub = actor.claims.sub;
    if (typeof actorSub !== 'string' || actorSub === '') {
      throw new OAuthError('invalid_request', 'the actor token has no sub');
    }
    if (act !== undefined && actDepth(act) >= MAX_ACT_DEPTH) {
      throw new OAuthError('invalid_request', 'the delegation chain is too long');
    }
    const iss = actor.claims.iss;
    // The current actor first; earlier ones nest inside it (RFC 8693 delegation chain).
    act = { sub: actorSub, ...(typeof iss === 'string' ? { iss } : {}), ...(act ? { act } : {}) };
    log.actor = true;
  }

  // Down-scoping only: never more than the subject token had, nor than the client may have.
  const subjectScopes = state.scopesOf(subject.claims, subject.issuerName);
  const held = new Set(subjectScopes);
  const asked = parseScope(param(req, 'scope'));
  let scope: string;
  if (asked) {
    if (asked.some((s) => !held.has(s))) {
      throw new OAuthError('invalid_scope', 'the requested scope exceeds the scope of the subject token');
    }
    if (asked.some((s) => !client.scopeSet.has(s))) {
      throw new OAuthError('invalid_scope', 'the requested scope exceeds the scope granted to the client');
    }
    scope = asked.join(' ');
  } else {
    scope = [...held].filter((s) => client.scopeSet.has(s)).join(' ');
  }
  const audience = targets.length === 0 ? undefined : targets.length === 1 ? targets[0] : targets;
  const fields = await issue(state, client, sub, scope, undefined, { jkt, audience, notAfter: exp, act });
  return { ...fields, issued_token_type: requested };
}

function tokenType(req: OAuthRequest, name: string, required: boolean): string | undefined {
  const v = param(req, name);
  if (v === undefined) {
    if (required) throw new OAuthError('invalid_request', `${name} is missing`);
    return undefined;
  }
  if (!INPUT_TOKEN_TYPES.has(v)) {
    throw new OAuthError(
      'invalid_request',
      `${name} must be ${TOKEN_TYPE_ACCESS_TOKEN} or ${TOKEN_TYPE_JWT}`,
    );
  }
  return v;
}

/** `act` as RFC 8693 shapes it: an object with a string sub, possibly nesting another, at most MAX_ACT_DEPTH deep. */
function isActChain(v: unknown, depth: number): boolean {
  if (depth > MAX_ACT_DEPTH || !isPlainObject(v)) return false;
  const o = v;
  if (typeof o.sub !== 'string' || o.sub === '') return false;
  return o.act === undefined || isActChain(o.act, depth + 1);
}

function actDepth(act: Record<string, unknown>): number {
  let n = 0;
  for (let a: unknown = act; isPlainObject(a); a = a.act) n++;
  return n;
}

/**
 * A subject or actor token, verified as Check verifies it: a JWT of one of `issuers` (the
 * issuer's keys, algorithms, audiences, lifetime and required claims) or of our own
 * issuer (then not revoked), or an opaque token this service issued. Any failure is
 * invalid_request, as token exchange says.
 */
async function verifyToken(
  state: OAuthState,
  token: string,
  type: string,
  issuers: ReadonlyMap<string, CompiledIssuer>,
  what: 'subject' | 'actor',
  jkt: string | undefined,
): Promise<ExchangedToken> {
  const invalid = (why: string, logDetail?: string) =>
    new OAuthError('invalid_request', `the ${what} token ${why}`, logDetail ? { logDetail } : {});
  const self = state.selfIssuer;
  const parsed = parseCompactJws(token, state.maxBodyBytes);
  let claims: Record<string, unknown>;
  let issuerName: string;
  // The issuer's binding policy, as Check applies it (our own tokens carry theirs in cnf).
  let constraint: CompiledIssuer['senderConstraint'];
  if ('kind' in parsed) {
    // Not a JWT: only an opaque access token of ours.
    if (token.includes('.') || type === TOKEN_TYPE_JWT || !self.status?.issuesOpaqueTokens)
      throw invalid('is not a valid JWT');
    const found = await self.status.lookupOpaque(token);
    if (found.status === 'unavailable') {
      throw new OAuthError('temporarily_unavailable', 'the token store is unavailable; try again later');
    }
    if (found.status !== 'active') throw invalid('is invalid, expired or revoked');
    claims = found.claims;
    issuerName = self.name;
  } else {
    const iss = parsed.payload.iss;
    const issuer = iss === self.issuer ? self : typeof iss === 'string' ? issuers.get(iss) : undefined;
    if (!issuer) throw invalid('is not from an issuer accepted for token exchange');
    const result = await verifyParsedJwt(parsed, issuer, {
      now: state.clock.nowSeconds(),
      // Bounds real I/O: on the wall clock, whatever clock the claims use.
      deadline: systemClock.nowMs() + 3000,
    });
    if (!result.ok) {
      if (result.deny.reason === 'keys_unavailable') {
        throw new OAuthError(
          'temporarily_unavailable',
          'the keys of the token issuer are unavailable; try again later',
        );
      }
      throw invalid('is invalid', result.deny.reason);
    }
    claims = result.claims;
    issuerName = issuer.name;
    constraint = issuer.senderConstraint;
    if (issuer.status) {
      const revoked = await issuer.status.isRevoked(claims);
      if (revoked === 'unavailable') {
        throw new OAuthError('temporarily_unavailable', 'the token store is unavailable; try again later');
      }
      if (revoked) throw invalid('has been revoked');
    }
  }
  // An issuer that requires bound tokens: an unbound one is refused here as Check refuses
  // it (cnf_missing), and a certificate binding cannot be checked at the token endpoint.
  if (constraint?.mtls === 'required')
    throw invalid('is from an issuer whose tokens are bound to a client certificate', 'mtls_required');
  if (constraint?.dpop === 'required' && !(isPlainObject(claims.cnf) && typeof claims.cnf.jkt === 'string'))
    throw invalid('is not DPoP-bound (cnf.jkt), which its issuer requires', 'cnf_missing');
  // A sender-constrained token is exchanged only by its holder: a DPoP proof with its key.
  const cnf = claims.cnf;
  if (cnf !== undefined) {
    const bound = isPlainObject(cnf) ? cnf.jkt : undefined;
    if (typeof bound !== 'string' || Object.keys(cnf as object).length !== 1 || bound !== jkt) {
      throw invalid('is sender-constrained: send a DPoP proof signed with its key');
    }
  }
  return { claims, issuerName };
}
