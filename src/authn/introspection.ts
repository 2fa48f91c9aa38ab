import { createHash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { deny } from '../core/decision.js';
import { secondsToMs, systemClock, type Clock, type EpochMs } from '../core/time.js';
import { errorReason, fetchJson, urlForLog } from '../net/safe-fetch.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { OpaqueLookup, TokenStatusCheck } from './token-status.js';
import { checkClaims, type CompiledIssuer } from './verify.js';

// RFC 7662 token introspection: another identity provider's opaque access tokens are
// vouched for by its introspection endpoint. Answers are cached by the SHA-256 of the
// token (the token itself is never kept, sent anywhere else, or logged).

/** How long an `active: false` answer is reused at most, so a flood of bad tokens does not flood the IdP. */
export const NEGATIVE_CACHE_SECONDS = 10;
/** Largest introspection answer read. */
export const MAX_ANSWER_BYTES = 64 * 1024;
/** Distinct tokens whose answers are kept (least recently used go first). */
export const DEFAULT_CACHE_ENTRIES = 10_000;

export interface IntrospectionOptions {
  /** Issuer name (logs). */
  readonly issuer: string;
  readonly endpoint: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly cacheSeconds: number;
  readonly timeoutMs: number;
  readonly insecureHttp?: boolean;
  /** The issuer's claim rules, applied to an active answer as to a JWT's claims. */
  readonly claims: Pick<
    CompiledIssuer,
    'requiredClaims' | 'clockSkewSeconds' | 'audiences' | 'maxLifetimeSeconds'
  >;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly maxEntries?: number;
  /** Tests pin it. */
  readonly clock?: Clock;
}

/** What the endpoint said: the claims of an active token, inactive, or why there is no usable answer. */
type Answer =
  | { readonly active: true; readonly claims: Record<string, unknown> }
  | { readonly active: false }
  | { readonly error: string };

interface CachedAnswer {
  readonly answer: Answer;
  readonly until: EpochMs;
}

const INACTIVE: Answer = { active: false };

/** application/x-www-form-urlencoded, as RFC 6749 (2.3.1) wants client_id and secret encoded for Basic. */
function formEncode(s: string): string {
  return new URLSearchParams([['', s]]).toString().slice(1);
}

/** The HTTP Basic credentials of an OAuth client (each part form-encoded before base64). */
export function basicCredentials(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(secret)}`, 'utf8').toString('base64')}`;
}

/** An introspection endpoint as the token status of an issuer whose tokens are opaque. */
export class IntrospectionCheck implements TokenStatusCheck {
  readonly issuesOpaqueTokens = true;
  readonly introspects = true;
  private readonly cache: LRUCache<string, CachedAnswer>;
  private readonly inFlight = new Map<string, Promise<Answer>>();
  private readonly authorization: string;
  private readonly clock: Clock;
  private readonly endpointForLog: string;

  constructor(private readonly opts: IntrospectionOptions) {
    this.cache = new LRUCache({ max: opts.maxEntries ?? DEFAULT_CACHE_ENTRIES });
    this.authorization = basicCredentials(opts.clientId, opts.clientSecret);
    this.clock = opts.clock ?? systemClock;
    this.endpointForLog = urlForLog(opts.endpoint);
  }

  /** Introspected tokens are never JWTs, so there is nothing to revoke by claims. */
  isRevoked(): Promise<boolean> {
    return Promise.resolve(false);
  }

  async lookupOpaque(token: string): Promise<OpaqueLookup> {
    const key = createHash('sha256').update(token).digest('base64url');
    const hit = this.cache.get(key);
    let answer: Answer;
    if (hit && hit.until > this.clock.nowMs()) {
      this.opts.metrics?.hits.introspection.inc();
      answer = hit.answer;
    } else {
      if (hit) this.cache.delete(key);
      this.opts.metrics?.misses.introspection.inc();
      // Concurrent checks of one new token share one request.
      let pending = this.inFlight.get(key);
      if (!pending) {
        pending = this.introspect(token, key).finally(() => this.inFlight.delete(key));
        this.inFlight.set(key, pending);
      }
      answer = await pending;
    }
    if ('error' in answer) {
      return {
        status: 'unavailable',
        deny: deny('introspection_unavailable', 'the token could not be checked with its issuer', {
          logDetail: answer.error,
        }),
      };
    }
    if (!answer.active) return { status: 'inactive' };
    // Checked at every use: the cached answer is reused, the clock is not.
    const problem = checkClaims(answer.claims, this.opts.claims, this.clock.nowSeconds());
    if (problem) return { status: 'refused', deny: problem };
    return { status: 'active', claims: answer.claims };
  }

  /**
   * Asks the endpoint about a random token: undefined when it answers as an introspection
   * endpoint should (client credentials accepted, a JSON object with a boolean `active`),
   * else why not. For check-config; nothing is cached.
   */
  async probe(): Promise<string | undefined> {
    const answer = await this.introspect(randomBytes(24).toString('base64url'), undefined);
    return 'error' in answer ? answer.error : undefined;
  }

  private async introspect(token: string, key: string | undefined): Promise<Answer> {
    let body: Record<string, unknown>;
    try {
      body = await fetchJson(this.opts.endpoint, {
        timeoutMs: this.opts.timeoutMs,
        insecureHttp: this.opts.insecureHttp,
        maxBytes: MAX_ANSWER_BYTES,
        post: {
          form: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
          headers: { authorization: this.authorization },
        },
      });
    } catch (err) {
      return this.failed(errorReason(err));
    }
    const active = body.active;
    if (typeof active !== 'boolean') return this.failed('the answer has no boolean "active"');
    const start = this.clock.nowMs();
    if (!active) {
      this.remember(
        key,
        INACTIVE,
        start + secondsToMs(Math.min(this.opts.cacheSeconds, NEGATIVE_CACHE_SECONDS)),
      );
      return INACTIVE;
    }
    // A rest copy defines own properties: a "__proto__" member stays a plain claim.
    const { active: _active, ...claims } = body;
    const answer: Answer = { active: true, claims };
    let until = start + secondsToMs(this.opts.cacheSeconds);
    // Never reused beyond the token's own expiry.
    if (typeof claims.exp === 'number' && Number.isFinite(claims.exp))
      until = Math.min(until, secondsToMs(claims.exp));
    this.remember(key, answer, until);
    return answer;
  }

  private remember(key: string | undefined, answer: Answer, until: EpochMs): void {
    if (key !== undefined && until > this.clock.nowMs()) this.cache.set(key, { answer, until });
  }

  private failed(reason: string): Answer {
    this.opts.logger.warn(
      { issuer: this.opts.issuer, endpoint: this.endpointForLog, reason },
      'token introspection failed',
    );
    return { error: reason };
  }
}
