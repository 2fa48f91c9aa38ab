import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics (README "Operations"). Created once per process and shared across config
 * reloads, so counters keep counting when the runtime graph is rebuilt.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly checkTotal = new Counter({
    name: 'authz_check_total',
    help: 'Check decisions by decision, reason and issuer',
    labelNames: ['decision', 'reason', 'issuer'] as const,
    registers: [this.registry],
  });
  readonly checkDuration = new Histogram({
    name: 'authz_check_duration_seconds',
    help: 'Time to answer a Check call',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5],
    registers: [this.registry],
  });
  readonly jwksFetchTotal = new Counter({
    name: 'authz_jwks_fetch_total',
    help: 'JWKS / discovery fetches by issuer and result',
    labelNames: ['issuer', 'result'] as const,
    registers: [this.registry],
  });
  readonly jwksKeys = new Gauge({
    name: 'authz_jwks_keys',
    help: 'Usable verification keys per issuer',
    labelNames: ['issuer'] as const,
    registers: [this.registry],
  });
  readonly cacheHitsTotal = new Counter({
    name: 'authz_cache_hits_total',
    help: 'Cache hits by cache (verified_token, minted_token, store)',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });
  readonly cacheMissesTotal = new Counter({
    name: 'authz_cache_misses_total',
    help: 'Cache misses by cache (verified_token, minted_token, store)',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });
  readonly tokenRequestsTotal = new Counter({
    name: 'authz_token_requests_total',
    help: 'Token endpoint requests by grant type and result',
    labelNames: ['grant_type', 'result'] as const,
    registers: [this.registry],
  });

  readonly logSuppressedTotal = new Counter({
    name: 'authz_log_suppressed_total',
    help: 'Per-decision log lines not written (beyond log.denials_per_second), by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** Pre-bound label children for the hot path (no label lookup per increment). */
  readonly hits = {
    verifiedToken: this.cacheHitsTotal.labels('verified_token'),
    mintedToken: this.cacheHitsTotal.labels('minted_token'),
    store: this.cacheHitsTotal.labels('store'),
  };
  readonly misses = {
    verifiedToken: this.cacheMissesTotal.labels('verified_token'),
    mintedToken: this.cacheMissesTotal.labels('minted_token'),
    store: this.cacheMissesTotal.labels('store'),
  };
  private readonly checkCounters = new Map<
    string,
    ReturnType<Counter<'decision' | 'reason' | 'issuer'>['labels']>
  >();

  /** authz_check_total for one outcome; children are cached by label values. */
  countCheck(decision: string, reason: string, issuer: string): void {
    const key = `${decision}\u0000${reason}\u0000${issuer}`;
    let child = this.checkCounters.get(key);
    if (!child) {
      child = this.checkTotal.labels(decision, reason, issuer);
      this.checkCounters.set(key, child);
    }
    child.inc();
  }

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}
