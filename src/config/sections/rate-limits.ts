import { bool, int, oneOf, section, strings, text, Type, type Static } from './kit.js';

// rate_limits: quotas on allowed, authenticated requests (counters live in the store).

export const RateLimitSchema = section(
  {
    name: text({ description: 'unique name (metrics, logs)' }),
    key: Type.Optional(text({ description: 'CEL giving the counter key', 'x-default-text': 'issuer + sub' })),
    limit: int({ description: 'requests per window', minimum: 1 }),
    window_seconds: int({ description: 'sliding window length', minimum: 1 }),
    rules: Type.Optional(
      strings({ description: 'only these rule names', 'x-default-text': 'every rule that authenticates' }),
    ),
    when: Type.Optional(text({ description: 'CEL filter: the limit applies when it is true' })),
  },
  { description: 'one quota' },
);

export const RateLimitsSchema = Type.Array(RateLimitSchema, {
  description: 'quotas on allowed, authenticated requests; over one: 429 with Retry-After',
  default: [],
});

export const RateLimitsFailSchema = oneOf(['closed', 'open'] as const, {
  description: 'store unreachable while counting: closed answers 503 store_unavailable, open allows',
  default: 'closed',
});

export const VerifiedTokenCacheSchema = section(
  {
    enabled: bool({ description: 'cache verified tokens by exact token string', default: true }),
    max_entries: int({
      description: 'bound (LRU); an entry lives until the token exp + skew',
      default: 10000,
      minimum: 1,
    }),
    admission: oneOf(['second_use', 'first_use'] as const, {
      description:
        'when a token enters this cache and the minted-token cache: at its second use within about max_entries other tokens (one-off tokens are never cached), or at its first',
      default: 'second_use',
    }),
  },
  { description: "Verified tokens, dropped when the issuer's keys change.", default: {} },
);

export type RateLimitConfig = Static<typeof RateLimitSchema>;

/** Rate limit names are unique. */
export function checkRateLimits(limits: RateLimitConfig[], problems: string[]): void {
  const seen = new Map<string, number>();
  limits.forEach((l, i) => {
    const first = seen.get(l.name);
    if (first !== undefined)
      problems.push(
        `rate_limits[${i}].name: duplicate rate limit name "${l.name}" (also rate_limits[${first}])`,
      );
    else seen.set(l.name, i);
  });
}
