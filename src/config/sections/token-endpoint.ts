import { TOKEN_ENDPOINT_RESERVED_CLAIMS } from './constants.js';
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

// token_endpoint: the OAuth 2.0 token endpoint (JWT bearer grant, refresh, revoke, introspect).

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
  },
  { description: 'OAuth 2.0 token endpoint (RFC 7523 JWT bearer grant) at POST /oauth2/token.', default: {} },
);

export type TokenEndpointConfig = Static<typeof TokenEndpointSchema>;
export type ClientConfig = Static<typeof ClientSchema>;
export type GrantIssuerConfig = Static<typeof GrantIssuerSchema>;

/**
 * An enabled endpoint has an issuer and an audience; grant_issuers name configured issuers,
 * once each, and copy no claim the service sets itself.
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
}
