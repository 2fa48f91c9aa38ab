import { ACTIONS } from './constants.js';
import { bool, int, mapOf, oneOf, section, str, strings, text, Type, type Static } from './kit.js';

// rules and token_sources: which requests need which token, and where the token is found.

export const TokenSourceSchema = section(
  {
    header: Type.Optional(text({ description: 'request header holding the token' })),
    prefix: Type.Optional(
      str({ description: 'scheme before the token (with header only), matched case-insensitively' }),
    ),
    query: Type.Optional(
      text({
        description: 'query parameter holding the token: a plain name, matched as sent (no percent-encoding)',
      }),
    ),
    cookie: Type.Optional(text({ description: 'cookie holding the token' })),
  },
  { description: 'one place to look: exactly one of header, query, cookie' },
);

export const TokenSourcesSchema = Type.Array(TokenSourceSchema, {
  description: 'where to look for the token, first match wins; the token is removed from where it was found',
  minItems: 1,
  default: [{ header: 'authorization', prefix: 'Bearer ' }],
});

/** What rules[].token may override of upstream.token. */
export const TokenProfileSchema = section(
  {
    audiences: Type.Optional(
      strings({ description: 'aud of this route’s downstream token (never empty: a token needs an aud)' }),
    ),
    ttl_seconds: Type.Optional(
      int({ description: 'lifetime of this route’s downstream token', minimum: 1, maximum: 86400 }),
    ),
    copy_claims: Type.Optional(
      strings({ description: 'local claims copied into the token', allowEmpty: true }),
    ),
    claims: Type.Optional(mapOf(Type.Unknown(), { description: 'static claims' })),
    claims_expr: Type.Optional(mapOf(Type.String(), { description: 'claim name → CEL expression' })),
  },
  { description: 'downstream-token profile of this route over upstream.token (unset fields inherit)' },
);

const scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()], {
  'x-expected': 'a string, number or boolean',
});

export const DenyResponseSchema = section(
  {
    status: Type.Optional(int({ description: 'HTTP status of the answer', minimum: 300, maximum: 599 })),
    headers: Type.Optional(mapOf(Type.String(), { description: 'headers added to the answer' })),
    body: Type.Optional(str({ description: 'body of the answer' })),
  },
  { description: "replaces this rule's default 401/403 answers" },
);

export const RuleSchema = section(
  {
    name: Type.Optional(
      text({ description: 'rule name (logs, metrics, context_extensions rule, rate_limits[].rules)' }),
    ),
    match: section(
      {
        path: Type.Optional(str({ description: 'exact normalised path' })),
        path_prefix: Type.Optional(
          str({ description: "plain string prefix, like Envoy's prefix (/public also matches /publicity)" }),
        ),
        path_separated_prefix: Type.Optional(
          str({ description: 'the path itself and everything below it (/docs and /docs/…)' }),
        ),
        path_regex: Type.Optional(
          str({ description: 'regular expression (RE2 syntax) the whole path must match' }),
        ),
        case_sensitive: Type.Optional(
          bool({
            description: 'false compares the path matchers ignoring ASCII case',
            'x-default-text': 'true',
          }),
        ),
        methods: Type.Optional(strings({ description: 'upper-case HTTP methods; default any' })),
        hosts: Type.Optional(strings({ description: 'Host header values; default any' })),
      },
      {
        description: 'what the rule applies to; every given matcher must match (none = every request)',
        default: {},
      },
    ),
    action: oneOf(ACTIONS, {
      description:
        'allow: no token read; deny: 403; authenticate: a valid token is required; optional: no token = anonymous, a present token must verify',
      default: 'authenticate',
    }),
    mode: Type.Optional(
      oneOf(['enforce', 'audit'] as const, {
        description:
          'enforce (default): the decision is the answer; audit: a dry run, the decision is logged and counted and the request answered as audit_action says',
      }),
    ),
    audit_action: Type.Optional(
      oneOf(['allow', 'deny'] as const, {
        description: 'mode audit: how every request the rule decides is answered (default allow)',
      }),
    ),
    require: Type.Optional(
      section(
        {
          scopes_all: Type.Optional(
            strings({ description: 'the token must have every one of these scopes' }),
          ),
          scopes_any: Type.Optional(
            strings({ description: 'the token must have at least one of these scopes' }),
          ),
          issuers: Type.Optional(
            strings({ description: 'issuer names the token may come from ("self" = our token endpoint)' }),
          ),
          claims: Type.Optional(
            mapOf(Type.Array(scalar, { minItems: 1 }), {
              description:
                'local claim → accepted values; the claim equals one (or, for arrays, contains one)',
              minProperties: 1,
            }),
          ),
          expression: Type.Optional(
            text({ description: 'CEL; must return a boolean; runs after scopes and claims' }),
          ),
          source_principals: Type.Optional(
            strings({
              description:
                "the peer's certificate principal (SPIFFE ID) must be one of these; exact, or a trailing * for a prefix",
            }),
          ),
        },
        {
          description: 'what an authenticated token must satisfy (authenticate and optional rules)',
          minProperties: 1,
        },
      ),
    ),
    deny_response: Type.Optional(DenyResponseSchema),
    token: Type.Optional(
      Type.Union([Type.Literal(false), TokenProfileSchema], {
        description:
          'downstream-token profile over upstream.token, or false: no downstream token on this route',
        'x-expected': 'false or an object',
      }),
    ),
  },
  { description: 'one route rule' },
);

export const RulesSchema = Type.Array(RuleSchema, {
  description: 'route rules, first match wins; the path is matched after normalisation',
  default: [],
});

export type RuleConfig = Static<typeof RuleSchema>;
export type TokenSourceConfig = Static<typeof TokenSourceSchema>;
export type TokenProfileConfig = Static<typeof TokenProfileSchema>;
export type DenyResponseConfig = Static<typeof DenyResponseSchema>;

/** Rules between a rule's fields; `hasUpstreamToken`: upstream.token is configured. */
export function checkRules(rules: RuleConfig[], hasUpstreamToken: boolean, problems: string[]): void {
  rules.forEach((rule, i) => {
    const authenticates = rule.action === 'authenticate' || rule.action === 'optional';
    if (rule.require !== undefined && !authenticates) {
      problems.push(
        `rules[${i}].require: only applies to action "authenticate" or "optional" (this rule's action "${rule.action}" ignores it)`,
      );
    }
    if (rule.token !== undefined && !authenticates) {
      problems.push(
        `rules[${i}].token: only applies to action "authenticate" or "optional" (this rule's action "${rule.action}" mints no token)`,
      );
    }
    const auditDenies = rule.mode === 'audit' && rule.audit_action === 'deny';
    if (rule.deny_response !== undefined && rule.action === 'allow' && !auditDenies) {
      problems.push(`rules[${i}].deny_response: an "allow" rule never denies`);
    }
    if (rule.audit_action !== undefined && rule.mode !== 'audit')
      problems.push(`rules[${i}].audit_action: only applies with mode "audit"`);
    if (rule.token !== undefined && rule.token !== false && !hasUpstreamToken)
      problems.push(`rules[${i}].token: needs upstream.token (the profile overrides its fields)`);
  });
}

/** Each token source names exactly one place, by a name a client sends unencoded. */
export function checkTokenSources(sources: TokenSourceConfig[], problems: string[]): void {
  sources.forEach((src, i) => {
    const kinds = (['header', 'query', 'cookie'] as const).filter((k) => src[k] !== undefined);
    if (kinds.length !== 1)
      problems.push(`token_sources[${i}]: exactly one of header, query, cookie is required`);
    if (src.prefix !== undefined && src.header === undefined)
      problems.push(`token_sources[${i}].prefix: only valid with header`);
    // The name is matched as it appears in the raw query (that is what Envoy strips),
    // so it must be a name a client sends unencoded.
    if (src.query !== undefined && !/^[A-Za-z0-9\-._~!$'()*,:@/]+$/.test(src.query))
      problems.push(
        `token_sources[${i}].query: "${src.query}" must be a plain parameter name ` +
          `(letters, digits and - . _ ~ ! $ ' ( ) * , : @ /; no percent-encoding)`,
      );
  });
}
