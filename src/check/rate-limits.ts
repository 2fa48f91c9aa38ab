import { createHash } from 'node:crypto';
import { deny, type Allow, type Decision, type Deny, type HeaderToSet } from '../core/decision.js';
import type { Principal } from '../core/request.js';
import { systemClock, type Clock } from '../core/time.js';
import {
  compileExpression,
  ExpressionBudgetError,
  type CompiledExpression,
  type ExpressionInput,
} from '../authz/expressions.js';
import type { RateLimitPeek, RateLimitResult, Store } from '../store/token-store.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

// Quotas on allowed requests (docs/policies.md "Quotas (rate limits)"). Counted only once a request
// has been verified and authorized, one store hit per applicable limit; the answer carries
// the IETF RateLimit-Policy / RateLimit header fields (structured-field syntax).

export interface RateLimitSettings {
  readonly name: string;
  readonly key?: string;
  readonly limit: number;
  readonly window_seconds: number;
  readonly rules?: readonly string[];
  readonly when?: string;
}

type Child = { inc(): void };

interface CompiledLimit {
  readonly name: string;
  readonly limit: number;
  readonly windowSeconds: number;
  readonly key?: CompiledExpression;
  readonly when?: CompiledExpression;
  readonly rules?: ReadonlySet<string>;
  /** `"name";q=<limit>;w=<window>` */
  readonly policy: string;
  /** `rl:` is added by the store; this is the per-limit namespace. */
  readonly prefix: string;
}

interface BoundLimit extends CompiledLimit {
  readonly limited: Child;
  readonly failedOpen: Child;
  readonly failedClosed: Child;
  /** epoch ms of the last key-fallback warning (one per minute per limit, never per request). */
  lastWarn: number;
}

/** Safe in a structured-field string, a metric label and a store key. */
const LIMIT_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Longer keys are hashed (a claim value can be long; store keys stay small). */
const MAX_RAW_KEY = 128;
const WARN_INTERVAL_MS = 60_000;

/**
 * Compiles rate_limits: CEL key and when with the same variables as require.expression.
 * `ruleNames` are the names `rules` may list. Problems name the field.
 */
export function compileRateLimits(
  limits: readonly RateLimitSettings[],
  ruleNames: ReadonlySet<string>,
  problems: string[],
): CompiledLimit[] {
  const out: CompiledLimit[] = [];
  limits.forEach((l, i) => {
    const at = `rate_limits[${i}]`;
    const before = problems.length;
    if (!LIMIT_NAME.test(l.name))
      problems.push(
        `${at}.name: use 1-64 letters, digits, "_", "." or "-" (it appears in headers and metrics)`,
      );
    if (!Number.isInteger(l.limit) || l.limit <= 0) problems.push(`${at}.limit: must be a positive integer`);
    if (!Number.isInteger(l.window_seconds) || l.window_seconds <= 0)
      problems.push(`${at}.window_seconds: must be a positive integer`);
    for (const [j, r] of (l.rules ?? []).entries())
      if (!ruleNames.has(r)) problems.push(`${at}.rules[${j}]: no rule is named "${r}"`);
    const key = l.key !== undefined ? compileExpression(l.key, `${at}.key`, 'value', problems) : undefined;
    const when = l.when !== undefined ? compileExpression(l.when, `${at}.when`, 'bool', problems) : undefined;
    if (problems.length > before) return;
    out.push({
      name: l.name,
      limit: l.limit,
      windowSeconds: l.window_seconds,
      ...(key ? { key } : {}),
      ...(when ? { when } : {}),
      ...(l.rules ? { rules: new Set(l.rules) } : {}),
      policy: `"${l.name}";q=${l.limit};w=${l.window_seconds}`,
      prefix: `${l.name}:`,
    });
  });
  return out;
}

/** The check's expressions took too long: denied like any expression error (fail closed). */
function overBudget(allow: Allow, where: string, err: ExpressionBudgetError): Deny {
  return deny('expression_error', "the route's policy could not be evaluated", {
    rule: allow.rule,
    issuer: allow.issuer,
    logDetail: `${where}: ${err.message}`,
  });
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

/** Counts allowed requests against the compiled limits, in the given store. */
export class RateLimiter {
  private readonly limits: readonly BoundLimit[];
  private readonly byRule = new Map<string, readonly BoundLimit[] | null>();

  constructor(
    limits: readonly CompiledLimit[],
    private readonly store: Store,
    private readonly failOpen: boolean,
    private readonly logger: Logger,
    metrics: Metrics,
    private readonly clock: Clock = systemClock,
  ) {
    this.limits = limits.map((l) => ({
      ...l,
      limited: metrics.rateLimitedTotal.labels(l.name),
      failedOpen: metrics.rateLimitErrorsTotal.labels(l.name, 'allowed'),
      failedClosed: metrics.rateLimitErrorsTotal.labels(l.name, 'denied'),
      lastWarn: -Infinity,
    }));
  }

  /** The limits of one rule (by name), or undefined when none applies. */
  forRule(rule: string): readonly BoundLimit[] | undefined {
    let found = this.byRule.get(rule);
    if (found === undefined) {
      const list = this.limits.filter((l) => !l.rules || l.rules.has(rule));
      found = list.length > 0 ? list : null;
      // Rule names come from the configuration: the map stays small.
      this.byRule.set(rule, found);
    }
    return found ?? undefined;
  }

  /**
   * Counts one allowed request against each applicable limit: the allow with RateLimit
   * headers for the client, or a 429 when any limit is exhausted. `expressions` is the
   * request's expression input (or makes it on first use): keys and filters share the
   * check's evaluation budget, and passing it denies the request.
   */
  apply(
    allow: Allow,
    limits: readonly BoundLimit[],
    principal: Principal,
    expressions: ExpressionInput | (() => ExpressionInput),
  ): Decision | Promise<Decision> {
    let input = typeof expressions === 'function' ? undefined : expressions;
    const active: BoundLimit[] = [];
    const storeKeys: string[] = [];
    // Every filter and key first, then the store: a budget denial half-way must neither
    // count the request against the limits before it nor leave their hits unawaited.
    for (const l of limits) {
      if (l.when) {
        input ??= (expressions as () => ExpressionInput)();
        let applies = true;
        try {
          applies = l.when.evaluate(input) === true;
        } catch (err) {
          if (err instanceof ExpressionBudgetError)
            return overBudget(allow, `rate_limits "${l.name}".when`, err);
          // Fail closed: a filter that cannot be evaluated does not exempt the request.
          this.warn(
            l,
            { error: (err as Error).message },
            'rate limit "when" could not be evaluated; the limit applies',
          );
        }
        if (!applies) continue;
      }
      let key: string | undefined;
      if (l.key) {
        input ??= (expressions as () => ExpressionInput)();
        try {
          const v = l.key.evaluate(input);
          if (typeof v === 'string' && v !== '') key = v;
          else
            this.warn(
              l,
              { got: typeof v },
              'rate limit key is not a non-empty string; counting by issuer and sub',
            );
        } catch (err) {
          if (err instanceof ExpressionBudgetError)
            return overBudget(allow, `rate_limits "${l.name}".key`, err);
          this.warn(
            l,
            { error: (err as Error).message },
            'rate limit key could not be evaluated; counting by issuer and sub',
          );
        }
      }
      key ??= defaultKey(principal);
      active.push(l);
      storeKeys.push(storeKey(l, key));
    }
    if (active.length === 0) return allow;
    // One limit (the common case): no Promise.all.
    const all =
      active.length === 1
        ? this.store.hit(storeKeys[0]!, active[0]!.limit, active[0]!.windowSeconds).then((r) => [r])
        : Promise.all(active.map((l, i) => this.store.hit(storeKeys[i]!, l.limit, l.windowSeconds)));
    return all.then(
      (results) => this.outcome(allow, active, results),
      (err: unknown) => this.storeFailed(allow, active, err),
    );
  }

  /**
   * Each limit's state for one request, as `apply` would count it, counting nothing
   * (explanations): whether it applies (the rule filter chose `limits`; `when` decides
   * here), the key, the requests in the window, what remains, and whether this request
   * would be refused. A store that cannot answer is said for that limit, not thrown.
   */
  async peek(
    limits: readonly BoundLimit[],
    principal: Principal,
    input: ExpressionInput,
  ): Promise<Record<string, unknown>[]> {
    return Promise.all(
      limits.map(async (l): Promise<Record<string, unknown>> => {
        const base = { name: l.name, limit: l.limit, window_seconds: l.windowSeconds };
        const notes: string[] = [];
        if (l.when) {
          let applies = true;
          try {
            applies = l.when.evaluate(input) === true;
          } catch (err) {
            if (err instanceof ExpressionBudgetError)
              return {
                ...base,
                error: `"when" is over the evaluation budget: a Check would deny the request`,
              };
            notes.push('"when" could not be evaluated: the limit applies');
          }
          if (!applies) return { ...base, applies: false, why: '"when" is false' };
        }
        let key: string | undefined;
        if (l.key) {
          try {
            const v = l.key.evaluate(input);
            if (typeof v === 'string' && v !== '') key = v;
            else notes.push('the key is not a non-empty string: counting by issuer and sub');
          } catch (err) {
            if (err instanceof ExpressionBudgetError)
              return {
                ...base,
                error: `"key" is over the evaluation budget: a Check would deny the request`,
              };
            notes.push('the key could not be evaluated: counting by issuer and sub');
          }
        }
        // The default key without a sub is a hash of the token: not shown.
        const shown =
          key ?? (principal.sub !== undefined ? defaultKey(principal) : `${principal.issuer} #(token hash)`);
        key ??= defaultKey(principal);
        const head = { ...base, applies: true, key: shown, ...(notes.length > 0 ? { notes } : {}) };
        let p: RateLimitPeek;
        try {
          p = await this.store.peek(storeKey(l, key), l.limit, l.windowSeconds);
        } catch (err) {
          return {
            ...head,
            store: 'unavailable',
            error: (err as Error).message,
            if_unavailable: this.failOpen ? 'allowed (rate_limits_fail: open)' : 'denied (503)',
          };
        }
        return {
          ...head,
          counted: p.count,
          remaining: p.remaining,
          would_refuse: p.wouldRefuse,
          reset_seconds: p.resetSeconds,
          ...(p.retryAfterSeconds !== undefined ? { retry_after_seconds: p.retryAfterSeconds } : {}),
        };
      }),
    );
  }

  private storeFailed(allow: Allow, active: readonly BoundLimit[], err: unknown): Decision {
    if (this.failOpen) {
      for (const l of active) l.failedOpen.inc();
      this.logger.warn(
        { error: (err as Error).message },
        'rate limit store unavailable; request allowed (rate_limits_fail: open)',
      );
      return allow;
    }
    for (const l of active) l.failedClosed.inc();
    return deny('store_unavailable', 'the rate limit store is unavailable', {
      issuer: allow.issuer,
      rule: allow.rule,
      logDetail: `rate limits: ${(err as Error).message}`,
    });
  }

  private outcome(
    allow: Allow,
    active: readonly BoundLimit[],
    results: readonly RateLimitResult[],
  ): Decision {
    let retryAfter = 0;
    let rateLimit = '';
    let policy = '';
    for (let i = 0; i < active.length; i++) {
      const l = active[i]!;
      const r = results[i]!;
      if (!r.allowed) {
        l.limited.inc();
        retryAfter = Math.max(retryAfter, r.retryAfterSeconds ?? 1);
      }
      const t = r.allowed ? r.resetSeconds : (r.retryAfterSeconds ?? 1);
      const sep = i === 0 ? '' : ', ';
      rateLimit += `${sep}"${l.name}";r=${r.remaining};t=${t}`;
      policy += sep + l.policy;
    }
    if (retryAfter > 0) {
      return deny('rate_limited', 'too many requests', {
        issuer: allow.issuer,
        rule: allow.rule,
        headers: [
          { key: 'retry-after', value: String(retryAfter) },
          { key: 'ratelimit-policy', value: policy },
          { key: 'ratelimit', value: rateLimit },
        ],
      });
    }
    const responseHeaders: HeaderToSet[] = [
      { key: 'ratelimit-policy', value: policy },
      { key: 'ratelimit', value: rateLimit },
    ];
    // The memoised allow stays as it is; this request's copy adds its own headers and
    // names the allow whose serialized bytes can be reused.
    return { ...allow, reusable: false, responseHeaders, ...(allow.reusable ? { base: allow } : {}) };
  }

  private warn(l: BoundLimit, fields: Record<string, unknown>, message: string): void {
    const now = this.clock.nowMs();
    if (now - l.lastWarn < WARN_INTERVAL_MS) return;
    l.lastWarn = now;
    this.logger.warn({ rate_limit: l.name, ...fields }, message);
  }
}

/** The limit's store key: its namespace and the key, hashed when long. */
function storeKey(l: CompiledLimit, key: string): string {
  return l.prefix + (key.length > MAX_RAW_KEY ? `#${sha256(key)}` : key);
}

/** issuer + sub; without a sub, a hash of the token (never the token itself). */
function defaultKey(p: Principal): string {
  return p.sub !== undefined ? `${p.issuer} ${p.sub}` : `${p.issuer} #${sha256(p.cacheKey ?? '')}`;
}
