import { JWE_CONTENT_ENCRYPTION, JWS_ALGORITHMS } from './constants.js';
import { bool, commaList, int, mapOf, oneOf, section, strings, text, Type, type Static } from './kit.js';

// upstream: what an allowed request carries to the backend (claim headers, a minted token).

/** Signing of minted tokens (downstream tokens, token endpoint access tokens). */
export function signingSchema(what: string) {
  return section(
    {
      // Typed as a string: the key loader checks the name itself (also for `mint --alg`).
      alg: Type.Unsafe<string>(
        oneOf(JWS_ALGORITHMS, {
          description: 'HS256-512 (with secret_file), RS256-512, PS256-512, ES256-512, EdDSA',
          default: 'ES256',
        }),
      ),
      key_file: Type.Optional(
        text({
          description:
            'private JWK or PKCS#8 PEM (no kid: RFC 7638 thumbprint); no key file = an ephemeral key (warning)',
        }),
      ),
      secret_file: Type.Optional(text({ description: 'instead of key_file for HS* algorithms' })),
      previous_key_files: strings({
        description: 'keys still published in /.well-known/jwks.json during rotation',
        default: [],
        allowEmpty: true,
      }),
    },
    { description: `signing of ${what}`, default: {} },
  );
}

export const EncryptionSchema = section(
  {
    // Its list is checked where the key is built, so RSA1_5 gets its own explanation.
    alg: text({
      description:
        'RSA-OAEP, RSA-OAEP-256, ECDH-ES(+A128KW/A192KW/A256KW), A128KW/A192KW/A256KW, dir (RSA1_5 is refused)',
    }),
    // Typed as a string: the encryption module checks the name itself.
    enc: Type.Unsafe<string>(oneOf(JWE_CONTENT_ENCRYPTION, { description: 'content encryption' })),
    key_file: Type.Optional(
      text({ description: 'SPKI public key or certificate (PEM); a kty "oct" JWK for A*KW / dir' }),
    ),
    secret_file: Type.Optional(text({ description: 'raw symmetric key for A*KW / dir' })),
  },
  { description: 'nested JWT: signed, then encrypted (cty "JWT")' },
);

export const UpstreamTokenSchema = section(
  {
    header: text({
      description: 'request header of the token; "authorization" means "Authorization: Bearer <jwt>"',
      default: 'x-jwt-assertion',
    }),
    issuer: text({ description: 'iss of minted tokens' }),
    audiences: commaList({
      description: "aud of minted tokens (a route's context_extensions audience overrides)",
      default: [],
      allowEmpty: true,
    }),
    allowed_audiences: Type.Optional(
      strings({
        description: 'audiences context_extensions.audience may name',
        'x-default-text': 'the audiences of upstream.token and of every rule’s token profile',
      }),
    ),
    ttl_seconds: int({
      description: "lifetime; never beyond the incoming token's exp",
      default: 300,
      minimum: 1,
      maximum: 86400,
    }),
    jti: bool({ description: 'a UUID v4 jti per token', default: true }),
    copy_claims: strings({
      description: 'local claims copied; iss, sub, aud, iat, exp, jti are always set by the service',
      default: [],
      allowEmpty: true,
    }),
    claims: mapOf(Type.Unknown(), {
      description: 'static claims; override copied claims of the same name',
      default: {},
    }),
    claims_expr: mapOf(Type.String(), {
      description: 'claim name → CEL expression; results become private claims of every downstream token',
      default: {},
    }),
    cache: bool({
      description: 'reuse a minted token for the same incoming token and audience until 80% of its lifetime',
      default: true,
    }),
    cache_max_entries: int({ description: 'bound of that cache (LRU)', default: 10000, minimum: 1 }),
    signing: signingSchema('downstream tokens'),
    encryption: Type.Optional(EncryptionSchema),
  },
  { description: 'a JWT minted for every allowed request (omit the section to disable)' },
);

export const UpstreamSchema = section(
  {
    forward_original_token: bool({
      description:
        "false: remove the token after success (and every token source's credential on allow routes); true: forward them",
      default: false,
    }),
    allow_method_override: bool({
      description: 'keep X-HTTP-Method-Override and similar headers instead of removing them',
      default: false,
    }),
    claim_headers: mapOf(Type.String(), {
      description:
        'header → local claim; scalars as strings, arrays joined with ",", objects as JSON. Never taken from the client',
      default: {},
    }),
    token: Type.Optional(UpstreamTokenSchema),
    dynamic_metadata: mapOf(Type.String(), {
      description: 'field name → CEL expression, added to CheckResponse.dynamic_metadata',
      default: {},
    }),
    metadata_claims: strings({
      description:
        'local claims in dynamic_metadata.claims: ["*"] every claim; a list only those; [] no claims object (issuer, sub, scope stay)',
      default: ['*'],
      allowEmpty: true,
    }),
  },
  { description: 'What an allowed request carries to the backend.', default: {} },
);

export type UpstreamTokenConfig = Static<typeof UpstreamTokenSchema>;
export type SigningConfig = Static<ReturnType<typeof signingSchema>>;
export type EncryptionConfig = Static<typeof EncryptionSchema>;
