import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import { parseCompactJws, type ParsedJws } from '../authn/jws.js';
import { EMPTY_KEY_SET, makeKeySet } from '../authn/keys/jwk.js';
import { verifyParsedJwt, type CompiledIssuer } from '../authn/verify.js';
import { ConfigError } from '../core/errors.js';
import { ASYMMETRIC_DEFAULT_ALGORITHMS } from '../config/schema.js';
import type { ClientConfig, TokenEndpointConfig } from '../config/types.js';
import { readSecretFile } from '../crypto/key-files.js';
import { loadSigningKeys, signJws, type SigningKey, type SigningKeys } from '../crypto/signing-keys.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { hashToken, StoreUnavailableError, type FamilyMember, type Store } from '../store/index.js';
import {
  errorAnswer,
  jsonAnswer,
  NO_STORE,
  OAuthError,
  tokenAnswer,
  type HttpAnswer,
  type ResponseFormat,
} from './errors.js';
import { loadClientCertificate, loadClientJwks, staticKeySource, verificationKeyFor } from './client-keys.js';

// The OAuth 2.0 token endpoint for the JWT bearer grant (RFC 7523; README "OAuth 2.0 token endpoint"), refresh
// tokens with rotation and reuse detection (RFC 9700 §4.14.2), revocation (RFC 7009)
// and introspection (RFC 7662). Tokens, assertions and secrets are never logged.

export const GRANT_JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const GRANT_REFRESH_TOKEN = 'refresh_token';
export const CLIENT_ASSERTION_TYPE_JWT = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Clock skew allowed on assertions from registered clients (they have no issuer entry to configure it). */
export const CLIENT_ASSERTION_SKEW_SECONDS = 60;
/** Clock skew Check allows on this service's own access tokens; revocations outlive exp by it. */
export const SELF_SKEW_SECONDS = 60;
/** Longest store-answer cache entry (README "OAuth 2.0 token endpoint": a revocation may be delayed by at most 1 s). */
export const MAX_STORE_CACHE_MS = 1000;

// Claims of issued access tokens that the service always sets itself.
const RESERVED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope', 'cnf', 'act'];
// RFC 6749 §3.3 scope-token
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const MAX_RANDOM_TOKEN = 512;

export type OpaqueLookup =
  { status: 'active'; claims: Record<string, unknown> } | { status: 'inactive' } | { status: 'unavailable' };

/** What the Check pipeline needs to accept this service's own access tokens. */
export interface SelfTokenSupport {
  /** name "self", requiredTyp "at+jwt", audiences = access_token.audiences or [issuer], keys = own public signing keys. */
  readonly issuer: CompiledIssuer;
  /** An opaque access token's claims (sub, scope, client_id, exp, iss, …), or why there are none. */
  lookupOpaque(token: string): Promise<OpaqueLookup>;
  /** For our own JWTs, by jti. Answers may be cached for at most 1 s. Never "not revoked" when the store is down. */
  isRevoked(claims: Record<string, unknown>): Promise<boolean | 'unavailable'>;
  readonly issuesOpaqueTokens: boolean;
}

/** One token-endpoint request as the routes hand it over (form parameters and the Authorization header). */
export interface OAuthRequest {
  readonly params: Readonly<Record<string, unknown>>;
  readonly authorization?: string;
}

export interface TokenService {
  readonly self: SelfTokenSupport;
  /** The `iss` of issued tokens. */
  readonly issuer: string;
  /** Public JWKs of the access-token signing keys (current and previous); empty for opaque tokens. */
  publicJwks(): JWK[];
  /** The access-token signing key, when it was generated in memory (no key file); a reload hands it on. */
  readonly ephemeralKey: SigningKey | undefined;
  /** POST /oauth2/token */
  handleToken(req: OAuthRequest): Promise<HttpAnswer>;
  /** POST /oauth2/revoke */
  handleRevoke(req: OAuthRequest): Promise<HttpAnswer>;
  /** POST /oauth2/introspect */
  handleIntrospect(req: OAuthRequest): Promise<HttpAnswer>;
  /** Max request body (token_endpoint.max_body_bytes). */
  readonly maxBodyBytes: number;
  readonly realm: string;
  close(): Promise<void>;
}

export interface TokenServiceContext {
  readonly baseDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly store: Store;
  readonly issuersByName: ReadonlyMap<string, CompiledIssuer>;
  /** epoch milliseconds (Date.now by default). */
  readonly now?: () => number;
  /** realm of `WWW-Authenticate: Basic` challenges (default envoy-jwt-authz). */
  readonly realm?: string;
  /** Lifetime of cached store answers for Check, ≤ 1000 ms (default 1000; 0 disables). */
  readonly storeCacheMs?: number;
  /** The previous token service's ephemeral key, reused when `signing` still names no key file and the same alg. */
  readonly ephemeralKey?: SigningKey;
}

interface Client {
  readonly id: string;
  readonly scopes: readonly string[];
  readonly scopeSet: ReadonlySet<string>;
  readonly tokenClaims: Readonly<Record<string, unknown>>;
  /** SHA-256 of the client secret (compared in constant time). */
  readonly secretDigest?: Buffer;
  /** Verifies the client's own assertions (certificate or JWKS). */
  readonly assertionIssuer?: CompiledIssuer;
  /** A certificate: one key, so the assertion's kid / thumbprint are not needed to find it. */
  readonly singleKey: boolean;
}

interface Family {
  readonly id: string;
  /** epoch seconds */
  readonly exp: number;
  /** Scope of the original grant (a rotated refresh token keeps it, RFC 6749 §6). */
  readonly scope: string;
  readonly isNew: boolean;
}

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest();

/** A random base64url string of exactly `length` characters. */
export function randomToken(length: number): string {
  return randomBytes(Math.ceil((length * 3) / 4) + 1)
    .toString('base64url')
    .slice(0, length);
}

const grantLabel = (grantType: string | undefined): string =>
  grantType === GRANT_JWT_BEARER
    ? 'jwt_bearer'
    : grantType === GRANT_REFRESH_TOKEN
      ? 'refresh_token'
      : 'unsupported';

function parseScope(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const parts = raw.split(' ').filter((s) => s !== '');
  if (parts.length === 0) return undefined;
  for (const p of parts) {
    if (!SCOPE_TOKEN.test(p)) throw new OAuthError('invalid_scope', 'the scope parameter is malformed');
  }
  return [...new Set(parts)];
}

class OAuthTokenService implements TokenService {
  readonly self: SelfTokenSupport;
  readonly issuer: string;
  readonly maxBodyBytes: number;
  readonly realm: string;
  readonly ephemeralKey: SigningKey | undefined;
  private readonly audience: string;
  private readonly accessAudience: string | string[];
  private readonly now: () => number;
  private readonly cache: LRUCache<string, { v: OpaqueLookup | boolean }> | undefined;
  private readonly header: Readonly<Record<string, unknown>> | undefined;

  constructor(
    private readonly cfg: TokenEndpointConfig,
    private readonly ctx: TokenServiceContext,
    private readonly clients: ReadonlyMap<string, Client>,
    private readonly grantIssuers: ReadonlyMap<string, CompiledIssuer>,
    private readonly keys: SigningKeys | undefined,
    selfIssuer: CompiledIssuer,
  ) {
    this.issuer = cfg.issuer!;
    this.audience = cfg.audience!;
    this.maxBodyBytes = cfg.max_body_bytes;
    this.realm = ctx.realm ?? 'envoy-jwt-authz';
    this.now = ctx.now ?? Date.now;
    const auds = cfg.access_token.audiences.length > 0 ? cfg.access_token.audiences : [this.issuer];
    this.accessAudience = auds.length === 1 ? auds[0]! : [...auds];
    this.ephemeralKey = keys?.ephemeral ? keys.current : undefined;
    this.header = keys
      ? Object.freeze({ alg: keys.current.alg, kid: keys.current.kid, typ: 'at+jwt' })
      : undefined;
    const cacheMs = Math.min(MAX_STORE_CACHE_MS, Math.max(0, ctx.storeCacheMs ?? MAX_STORE_CACHE_MS));
    this.cache = cacheMs > 0 ? new LRUCache({ max: 10_000, ttl: cacheMs, ttlAutopurge: false }) : undefined;
    this.self = {
      issuer: selfIssuer,
      issuesOpaqueTokens: cfg.access_token.format === 'opaque',
      lookupOpaque: (token) => this.lookupOpaque(token),
      isRevoked: (claims) => this.isRevoked(claims),
    };
  }

  private nowSec(): number {
    return Math.floor(this.now() / 1000);
  }

  publicJwks(): JWK[] {
    return this.keys ? this.keys.publicJwks() : [];
  }

  async close(): Promise<void> {
    this.self.issuer.keySource.close();
    this.cache?.clear();
  }

  // ---------------------------------------------------------------- Check support

  private async lookupOpaque(token: string): Promise<OpaqueLookup> {
    if (token.length > MAX_RANDOM_TOKEN || !BASE64URL.test(token)) return { status: 'inactive' };
    const hash = hashToken(token);
    const key = `o:${hash}`;
    const cached = this.cache?.get(key);
    if (cached) {
      this.ctx.metrics.hits.store.inc();
      return cached.v as OpaqueLookup;
    }
    if (this.cache) this.ctx.metrics.misses.store.inc();
    let answer: OpaqueLookup;
    try {
      const rec = await this.ctx.store.getAccessToken(hash);
      const exp = rec?.claims.exp;
      answer =
        rec && typeof exp === 'number' && exp > this.nowSec()
          ? { status: 'active', claims: rec.claims }
          : { status: 'inactive' };
    } catch (err) {
      this.ctx.logger.warn({ err: (err as Error).message }, 'opaque token lookup failed: store unavailable');
      return { status: 'unavailable' };
    }
    this.cache?.set(key, { v: answer });
    return answer;
  }

  private async isRevoked(claims: Record<string, unknown>): Promise<boolean | 'unavailable'> {
    const jti = claims.jti;
    if (typeof jti !== 'string' || jti === '') return false;
    const key = `j:${jti}`;
    const cached = this.cache?.get(key);
    if (cached) {
      this.ctx.metrics.hits.store.inc();
      return cached.v as boolean;
    }
    if (this.cache) this.ctx.metrics.misses.store.inc();
    let revoked: boolean;
    try {
      revoked = await this.ctx.store.isJtiRevoked(jti);
    } catch (err) {
      this.ctx.logger.warn({ err: (err as Error).message }, 'revocation lookup failed: store unavailable');
      return 'unavailable';
    }
    this.cache?.set(key, { v: revoked });
    return revoked;
  }

  // ---------------------------------------------------------------- request plumbing

  /** A single-valued form parameter; empty means absent (RFC 6749 §3.1); repeated is invalid_request. */
  private param(req: OAuthRequest, name: string): string | undefined {
    const v = req.params[name];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string')
      throw new OAuthError('invalid_request', `the ${name} parameter must be given once`);
    return v;
  }

  private fail(err: unknown, format: ResponseFormat, log: Record<string, unknown>): HttpAnswer {
    let oauth: OAuthError;
    if (err instanceof OAuthError) {
      oauth = err;
    } else if (err instanceof StoreUnavailableError) {
      oauth = new OAuthError('temporarily_unavailable', 'the token store is unavailable; try again later', {
        logDetail: err.message,
      });
    } else {
      this.ctx.logger.error({ ...log, err: (err as Error)?.message }, 'token endpoint internal error');
      oauth = new OAuthError('server_error', 'the request could not be processed');
    }
    log.result = oauth.code;
    if (oauth.logDetail) log.detail = oauth.logDetail;
    if (oauth.description) log.error_description = oauth.description;
    return errorAnswer(oauth, format, this.realm);
  }

  // ---------------------------------------------------------------- client authentication

  /**
   * RFC 6749 §2.3: HTTP Basic for clients with a secret, or a client assertion (RFC 7523
   * §2.2) for clients with a certificate / JWKS. At most one method per request.
   */
  private async authenticateClient(
    req: OAuthRequest,
    required: boolean,
    log: Record<string, unknown>,
  ): Promise<Client | undefined> {
    const claimed = req.params.client_id;
    if (typeof claimed === 'string' && claimed !== '') log.client_id = this.loggableClientId(claimed);
    const auth = req.authorization;
    const basic = auth !== undefined && /^basic\s/i.test(auth) ? auth.slice(6).trim() : undefined;
    const assertionType = this.param(req, 'client_assertion_type');
    const assertion = this.param(req, 'client_assertion');
    if (this.param(req, 'client_secret') !== undefined) {
      throw new OAuthError(
        'invalid_request',
        'client_secret in the request body is not supported; use HTTP Basic',
      );
    }
    if (basic !== undefined && (assertion !== undefined || assertionType !== undefined)) {
      throw new OAuthError('invalid_request', 'use exactly one client authentication method');
    }
    if (basic !== undefined) return this.authenticateBasic(basic, this.param(req, 'client_id'), log);
    if (assertion !== undefined || assertionType !== undefined) {
      if (assertionType !== CLIENT_ASSERTION_TYPE_JWT) {
        throw new OAuthError('invalid_request', `client_assertion_type must be ${CLIENT_ASSERTION_TYPE_JWT}`);
      }
      if (assertion === undefined) throw new OAuthError('invalid_request', 'client_assertion is missing');
      return this.authenticateClientAssertion(assertion, this.param(req, 'client_id'));
    }
    if (required) throw new OAuthError('invalid_client', 'client authentication is required');
    return undefined;
  }

  /**
   * A client id as it may be logged: a registered one as is, anything else as "unknown".
   * Callers type secrets into the wrong field; an unregistered value must not reach the logs.
   */
  private loggableClientId(id: string): string {
    return this.clients.has(id) ? id : 'unknown';
  }

  private authenticateBasic(
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
    const client = this.clients.get(id);
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
    if (bodyClientId !== undefined && bodyClientId !== client.id) {
      throw new OAuthError('invalid_request', 'client_id does not match the authenticated client');
    }
    return client;
  }

  private async authenticateClientAssertion(
    assertion: string,
    bodyClientId: string | undefined,
  ): Promise<Client> {
    const parsed = parseCompactJws(assertion, this.maxBodyBytes);
    if ('kind' in parsed) throw new OAuthError('invalid_client', 'the client assertion is not a signed JWT');
    const iss = parsed.payload.iss;
    const client = typeof iss === 'string' ? this.clients.get(iss) : undefined;
    if (!client?.assertionIssuer) throw new OAuthError('invalid_client', 'client authentication failed');
    if (parsed.payload.sub !== client.id) {
      throw new OAuthError('invalid_client', 'the client assertion sub must be the client_id');
    }
    if (bodyClientId !== undefined && bodyClientId !== client.id) {
      throw new OAuthError('invalid_request', 'client_id does not match the authenticated client');
    }
    const claims = await this.verifyAssertion(
      parsed,
      client.assertionIssuer,
      client.singleKey,
      'invalid_client',
    );
    await this.rememberJti(client.id, claims, CLIENT_ASSERTION_SKEW_SECONDS, 'invalid_client');
    return client;
  }

  // ---------------------------------------------------------------- assertions

  /** Signature and claims of an assertion (README "OAuth 2.0 token endpoint"). */
  private async verifyAssertion(
    parsed: ParsedJws,
    issuer: CompiledIssuer,
    singleKey: boolean,
    code: 'invalid_grant' | 'invalid_client',
  ): Promise<Record<string, unknown>> {
    // A certificate is the client's only key: kid / thumbprint headers cannot select another.
    const input = singleKey ? { ...parsed, header: stripKeyHints(parsed.header) } : parsed;
    const nowMs = this.now();
    const result = await verifyParsedJwt(input, issuer, { now: nowMs / 1000, deadline: Date.now() + 3000 });
    if (!result.ok) {
      if (result.deny.reason === 'keys_unavailable') {
        throw new OAuthError(
          'temporarily_unavailable',
          'the keys of the assertion issuer are unavailable; try again later',
        );
      }
      const why = (result.deny.description ?? result.deny.reason).replace(/^the token\b/, 'the assertion');
      throw new OAuthError(code, `assertion rejected: ${why}`);
    }
    const claims = result.claims;
    const exp = claims.exp;
    if (typeof exp !== 'number') throw new OAuthError(code, 'assertion rejected: exp is required');
    if (exp - nowMs / 1000 > this.cfg.max_assertion_lifetime_seconds) {
      throw new OAuthError(
        code,
        `assertion rejected: exp must be at most ${this.cfg.max_assertion_lifetime_seconds} seconds in the future`,
      );
    }
    const jti = claims.jti;
    if (typeof jti !== 'string' || jti === '' || jti.length > 256) {
      throw new OAuthError(code, 'assertion rejected: jti is required (a string of at most 256 characters)');
    }
    return claims;
  }

  /** Remembers (iss, jti) until exp + skew; a second use is refused, on every replica. */
  private async rememberJti(
    iss: string,
    claims: Record<string, unknown>,
    skew: number,
    code: 'invalid_grant' | 'invalid_client',
  ): Promise<void> {
    const key = createHash('sha256')
      .update(`${iss}\n${String(claims.jti)}`)
      .digest('base64url');
    const ttl = (claims.exp as number) + skew - this.now() / 1000;
    if (!(await this.ctx.store.rememberOnce(key, ttl))) {
      throw new OAuthError(code, 'assertion rejected: it has already been used (jti)');
    }
  }

  private resolveScope(requested: string | undefined, allowed: readonly string[]): string {
    const asked = parseScope(requested);
    if (!asked) return allowed.join(' ');
    const set = new Set(allowed);
    const extra = asked.filter((s) => !set.has(s));
    if (extra.length > 0)
      throw new OAuthError('invalid_scope', 'the requested scope exceeds the scope granted to the client');
    return asked.join(' ');
  }

  // ---------------------------------------------------------------- /oauth2/token

  async handleToken(req: OAuthRequest): Promise<HttpAnswer> {
    const t0 = performance.now();
    let format: ResponseFormat = 'json';
    const log: Record<string, unknown> = { endpoint: 'token' };
    let label = 'unsupported';
    let answer: HttpAnswer;
    try {
      const f = this.param(req, 'format');
      if (f !== undefined) {
        if (f !== 'json' && f !== 'urlencoded' && f !== 'xml') {
          throw new OAuthError('invalid_request', 'format must be json, urlencoded or xml');
        }
        format = f;
      }
      const grantType = this.param(req, 'grant_type');
      label = grantLabel(grantType);
      log.grant_type = label;
      if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is missing');
      let fields: Record<string, unknown>;
      if (grantType === GRANT_JWT_BEARER) fields = await this.jwtBearerGrant(req, log);
      else if (grantType === GRANT_REFRESH_TOKEN && this.cfg.refresh_token.enabled)
        fields = await this.refreshGrant(req, log);
      else throw new OAuthError('unsupported_grant_type', 'the grant type is not supported');
      log.result = 'success';
      answer = tokenAnswer(fields, format);
    } catch (err) {
      answer = this.fail(err, format, log);
    }
    this.ctx.metrics.tokenRequestsTotal.inc({ grant_type: label, result: String(log.result) });
    log.status = answer.status;
    log.duration_ms = Math.round((performance.now() - t0) * 1000) / 1000;
    this.ctx.logger.info(log, 'token request');
    return answer;
  }

  private async jwtBearerGrant(
    req: OAuthRequest,
    log: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    const assertion = this.param(req, 'assertion');
    if (assertion === undefined) throw new OAuthError('invalid_request', 'assertion is missing');
    const parsed = parseCompactJws(assertion, this.maxBodyBytes);
    if ('kind' in parsed) {
      throw new OAuthError('invalid_grant', 'the assertion is not a signed JWT (compact JWS)');
    }
    const iss = parsed.payload.iss;
    if (typeof iss !== 'string' || iss === '')
      throw new OAuthError('invalid_grant', 'the assertion has no issuer (iss)');
    const authenticated = await this.authenticateClient(req, false, log);
    const registered = this.clients.get(iss);
    let client: Client;
    let sub: string;
    let skew: number;
    let claims: Record<string, unknown>;
    if (registered) {
      // Trust path (a), Axway: the client signs its own assertion with its registered key.
      log.client_id = registered.id;
      log.trust = 'client';
      if (!registered.assertionIssuer) {
        throw new OAuthError(
          'unauthorized_client',
          'the client has no registered certificate or JWKS to sign assertions',
        );
      }
      claims = await this.verifyAssertion(
        parsed,
        registered.assertionIssuer,
        registered.singleKey,
        'invalid_grant',
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
      const idp = this.grantIssuers.get(iss);
      if (!idp) {
        throw new OAuthError(
          'invalid_grant',
          'the assertion issuer is not a registered client or trusted identity provider',
        );
      }
      // Trust path (b), WSO2: a trusted identity provider's JWT, exchanged by an authenticated client.
      log.idp = idp.name;
      log.trust = 'issuer';
      if (!authenticated) {
        throw new OAuthError(
          'invalid_client',
          'client authentication is required to exchange an identity provider assertion',
        );
      }
      log.client_id = authenticated.id;
      claims = await this.verifyAssertion(parsed, idp, false, 'invalid_grant');
      if (typeof claims.sub !== 'string' || claims.sub === '') {
        throw new OAuthError('invalid_grant', 'assertion rejected: sub is required');
      }
      client = authenticated;
      sub = claims.sub;
      skew = idp.clockSkewSeconds;
    }
    // Scope before the jti: a scope error must not burn the assertion.
    const scope = this.resolveScope(this.param(req, 'scope'), client.scopes);
    await this.rememberJti(iss, claims, skew, 'invalid_grant');
    const family: Family | undefined = this.cfg.refresh_token.enabled
      ? { id: randomUUID(), exp: this.nowSec() + this.cfg.refresh_token.ttl_seconds, scope, isNew: true }
      : undefined;
    return this.issue(client, sub, scope, family);
  }

  private async refreshGrant(
    req: OAuthRequest,
    log: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    const client = await this.authenticateClient(req, true, log);
    if (!client) throw new OAuthError('invalid_client', 'client authentication is required');
    log.client_id = client.id;
    const token = this.param(req, 'refresh_token');
    if (token === undefined) throw new OAuthError('invalid_request', 'refresh_token is missing');
    const invalid = () => new OAuthError('invalid_grant', 'the refresh token is invalid, expired or revoked');
    if (token.length > MAX_RANDOM_TOKEN || !BASE64URL.test(token)) throw invalid();
    const hash = hashToken(token);
    const state = await this.ctx.store.getRefreshToken(hash);
    if (!state) throw invalid();
    const rec = state.record;
    if (rec.clientId !== client.id) {
      throw new OAuthError('invalid_grant', 'the refresh token was not issued to this client', {
        logDetail: 'refresh token of another client',
      });
    }
    const now = this.nowSec();
    if (rec.familyExp <= now) throw invalid();
    const reuse = async () => {
      await this.revokeFamilyTokens(rec.familyId, rec.familyExp);
      log.reuse_detected = true;
      this.ctx.logger.warn(
        { client_id: client.id, family: rec.familyId },
        'refresh token reuse detected; family revoked',
      );
      return new OAuthError(
        'invalid_grant',
        'the refresh token was already used; all tokens of its grant are revoked',
      );
    };
    if (state.used) throw await reuse();
    if (await this.ctx.store.isFamilyRevoked(rec.familyId)) throw invalid();
    const granted = rec.scope.split(' ').filter((s) => s !== '');
    // Never more than the original grant, nor more than the client has now.
    const scope = this.resolveScope(
      this.param(req, 'scope'),
      granted.filter((s) => client.scopeSet.has(s)),
    );
    if (!(await this.ctx.store.markRefreshTokenUsed(hash, rec.familyExp - now))) throw await reuse();
    return this.issue(client, rec.sub, scope, {
      id: rec.familyId,
      exp: rec.familyExp,
      scope: rec.scope,
      isNew: false,
    });
  }

  /** Revokes a refresh-token family: its refresh tokens (marker) and every access token issued in it. */
  private async revokeFamilyTokens(familyId: string, familyExp: number): Promise<void> {
    const now = this.nowSec();
    const members = await this.ctx.store.revokeFamily(
      familyId,
      Math.max(familyExp - now, this.cfg.access_token.ttl_seconds),
    );
    await Promise.all(members.map((m) => this.revokeMember(m, now)));
  }

  private async revokeMember(m: FamilyMember, now: number): Promise<void> {
    if (m.kind === 'jwt') {
      // Kept until exp + skew: Check accepts our tokens that long (SELF_SKEW_SECONDS).
      if (m.exp + SELF_SKEW_SECONDS > now)
        await this.ctx.store.revokeJti(m.jti, m.exp + SELF_SKEW_SECONDS - now);
    } else {
      await this.ctx.store.deleteAccessToken(m.hash);
    }
  }

  private async issue(
    client: Client,
    sub: string,
    scope: string,
    family: Family | undefined,
  ): Promise<Record<string, unknown>> {
    const now = this.nowSec();
    const ttl = this.cfg.access_token.ttl_seconds;
    const jti = randomUUID();
    const claims: Record<string, unknown> = {
      ...client.tokenClaims,
      iss: this.issuer,
      sub,
      aud: this.accessAudience,
      client_id: client.id,
      scope,
      iat: now,
      exp: now + ttl,
      jti,
    };
    let accessToken: string;
    let member: FamilyMember;
    if (this.keys && this.header) {
      accessToken = signJws(this.keys.current, this.header as Record<string, unknown>, claims);
      member = { kind: 'jwt', jti, exp: now + ttl };
    } else {
      accessToken = randomToken(this.cfg.access_token.opaque_length);
      const hash = hashToken(accessToken);
      await this.ctx.store.putAccessToken(hash, { claims, ...(family ? { familyId: family.id } : {}) }, ttl);
      member = { kind: 'opaque', hash };
    }
    const fields: Record<string, unknown> = {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: ttl,
      scope,
    };
    if (family) {
      const refreshToken = randomToken(this.cfg.refresh_token.length);
      const left = family.exp - now;
      await this.ctx.store.addFamilyMember(family.id, member, Math.max(left, ttl));
      await this.ctx.store.putRefreshToken(
        hashToken(refreshToken),
        { clientId: client.id, sub, scope: family.scope, familyId: family.id, familyExp: family.exp },
        left,
      );
      // A reuse detected elsewhere between our check and now must still reach these tokens.
      if (!family.isNew && (await this.ctx.store.isFamilyRevoked(family.id))) {
        await this.revokeMember(member, now);
        throw new OAuthError('invalid_grant', 'the refresh token is invalid, expired or revoked');
      }
      fields.refresh_token = refreshToken;
    }
    return fields;
  }

  // ---------------------------------------------------------------- /oauth2/revoke, /oauth2/introspect

  async handleRevoke(req: OAuthRequest): Promise<HttpAnswer> {
    const log: Record<string, unknown> = { endpoint: 'revoke' };
    try {
      const client = (await this.authenticateClient(req, true, log))!;
      log.client_id = client.id;
      const token = this.param(req, 'token');
      if (token === undefined) throw new OAuthError('invalid_request', 'token is missing');
      log.revoked = await this.revoke(client, token);
      log.result = 'success';
      this.ctx.logger.info(log, 'revocation request');
      return { status: 200, headers: { ...NO_STORE }, body: '' };
    } catch (err) {
      const answer = this.fail(err, 'json', log);
      this.ctx.logger.info(log, 'revocation request');
      return answer;
    }
  }

  /** Returns what was revoked (for the log); another client's or an unknown token changes nothing. */
  private async revoke(client: Client, token: string): Promise<string> {
    const now = this.nowSec();
    const jwt = await this.verifyOwnJwt(token);
    if (jwt !== undefined) {
      if (jwt && jwt.client_id === client.id && typeof jwt.jti === 'string' && typeof jwt.exp === 'number') {
        await this.ctx.store.revokeJti(jwt.jti, Math.max(1, jwt.exp + SELF_SKEW_SECONDS - now));
        return 'access_token';
      }
      return 'nothing';
    }
    if (token.length > MAX_RANDOM_TOKEN || !BASE64URL.test(token)) return 'nothing';
    const hash = hashToken(token);
    const access = await this.ctx.store.getAccessToken(hash);
    if (access) {
      if (access.claims.client_id !== client.id) return 'nothing';
      await this.ctx.store.deleteAccessToken(hash);
      return 'access_token';
    }
    const refresh = await this.ctx.store.getRefreshToken(hash);
    if (refresh && refresh.record.clientId === client.id) {
      // RFC 7009 §2.1: also the access tokens issued from it (its whole grant).
      await this.revokeFamilyTokens(refresh.record.familyId, refresh.record.familyExp);
      await this.ctx.store.deleteRefreshToken(hash);
      return 'refresh_token';
    }
    return 'nothing';
  }

  /**
   * undefined: not a compact JWS. false: a JWS we did not issue or that is no longer
   * valid. Else its claims.
   */
  private async verifyOwnJwt(token: string): Promise<Record<string, unknown> | false | undefined> {
    const parsed = parseCompactJws(token, 16384);
    if ('kind' in parsed) return token.includes('.') ? false : undefined;
    if (!this.keys) return false;
    const result = await verifyParsedJwt(parsed, this.self.issuer, { now: this.now() / 1000 });
    return result.ok ? result.claims : false;
  }

  async handleIntrospect(req: OAuthRequest): Promise<HttpAnswer> {
    const log: Record<string, unknown> = { endpoint: 'introspect' };
    try {
      const client = (await this.authenticateClient(req, true, log))!;
      log.client_id = client.id;
      const token = this.param(req, 'token');
      if (token === undefined) throw new OAuthError('invalid_request', 'token is missing');
      const fields = await this.introspect(client, token);
      log.result = 'success';
      log.active = fields.active;
      this.ctx.logger.info(log, 'introspection request');
      return jsonAnswer(200, fields);
    } catch (err) {
      const answer = this.fail(err, 'json', log);
      this.ctx.logger.info(log, 'introspection request');
      return answer;
    }
  }

  private async introspect(client: Client, token: string): Promise<Record<string, unknown>> {
    const inactive = { active: false };
    const now = this.nowSec();
    const jwt = await this.verifyOwnJwt(token);
    if (jwt !== undefined) {
      if (!jwt || jwt.client_id !== client.id) return inactive;
      if (typeof jwt.jti === 'string' && (await this.ctx.store.isJtiRevoked(jwt.jti))) return inactive;
      return { active: true, ...jwt, token_type: 'Bearer' };
    }
    if (token.length > MAX_RANDOM_TOKEN || !BASE64URL.test(token)) return inactive;
    const hash = hashToken(token);
    const access = await this.ctx.store.getAccessToken(hash);
    if (access) {
      const exp = access.claims.exp;
      if (access.claims.client_id !== client.id || typeof exp !== 'number' || exp <= now) return inactive;
      return { active: true, ...access.claims, token_type: 'Bearer' };
    }
    const refresh = await this.ctx.store.getRefreshToken(hash);
    if (!refresh) return inactive;
    const rec = refresh.record;
    if (rec.clientId !== client.id || refresh.used || rec.familyExp <= now) return inactive;
    if (await this.ctx.store.isFamilyRevoked(rec.familyId)) return inactive;
    return {
      active: true,
      iss: this.issuer,
      sub: rec.sub,
      client_id: rec.clientId,
      scope: rec.scope,
      exp: rec.familyExp,
      token_type: 'refresh_token',
    };
  }
}

const BASE64_STD = /^[A-Za-z0-9+/]+={0,2}$/;
const DUMMY_DIGEST = sha256('no client has this secret');

function stripKeyHints(header: Record<string, unknown>): Record<string, unknown> {
  const { kid: _kid, x5t: _x5t, 'x5t#S256': _s256, ...rest } = header;
  return rest;
}

// ---------------------------------------------------------------- construction

function compileClient(
  c: ClientConfig,
  i: number,
  audience: string,
  ctx: TokenServiceContext,
  problems: string[],
): Client | undefined {
  const p = `token_endpoint.clients[${i}]`;
  const sources = ['certificate_file', 'jwks_file'].filter((k) => c[k as keyof ClientConfig] !== undefined);
  if (sources.length === 0 && c.client_secret_file === undefined) {
    problems.push(
      `${p}: needs a certificate_file or jwks_file (signed assertions) or a client_secret_file (HTTP Basic)`,
    );
    return undefined;
  }
  if (sources.length > 1) {
    problems.push(`${p}: give either certificate_file or jwks_file, not both`);
    return undefined;
  }
  for (const name of Object.keys(c.token_claims)) {
    if (RESERVED_CLAIMS.includes(name)) {
      problems.push(`${p}.token_claims.${name}: reserved claim; the service sets it itself`);
    }
  }
  const before = problems.length;
  let secretDigest: Buffer | undefined;
  if (c.client_secret_file !== undefined) {
    try {
      const secret = readSecretFile(c.client_secret_file, ctx.baseDir, `${p}.client_secret_file`);
      if (secret.length === 0) problems.push(`${p}.client_secret_file: the secret is empty`);
      else secretDigest = sha256(secret);
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else throw err;
    }
  }
  let assertionIssuer: CompiledIssuer | undefined;
  let singleKey = false;
  if (sources.length === 1) {
    const loaded =
      c.certificate_file !== undefined
        ? loadClientCertificate(
            c.certificate_file,
            ctx.baseDir,
            `${p}.certificate_file`,
            Date.now(),
            ctx.logger,
          )
        : loadClientJwks(c.jwks_file!, ctx.baseDir, `${p}.jwks_file`, ctx.logger);
    if (typeof loaded === 'string') {
      problems.push(loaded);
    } else {
      singleKey = loaded.single;
      assertionIssuer = Object.freeze({
        name: `client:${c.client_id}`,
        issuer: c.client_id,
        audiences: new Set([audience]),
        algorithms: new Set<string>(ASYMMETRIC_DEFAULT_ALGORITHMS),
        keySource: staticKeySource(loaded.set, loaded.kind),
        clockSkewSeconds: CLIENT_ASSERTION_SKEW_SECONDS,
        requiredClaims: ['iss', 'aud', 'exp', 'jti'],
        // exp − now is bounded by max_assertion_lifetime_seconds instead (checked by the service).
        maxLifetimeSeconds: Number.MAX_SAFE_INTEGER,
      });
    }
  }
  if (problems.length > before) return undefined;
  return Object.freeze({
    id: c.client_id,
    scopes: Object.freeze([...new Set(c.scopes)]),
    scopeSet: new Set(c.scopes),
    tokenClaims: Object.freeze({ ...c.token_claims }),
    ...(secretDigest ? { secretDigest } : {}),
    ...(assertionIssuer ? { assertionIssuer } : {}),
    singleKey,
  });
}

function selfIssuerFor(
  cfg: TokenEndpointConfig,
  issuer: string,
  keys: SigningKeys | undefined,
): CompiledIssuer {
  const all: SigningKey[] = keys ? [keys.current, ...keys.previous] : [];
  const vks = all.map((k) => verificationKeyFor(k.key, { kid: k.kid, alg: k.alg }));
  const set = vks.length > 0 ? makeKeySet(vks) : EMPTY_KEY_SET;
  const auds = cfg.access_token.audiences.length > 0 ? cfg.access_token.audiences : [issuer];
  return Object.freeze({
    name: 'self',
    issuer,
    audiences: new Set(auds),
    algorithms: new Set(all.map((k) => k.alg)),
    keySource: staticKeySource(set, 'self'),
    clockSkewSeconds: SELF_SKEW_SECONDS,
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
    maxLifetimeSeconds: cfg.access_token.ttl_seconds,
    requiredTyp: 'at+jwt',
  });
}

/**
 * Builds the token service from a validated config. Throws ConfigError listing every
 * problem with its config path (missing issuer/audience, clients without credentials,
 * unreadable or expired certificates, unknown grant_issuers, signing key problems).
 */
export async function createTokenService(
  cfg: TokenEndpointConfig,
  ctx: TokenServiceContext,
): Promise<TokenService> {
  const problems: string[] = [];
  if (!cfg.enabled) problems.push('token_endpoint.enabled: the token endpoint is not enabled');
  if (!cfg.issuer) problems.push('token_endpoint.issuer: required when the token endpoint is enabled');
  if (!cfg.audience) problems.push('token_endpoint.audience: required when the token endpoint is enabled');
  if (cfg.issuer) {
    for (const [name, iss] of ctx.issuersByName) {
      if (iss.issuer === cfg.issuer) {
        problems.push(
          `token_endpoint.issuer: issuer "${name}" already uses "${cfg.issuer}"; this service trusts its own tokens as "self"`,
        );
      }
    }
  }
  const clients = new Map<string, Client>();
  const seen = new Set<string>();
  cfg.clients.forEach((c, i) => {
    if (seen.has(c.client_id)) {
      problems.push(`token_endpoint.clients[${i}].client_id: duplicate client_id "${c.client_id}"`);
      return;
    }
    seen.add(c.client_id);
    const client = compileClient(c, i, cfg.audience ?? '', ctx, problems);
    if (client) clients.set(client.id, client);
  });
  const grantIssuers = new Map<string, CompiledIssuer>();
  cfg.grant_issuers.forEach((name, j) => {
    const base = ctx.issuersByName.get(name);
    if (!base) {
      problems.push(`token_endpoint.grant_issuers[${j}]: no issuer named "${name}"`);
      return;
    }
    if (seen.has(base.issuer)) {
      problems.push(
        `token_endpoint.grant_issuers[${j}]: the issuer "${base.issuer}" is also a client_id; assertions would be ambiguous`,
      );
    }
    // README "OAuth 2.0 token endpoint": the issuer entry's own audiences do not apply; assertions are for the token endpoint.
    const required = new Set([...base.requiredClaims, 'iss', 'sub', 'aud', 'exp', 'jti']);
    grantIssuers.set(
      base.issuer,
      Object.freeze({ ...base, audiences: new Set([cfg.audience ?? '']), requiredClaims: [...required] }),
    );
  });
  let keys: SigningKeys | undefined;
  if (cfg.access_token.format === 'jwt' && problems.length === 0) {
    try {
      keys = await loadSigningKeys(cfg.access_token.signing, 'token_endpoint.access_token.signing', ctx);
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else throw err;
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const selfIssuer = selfIssuerFor(cfg, cfg.issuer!, keys);
  return new OAuthTokenService(cfg, ctx, clients, grantIssuers, keys, selfIssuer);
}
