import {
  DEFAULT_CLIENT_GRANT_TYPES,
  DEFAULT_TOKEN_PATH,
  GRANT_TYPE_TOKEN_EXCHANGE,
  TOKEN_ENDPOINT_AUTH_METHODS,
  TOKEN_ENDPOINT_GRANT_TYPES,
  TOKEN_ENDPOINT_RESERVED_CLAIMS,
} from './constants.js';
import { signingSchema } from './upstream.js';
import {
  bool,
  commaList,
  int,
  mapOf,
  oneOf,
  section,
  strings,
  text,
  Type,
  withShorthand,
  type Static,
} from './kit.js';

// token_endpoint: the OAuth 2.0 token endpoint (JWT bearer, refresh, client credentials and
// token exchange grants; revoke, introspect).

export const ClientSchema = section(
  {
    client_id: text({ description: 'the client; a JWT assertion has iss = client_id' }),
    certificate_file: Type.Optional(text({ description: 'the certificate that signs its assertions' })),
    jwks_file: Type.Optional(text({ description: 'the public keys that sign its assertions' })),
    client_secret_file: Type.Optional(
      text({ description: 'its secret for HTTP Basic client authentication' }),
    ),
    scopes: strings({ description: 'scopes it may be granted', default: [], allowEmpty: true }),
    token_claims: mapOf(Type.Unknown(), { description: 'claims added to its access tokens', default: {} }),
    require_jti: bool({ description: 'its assertions must carry a jti (used once)', default: true }),
    token_endpoint_auth_method: Type.Optional(
      oneOf(TOKEN_ENDPOINT_AUTH_METHODS, {
        description:
          'the only client authentication method it may use (must fit its credentials); client_secret_post sends the secret in the form body',
        'x-default-text':
          'what its credentials allow: client_secret_basic with a client_secret_file, private_key_jwt with a certificate_file or jwks_file',
      }),
    ),
    grant_types: Type.Array(
      oneOf(TOKEN_ENDPOINT_GRANT_TYPES, { description: 'a grant type (grant_type form value)' }),
      {
        description:
          'grant types it may use; any other is unauthorized_client (token exchange needs token_endpoint.exchange)',
        default: [...DEFAULT_CLIENT_GRANT_TYPES],
        minItems: 1,
      },
    ),
    exchange_audiences: strings({
      description:
        'token exchange: audience / resource values it may ask for (each one an aud of our access tokens)',
      default: [],
      allowEmpty: true,
    }),
  },
  { description: 'one registered client' },
);

export const GrantIssuerSchema = section(
  {
    issuer: text({ description: 'name of an issuers[] entry whose JWTs may be exchanged for our tokens' }),
    audience: Type.Optional(
      commaList({ description: 'accepted aud of its JWTs', 'x-default-text': 'token_endpoint.audience' }),
    ),
    max_assertion_lifetime_seconds: Type.Optional(
      int({
        description: 'exp - now of its JWTs must be within this',
        minimum: 1,
        'x-default-text': 'token_endpoint.max_assertion_lifetime_seconds',
      }),
    ),
    require_jti: bool({ description: 'its JWTs must carry a jti (used once)', default: true }),
    require_iat: bool({ description: 'its JWTs must carry iat', default: false }),
    copy_claims: strings({
      description: 'claims of its JWT carried into issued access tokens',
      default: [],
      allowEmpty: true,
    }),
  },
  { description: 'an identity provider whose JWTs may be exchanged (a plain name means { issuer: name })' },
);

export const TokenEndpointSchema = section(
  {
    enabled: bool({
      description: 'serve /oauth2/token, /oauth2/revoke and /oauth2/introspect',
      default: false,
    }),
    path: text({
      description:
        'where the token endpoint is served (Axway: /api/oauth/token); the default path answers 404 when another is set',
      default: DEFAULT_TOKEN_PATH,
    }),
    issuer: Type.Optional(
      text({ description: 'iss of issued tokens; shown as issuer "self" (required when enabled)' }),
    ),
    audience: Type.Optional(
      commaList({ description: 'required aud of incoming assertions (required when enabled)' }),
    ),
    max_assertion_lifetime_seconds: int({
      description: 'assertion exp - now must be within this',
      default: 300,
      minimum: 1,
    }),
    max_body_bytes: int({
      description: 'request body cap of /oauth2/* (form-encoded only)',
      default: 65536,
      minimum: 1024,
      maximum: 1048576,
    }),
    access_token: section(
      {
        format: oneOf(['jwt', 'opaque'] as const, {
          description: 'jwt (RFC 9068, typ at+jwt) or opaque (stored as a SHA-256 hash)',
          default: 'jwt',
        }),
        ttl_seconds: int({ description: 'lifetime', default: 3600, minimum: 1 }),
        opaque_length: int({
          description: 'characters of an opaque token (base64url alphabet)',
          default: 54,
          minimum: 32,
          maximum: 512,
        }),
        audiences: commaList({
          description: 'aud of issued tokens; empty = [issuer]',
          default: [],
          allowEmpty: true,
        }),
        signing: signingSchema('access tokens'),
      },
      { description: 'issued access tokens', default: {} },
    ),
    refresh_token: section(
      {
        enabled: bool({ description: 'issue refresh tokens', default: false }),
        ttl_seconds: int({
          description: 'absolute from the first grant; reuse revokes the whole family',
          default: 43200,
          minimum: 1,
        }),
        length: int({ description: 'characters', default: 46, minimum: 32, maximum: 512 }),
      },
      { description: 'refresh tokens', default: {} },
    ),
    dpop: section(
      { required: bool({ description: 'refuse token requests without a DPoP proof', default: false }) },
      { description: 'DPoP-bound tokens (RFC 9449)', default: {} },
    ),
    clients: Type.Array(ClientSchema, { description: 'registered clients', default: [] }),
    rate_limit: Type.Optional(
      section(
        {
          limit: int({ description: 'token requests per window', minimum: 1 }),
          window_seconds: int({ description: 'window length', minimum: 1 }),
        },
        {
          description:
            'token requests per authenticated client; over it 429 rate_limited (unset = unlimited)',
        },
      ),
    ),
    grant_issuers: Type.Array(withShorthand('issuer', GrantIssuerSchema), {
      description: 'identity providers (issuers[] names) whose JWTs may be exchanged for our tokens',
      default: [],
    }),
    exchange: Type.Optional(
      section(
        {
          subject_issuers: strings({
            description: 'names of issuers[] whose JWTs may be exchanged (our own tokens always may)',
          }),
          actor_issuers: Type.Optional(
            strings({
              description: 'names of issuers[] whose JWTs may be actor tokens (our own tokens always may)',
              'x-default-text': 'subject_issuers',
            }),
          ),
        },
        {
          description:
            'token exchange (RFC 8693); off unless set. Clients need it in grant_types and exchange_audiences',
        },
      ),
    ),
  },
  {
    description:
      'OAuth 2.0 token endpoint (RFC 7523 JWT bearer grant, RFC 8693 token exchange, client credentials) at POST /oauth2/token.',
    default: {},
  },
);

export type TokenEndpointConfig = Static<typeof TokenEndpointSchema>;
export type ClientConfig = Static<typeof ClientSchema>;
export type GrantIssuerConfig = Static<typeof GrantIssuerSchema>;
export type TokenExchangeConfig = NonNullable<TokenEndpointConfig['exchange']>;

/**
 * An enabled endpoint has an issuer and an audience; grant_issuers name configured issuers,
 * once each, and copy no claim the service sets itself; then the path, token exchange and
 * the clients' methods and grants (checkTokenEndpointGrants).
 */
export function checkTokenEndpoint(
  te: TokenEndpointConfig,
  issuerNames: ReadonlySet<string>,
  problems: string[],
): void {
  if (te.enabled && te.issuer === undefined)
    problems.push('token_endpoint.issuer: required when the token endpoint is enabled');
  if (te.enabled && te.audience === undefined)
    problems.push('token_endpoint.audience: required when the token endpoint is enabled');
  const granted = new Set<string>();
  for (const [j, g] of te.grant_issuers.entries()) {
    const p = `token_endpoint.grant_issuers[${j}]`;
    if (!issuerNames.has(g.issuer)) problems.push(`${p}.issuer: no issuer named "${g.issuer}"`);
    else if (granted.has(g.issuer)) problems.push(`${p}.issuer: "${g.issuer}" is listed twice`);
    granted.add(g.issuer);
    g.copy_claims.forEach((claim, k) => {
      if (TOKEN_ENDPOINT_RESERVED_CLAIMS.includes(claim))
        problems.push(`${p}.copy_claims[${k}]: "${claim}" is set by the service itself and cannot be copied`);
    });
  }
  checkTokenEndpointGrants(te, issuerNames, problems);
}

/** A path of the token endpoint: absolute, plain segments, no query, fragment or percent-encoding. */
const TOKEN_PATH_SHAPE = /^(?:\/[A-Za-z0-9\-._~!$&'()*+,;=:@]+)+$/;
/** The other token endpoint routes, whose paths token_endpoint.path may not take. */
const OTHER_OAUTH_PATHS: readonly string[] = ['/oauth2/revoke', '/oauth2/introspect'];

/**
 * The token path has a plain shape; token exchange names configured issuers; a client's
 * exchange audiences are ones our tokens carry, token exchange is allowed only when it is
 * configured, and its authentication method fits its credentials.
 */
function checkTokenEndpointGrants(
  te: TokenEndpointConfig,
  issuerNames: ReadonlySet<string>,
  problems: string[],
): void {
  if (
    !TOKEN_PATH_SHAPE.test(te.path) ||
    te.path.split('/').some((seg) => seg === '.' || seg === '..') ||
    OTHER_OAUTH_PATHS.includes(te.path)
  ) {
    problems.push(
      `token_endpoint.path: "${te.path}" must be an absolute path such as /oauth2/token (plain segments, ` +
        `no query, fragment, percent-encoding or trailing slash, not /oauth2/revoke or /oauth2/introspect)`,
    );
  }
  const ex = te.exchange;
  if (ex) {
    for (const key of ['subject_issuers', 'actor_issuers'] as const) {
      (ex[key] ?? []).forEach((name, k) => {
        if (!issuerNames.has(name))
          problems.push(`token_endpoint.exchange.${key}[${k}]: no issuer named "${name}"`);
      });
    }
  }
  // Exchanged tokens must pass our own Check: their audience must be one it accepts.
  const accepted = te.access_token.audiences.length > 0 ? te.access_token.audiences : [te.issuer ?? ''];
  te.clients.forEach((c, i) => {
    const p = `token_endpoint.clients[${i}]`;
    const exchanges = c.grant_types.includes(GRANT_TYPE_TOKEN_EXCHANGE);
    if (exchanges && !ex)
      problems.push(`${p}.grant_types: token exchange needs token_endpoint.exchange (subject_issuers)`);
    if (c.exchange_audiences.length > 0 && !exchanges)
      problems.push(`${p}.exchange_audiences: the client may not use token exchange (add it to grant_types)`);
    c.exchange_audiences.forEach((aud, k) => {
      if (!accepted.includes(aud))
        problems.push(
          `${p}.exchange_audiences[${k}]: "${aud}" is not an audience of this service's tokens ` +
            `(token_endpoint.access_token.audiences, default token_endpoint.issuer)`,
        );
    });
    const method = c.token_endpoint_auth_method;
    if (method === undefined) return;
    const hasKeys = c.certificate_file !== undefined || c.jwks_file !== undefined;
    if (method === 'private_key_jwt' ? !hasKeys : c.client_secret_file === undefined)
      problems.push(
        `${p}.token_endpoint_auth_method: ${method} needs ${method === 'private_key_jwt' ? 'a certificate_file or jwks_file' : 'a client_secret_file'}`,
      );
  });
}
