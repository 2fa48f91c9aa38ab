import { isLoopbackHost } from '../../net/safe-fetch.js';
import { isPlainObject } from '../../core/objects.js';
import {
  ASYMMETRIC_DEFAULT_ALGORITHMS,
  HMAC_ALGORITHMS,
  JWS_ALGORITHMS,
  SENDER_CONSTRAINT_MODES,
} from './constants.js';
import { anyValue, bool, commaList, int, oneOf, section, strings, text, Type, type Static } from './kit.js';

// issuers: the identity providers whose tokens are trusted, each with exactly one key source.

export const JwksCacheSchema = section(
  {
    max_age_seconds: int({
      description: 'background refresh period; never on the request path',
      default: 600,
      minimum: 1,
    }),
    cooldown_seconds: int({
      description: 'at most one refetch per cooldown when a token names an unknown kid',
      default: 30,
      minimum: 0,
    }),
    timeout_ms: int({
      description: 'per fetch; no redirects, body at most 1 MiB',
      default: 2000,
      minimum: 1,
      maximum: 60000,
    }),
    max_stale_seconds: int({
      description: 'keep serving the last good keys this long while the endpoint fails',
      default: 86400,
      minimum: 0,
    }),
  },
  { description: 'Fetching and caching of remote keys (jwks_uri, discovery_uri).', default: {} },
);

export const IntrospectionSchema = section(
  {
    endpoint: text({ description: 'RFC 7662 introspection URL (same URL rules as jwks_uri)' }),
    client_id: text({ description: 'client id for HTTP Basic client authentication' }),
    client_secret_file: text({ description: 'file holding the client secret' }),
    cache_seconds: int({
      description: 'reuse an answer this long, never beyond the token exp (inactive answers: at most 10 s)',
      default: 60,
      minimum: 0,
      maximum: 86400,
    }),
    timeout_ms: int({
      description: 'whole exchange; an unusable endpoint answers 503',
      default: 2000,
      minimum: 1,
      maximum: 60000,
    }),
  },
  { description: "Opaque access tokens checked at the issuer's introspection endpoint (a key source)." },
);

const senderMode = (what: string) =>
  oneOf(SENDER_CONSTRAINT_MODES, { description: `${what}: off, optional or required`, default: 'off' });

export const IssuerSchema = section(
  {
    name: text({ description: 'label in logs, metrics, rules (require.issuers) and context_extensions' }),
    issuer: text({ description: "exact, case-sensitive match with the token's iss" }),
    audiences: commaList({
      description: 'the token aud must contain one; ["*"] = any aud. A string "a, b" is split on commas',
    }),
    algorithms: Type.Optional(
      strings({
        description: 'accepted JWS algorithms ("none" is never accepted)',
        'x-default-text': 'HS256-512 with secret_file, else RS256-512, PS256-512, ES256-512, EdDSA',
      }),
    ),
    jwks_uri: Type.Optional(
      text({
        description: 'key source: remote JWKS; https only (http:// for loopback hosts unless insecure_http)',
      }),
    ),
    discovery_uri: Type.Optional(
      text({
        description: "key source: OIDC discovery; jwks_uri is read from the provider's openid-configuration",
      }),
    ),
    jwks: Type.Optional(
      anyValue({ description: 'key source: an inline JWKS object with a "keys" list (public keys)' }),
    ),
    jwks_file: Type.Optional(
      text({ description: 'key source: a local JWKS file, reloaded when it changes' }),
    ),
    truststore: Type.Optional(
      section(
        {
          path: text({ description: 'folder of PEM certificates (.pem .crt .cer); alias = file name' }),
          default_alias: Type.Optional(
            text({ description: 'certificate used when a token names neither kid nor thumbprint' }),
          ),
          gateway_certificate_alias: Type.Optional(
            text({ description: "default_alias under WSO2's name for it (give one or the other)" }),
          ),
        },
        { description: 'key source: a folder of certificates picked by kid or x5t#S256/x5t thumbprint' },
      ),
    ),
    secret_file: Type.Optional(
      text({
        description:
          "key source: shared secret for HS256/384/512 (the file's bytes, one trailing newline removed)",
      }),
    ),
    introspection: Type.Optional(IntrospectionSchema),
    insecure_http: bool({
      description: 'allow http:// key URLs for non-loopback hosts (test setups only)',
      default: false,
    }),
    jwks_cache: JwksCacheSchema,
    clock_skew_seconds: int({
      description: 'tolerance for exp, nbf and iat',
      default: 60,
      minimum: 0,
      maximum: 3600,
    }),
    required_claims: Type.Array(Type.String(), {
      description: 'claims that must be present (never empty: that would accept tokens without exp)',
      minItems: 1,
      'x-default-text': 'iss, sub, iat, exp (none with introspection)',
    }),
    max_lifetime_seconds: int({
      description: 'exp - iat (or exp - now) above this is rejected',
      default: 86400,
      minimum: 1,
    }),
    claim_mappings: Type.Array(
      section(
        {
          from: text({ description: 'remote claim name; dotted paths reach nested claims' }),
          to: text({ description: 'local claim name (owned by the mapping)' }),
        },
        { description: 'one mapping' },
      ),
      {
        description: 'remote claim → local claim; rules, claim headers and copy_claims use local names',
        default: [],
      },
    ),
    sender_constraint: section(
      {
        mtls: senderMode('cnf["x5t#S256"] must match the client certificate Envoy saw'),
        dpop: senderMode('cnf.jkt must match the key of a fresh DPoP proof'),
      },
      { description: 'proof-of-possession checks for this issuer’s tokens', default: {} },
    ),
  },
  { description: 'one trusted issuer' },
);

export type IssuerConfig = Static<typeof IssuerSchema>;

/**
 * Issuer fields that name the keys; an issuer sets exactly one. `introspection` names
 * none: the issuer's tokens are opaque and its introspection endpoint vouches for them.
 */
export const ISSUER_KEY_SOURCES = [
  'jwks_uri',
  'discovery_uri',
  'jwks',
  'jwks_file',
  'truststore',
  'secret_file',
  'introspection',
] as const;

export type IssuerKeySourceKind = (typeof ISSUER_KEY_SOURCES)[number];

/** Every key-source field an issuer entry sets, in list order. */
export function issuerKeySources(iss: IssuerConfig): IssuerKeySourceKind[] {
  return ISSUER_KEY_SOURCES.filter((k) => iss[k] !== undefined);
}

/** Required claims when an issuer entry lists none (an introspection answer need carry only `active`). */
export function defaultRequiredClaims(iss: Pick<IssuerConfig, 'introspection'>): string[] {
  return iss.introspection !== undefined ? [] : ['iss', 'sub', 'iat', 'exp'];
}

/**
 * Rules within and between issuer entries; fills the defaults that depend on other fields
 * (algorithms, required_claims). `selfIssuer` is the token endpoint's own issuer, if enabled.
 */
export function checkIssuers(
  issuers: IssuerConfig[],
  selfIssuer: string | undefined,
  problems: string[],
): void {
  const names = new Set<string>();
  const issuerUrls = new Set<string>();
  issuers.forEach((iss, i) => {
    const p = `issuers[${i}]`;
    if (iss.name === 'self')
      problems.push(`${p}.name: "self" is reserved for this service's own token endpoint`);
    if (names.has(iss.name)) problems.push(`${p}.name: duplicate issuer name "${iss.name}"`);
    names.add(iss.name);
    if (issuerUrls.has(iss.issuer)) problems.push(`${p}.issuer: another issuer already uses "${iss.issuer}"`);
    issuerUrls.add(iss.issuer);
    if (selfIssuer !== undefined && iss.issuer === selfIssuer) {
      problems.push(
        `${p}.issuer: "${iss.issuer}" is this service's own token endpoint issuer (token_endpoint.issuer)`,
      );
    }
    const sources = issuerKeySources(iss);
    if (sources.length !== 1) {
      problems.push(
        `${p}: exactly one key source is required (${ISSUER_KEY_SOURCES.join(', ')}), got ${sources.length === 0 ? 'none' : sources.join(', ')}`,
      );
    }
    iss.required_claims ??= defaultRequiredClaims(iss);
    const algs =
      iss.algorithms ?? (iss.secret_file ? [...HMAC_ALGORITHMS] : [...ASYMMETRIC_DEFAULT_ALGORITHMS]);
    iss.algorithms = algs;
    algs.forEach((alg, j) => {
      if (!(JWS_ALGORITHMS as readonly string[]).includes(alg)) {
        problems.push(
          `${p}.algorithms[${j}]: unsupported algorithm "${alg}" (allowed: ${JWS_ALGORITHMS.join(', ')}; "none" is never accepted)`,
        );
      } else if (alg.startsWith('HS') && !iss.secret_file) {
        problems.push(
          `${p}.algorithms[${j}]: ${alg} needs secret_file (HMAC is never used with public keys)`,
        );
      } else if (!alg.startsWith('HS') && iss.secret_file) {
        problems.push(`${p}.algorithms[${j}]: ${alg} cannot be used with secret_file (only HS256/384/512)`);
      }
    });
    const ts = iss.truststore;
    if (ts?.gateway_certificate_alias !== undefined) {
      if (ts.default_alias !== undefined)
        problems.push(
          `${p}.truststore.gateway_certificate_alias: is default_alias under WSO2's name; give one or the other`,
        );
      else ts.default_alias = ts.gateway_certificate_alias;
    }
    checkUrls(iss, p, problems);
    if (iss.jwks !== undefined && !(isPlainObject(iss.jwks) && Array.isArray(iss.jwks.keys))) {
      problems.push(`${p}.jwks: must be a JWKS object with a "keys" list`);
    }
  });
}

function checkUrls(iss: IssuerConfig, p: string, problems: string[]): void {
  const uris = [
    ['jwks_uri', iss.jwks_uri],
    ['discovery_uri', iss.discovery_uri],
    ['introspection.endpoint', iss.introspection?.endpoint],
  ] as const;
  for (const [uriKey, uri] of uris) {
    if (uri === undefined) continue;
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      problems.push(`${p}.${uriKey}: not a valid URL`);
      continue;
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      problems.push(`${p}.${uriKey}: must be https://`);
    if (url.protocol === 'http:' && !iss.insecure_http && !isLoopbackHost(url.hostname)) {
      problems.push(
        `${p}.${uriKey}: http:// is only allowed for loopback hosts; use https:// or set insecure_http: true`,
      );
    }
  }
}
