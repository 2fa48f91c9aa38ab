import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics (docs/operations.md "Operations"). Created once per process and shared across config
 * reloads, so counters keep counting when the runtime graph is rebuilt.
 */
export class Metrics {
  /** Counts per counter not yet added to it (see `hits`). Declared first: later fields use it. */
  private readonly pendingCounts = new Map<Counter<string>, PendingCount[]>();
  readonly registry = new Registry();
  readonly checkTotal: Counter<'decision' | 'reason' | 'issuer'> = new Counter({
    name: 'authz_check_total',
    help: 'Check decisions by decision, reason and issuer',
    labelNames: ['decision', 'reason', 'issuer'] as const,
    registers: [this.registry],
    collect: (): void => this.flush(this.checkTotal),
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
  readonly cacheHitsTotal: Counter<'cache'> = new Counter({
    name: 'authz_cache_hits_total',
    help: 'Cache hits by cache (verified_token, minted_token, store, introspection)',
    labelNames: ['cache'] as const,
    registers: [this.registry],
    collect: (): void => this.flush(this.cacheHitsTotal),
  });
  readonly cacheMissesTotal: Counter<'cache'> = new Counter({
    name: 'authz_cache_misses_total',
    help: 'Cache misses by cache (verified_token, minted_token, store, introspection)',
    labelNames: ['cache'] as const,
    registers: [this.registry],
    collect: (): void => this.flush(this.cacheMissesTotal),
  });
  readonly tokenRequestsTotal = new Counter({
    name: 'authz_token_requests_total',
    help: 'Token endpoint requests by grant type and result',
    labelNames: ['grant_type', 'result'] as const,
    registers: [this.registry],
  });
  readonly rateLimitedTotal = new Counter({
    name: 'authz_rate_limited_total',
    help: 'Requests refused with 429 by rate limit name (token endpoint: "token_endpoint")',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  readonly rateLimitErrorsTotal = new Counter({
    name: 'authz_rate_limit_errors_total',
    help: 'Rate limit counts the store could not make, by rate limit name and outcome (allowed: rate_limits_fail open; denied: closed)',
    labelNames: ['limit', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly httpRefusedTotal = new Counter({
    name: 'authz_http_refused_total',
    help: 'HTTP listener refusals by reason (client_connections, connections, probe_only, body_timeout)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly dryRunTotal = new Counter({
    name: 'authz_dry_run_total',
    help: 'Decisions of rules in audit mode (dry run), by rule and what they would have decided',
    labelNames: ['rule', 'would'] as const,
    registers: [this.registry],
  });

  readonly logSuppressedTotal = new Counter({
    name: 'authz_log_suppressed_total',
    help: 'Per-decision log lines not written (beyond log.denials_per_second), by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /**
   * Hot-path counts: a plain number incremented per check, added to the prom-client
   * counter when /metrics is read (its collect hook). prom-client hashes the label set
   * on every inc(); at tens of thousands of checks a second that is measurable.
   */
  readonly hits = {
    verifiedToken: this.pending(this.cacheHitsTotal, { cache: 'verified_token' }),
    mintedToken: this.pending(this.cacheHitsTotal, { cache: 'minted_token' }),
    store: this.pending(this.cacheHitsTotal, { cache: 'store' }),
    introspection: this.pending(this.cacheHitsTotal, { cache: 'introspection' }),
  };
  readonly misses = {
    verifiedToken: this.pending(this.cacheMissesTotal, { cache: 'verified_token' }),
    mintedToken: this.pending(this.cacheMissesTotal, { cache: 'minted_token' }),
    store: this.pending(this.cacheMissesTotal, { cache: 'store' }),
    introspection: this.pending(this.cacheMissesTotal, { cache: 'introspection' }),
  };
  /** authz_check_total children by decision, reason, issuer (nested: no key string per check). */
  private readonly checkCounters = new Map<string, Map<string, Map<string, PendingCount>>>();

  /** authz_check_total for one outcome. */
  countCheck(decision: string, reason: string, issuer: string): void {
    let byReason = this.checkCounters.get(decision);
    if (!byReason) this.checkCounters.set(decision, (byReason = new Map()));
    let byIssuer = byReason.get(reason);
    if (!byIssuer) byReason.set(reason, (byIssuer = new Map()));
    let count = byIssuer.get(issuer);
    if (!count) byIssuer.set(issuer, (count = this.pending(this.checkTotal, { decision, reason, issuer })));
    count.n++;
  }

  private pending(counter: Counter<string>, labels: Record<string, string>): PendingCount {
    const count = new PendingCount(labels);
    // The labelled series exists (at 0) from the start, as with a pre-bound child.
    counter.inc(labels, 0);
    let list = this.pendingCounts.get(counter);
    if (!list) this.pendingCounts.set(counter, (list = []));
    list.push(count);
    return count;
  }

  /** Moves the pending counts of one counter into it (its collect hook, run on every read). */
  private flush(counter: Counter<string>): void {
    for (const c of this.pendingCounts.get(counter) ?? []) {
      if (c.n === 0) continue;
      counter.inc(c.labels, c.n);
      c.n = 0;
    }
  }

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}

/** A count not yet added to its prom-client counter. */
class PendingCount {
  n = 0;
  constructor(readonly labels: Record<string, string>) {}
  inc(): void {
    this.n++;
  }
}
