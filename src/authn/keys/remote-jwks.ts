import type { JwksCacheConfig } from '../../config/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { ATTR, tracer } from '../../observability/tracing.js';
import { errorReason, fetchJson, urlForLog } from '../../net/safe-fetch.js';
import { buildKeySet, keySetFingerprint } from './jwk.js';
import { keySourceStatus, type KeySet, type KeySource, type KeySourceStatus } from './key-source.js';
import { secondsToMs, systemClock, type Clock, type EpochMs } from '../../core/time.js';

/** Why a fetch happens; a locator (discovery) may re-resolve on some of them. */
export type FetchCause = 'initial' | 'scheduled' | 'retry' | 'unknown-kid';

/** Returns the JWKS URL to fetch. Plain `jwks_uri` returns a constant; discovery resolves it. */
export type JwksLocator = (cause: FetchCause) => Promise<string>;

export interface RemoteJwksOptions {
  /** Issuer name (label for logs and metrics). */
  readonly issuer: string;
  readonly kind?: 'remote-jwks' | 'discovery';
  /** The JWKS URL, or a locator that resolves it (discovery). */
  readonly jwksUri: string | JwksLocator;
  /** Seconds (fractions accepted) / ms, as in the config. */
  readonly cache: JwksCacheConfig;
  readonly insecureHttp?: boolean;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** First retry delay after a failure; doubles up to max_age. Default 1000. */
  readonly initialBackoffMs?: number;
  /** For tests. */
  readonly clock?: Clock;
}

/**
 * Keys from a remote JWKS: first fetch on start(), background refresh every max_age,
 * backoff retries after failures, last good keys served for max_stale after the last
 * success while the endpoint fails (connection error, timeout, non-200, a body that is not
 * a JWKS), cooldown-limited and coalesced unknown-kid refetches. A 200 answer with a
 * well-formed JWKS replaces the keys even when it holds none that is usable.
 */
export class RemoteJwksKeySource implements KeySource {
  readonly kind: 'remote-jwks' | 'discovery';
  private readonly clock: Clock;
  private readonly locate: JwksLocator;
  private keySet: KeySet | undefined;
  private fingerprint: string | undefined;
  private gen = 0;
  private loaded = false;
  private lastError: string | undefined;
  private lastSuccessAt: EpochMs | undefined;
  private lastAttemptAt: EpochMs | undefined;
  private failures = 0;
  private inFlight: Promise<void> | undefined;
  private startPromise: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: RemoteJwksOptions) {
    this.kind = opts.kind ?? 'remote-jwks';
    this.clock = opts.clock ?? systemClock;
    const uri = opts.jwksUri;
    this.locate = typeof uri === 'string' ? () => Promise.resolve(uri) : uri;
  }

  get generation(): number {
    return this.gen;
  }

  start(): Promise<void> {
    this.startPromise ??= this.fetch('initial');
    return this.startPromise;
  }

  current(): KeySet | undefined {
    if (!this.keySet || this.expired()) return undefined;
    return this.keySet;
  }

  refreshForUnknownKid(): Promise<KeySet | undefined> | KeySet | undefined {
    if (this.inFlight) return this.inFlight.then(() => this.current());
    const cooldownMs = secondsToMs(this.opts.cache.cooldown_seconds);
    if (this.lastAttemptAt !== undefined && this.clock.nowMs() - this.lastAttemptAt < cooldownMs)
      return this.current();
    if (this.closed) return this.current();
    return this.fetch('unknown-kid').then(() => this.current());
  }

  status(): KeySourceStatus {
    return keySourceStatus(this.loaded, this.current(), this.lastError, this.lastSuccessAt);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Keys are expired when the latest attempt failed and the last success is older than max_stale. */
  private expired(): boolean {
    if (this.lastError === undefined || this.lastSuccessAt === undefined) return false;
    return this.clock.nowMs() - this.lastSuccessAt > secondsToMs(this.opts.cache.max_stale_seconds);
  }

  /** One fetch at a time: concurrent callers share it. */
  private fetch(cause: FetchCause): Promise<void> {
    this.inFlight ??= this.doFetch(cause).finally(() => {
      this.inFlight = undefined;
      this.schedule();
    });
    return this.inFlight;
  }

  private async doFetch(cause: FetchCause): Promise<void> {
    const { issuer, logger, metrics, cache } = this.opts;
    this.lastAttemptAt = this.clock.nowMs();
    // Only a fetch for a token's unknown kid belongs to the Check that asked; the others
    // are background work with a trace of their own.
    const span = tracer?.startSpan('jwks.fetch', cause !== 'unknown-kid');
    span?.setAttribute(ATTR.issuer, issuer);
    span?.setAttribute('jwks.cause', cause);
    let uri: string | undefined;
    try {
      uri = await this.locate(cause);
      const body = await fetchJson(uri, {
        timeoutMs: cache.timeout_ms,
        insecureHttp: this.opts.insecureHttp,
      });
      // A document that is not a JWKS throws (an outage: the last good keys stay). A
      // well-formed JWKS is the provider's word on which keys it stands behind, even with
      // no usable key in it: keys it no longer publishes stop being trusted now.
      const set = buildKeySet(body, { issuer, logger });
      this.apply(set);
      this.lastSuccessAt = this.clock.nowMs();
      this.lastError = undefined;
      this.failures = 0;
      metrics?.jwksFetchTotal.inc({ issuer, result: 'success' });
      span?.setAttribute('jwks.keys', set.keys.length);
      if (set.keys.length === 0) {
        logger.warn(
          { issuer, url: urlForLog(uri), cause, generation: this.gen },
          "JWKS holds no usable key; the issuer's tokens are refused until it publishes one",
        );
      }
      logger.debug({ issuer, keys: set.keys.length, cause, generation: this.gen }, 'JWKS fetched');
    } catch (err) {
      this.failures++;
      this.lastError = errorReason(err);
      metrics?.jwksFetchTotal.inc({ issuer, result: 'error' });
      span?.fail(this.lastError);
      logger.warn(
        {
          issuer,
          ...(uri !== undefined ? { url: urlForLog(uri) } : {}),
          cause,
          reason: this.lastError,
          failures: this.failures,
          serving: this.current()?.keys.length ? 'last good keys' : 'no keys',
        },
        'JWKS fetch failed',
      );
    } finally {
      this.loaded = true;
      span?.end();
    }
  }

  private apply(set: KeySet): void {
    const fp = keySetFingerprint(set);
    if (fp !== this.fingerprint) {
      this.fingerprint = fp;
      this.gen++;
      if (this.keySet)
        this.opts.logger.info({ issuer: this.opts.issuer, keys: set.keys.length }, 'JWKS keys changed');
    }
    this.keySet = set;
    this.opts.metrics?.jwksKeys.set({ issuer: this.opts.issuer }, set.keys.length);
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    const maxAgeMs = secondsToMs(this.opts.cache.max_age_seconds);
    let delay = maxAgeMs;
    if (this.failures > 0) {
      const base = this.opts.initialBackoffMs ?? 1000;
      delay = Math.min(base * 2 ** Math.min(this.failures - 1, 30), maxAgeMs);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.fetch(this.failures > 0 ? 'retry' : 'scheduled');
    }, delay);
    this.timer.unref();
  }
}
