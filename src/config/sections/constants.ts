// Fixed value lists of the configuration, shared by the schema and the code that uses them.

export const JWS_ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export const HMAC_ALGORITHMS = JWS_ALGORITHMS.filter((a) => a.startsWith('HS'));
export const ASYMMETRIC_DEFAULT_ALGORITHMS = JWS_ALGORITHMS.filter((a) => !a.startsWith('HS'));
/** The algorithms of one family (HS, RS, PS, ES), in the order above. */
const family = (prefix: 'RS' | 'PS' | 'ES') => JWS_ALGORITHMS.filter((a) => a.startsWith(prefix));
/** RSA signature algorithms: PKCS#1 v1.5 and PSS. */
export const RSA_ALGORITHMS: readonly string[] = [...family('RS'), ...family('PS')];
/**
 * What a DPoP proof may be signed with: asymmetric only, as a proof must be verifiable
 * with the public key it carries. In the order the challenge and the metadata list them.
 */
export const DPOP_ALGORITHMS: readonly string[] = [
  ...family('ES'),
  ...family('PS'),
  ...family('RS'),
  'EdDSA',
];

export const JWE_KEY_MANAGEMENT = [
  'RSA-OAEP',
  'RSA-OAEP-256',
  'ECDH-ES',
  'ECDH-ES+A128KW',
  'ECDH-ES+A192KW',
  'ECDH-ES+A256KW',
  'A128KW',
  'A192KW',
  'A256KW',
  'dir',
] as const;
export const JWE_CONTENT_ENCRYPTION = [
  'A128CBC-HS256',
  'A192CBC-HS384',
  'A256CBC-HS512',
  'A128GCM',
  'A192GCM',
  'A256GCM',
] as const;

/** The certificate files of a truststore folder (checked by the preflight, loaded by authn). */
export const CERTIFICATE_EXTENSIONS = ['.pem', '.crt', '.cer'] as const;

export const SENDER_CONSTRAINT_MODES = ['off', 'optional', 'required'] as const;
export const ACTIONS = ['allow', 'deny', 'authenticate', 'optional'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Claims of issued access tokens that the service always sets itself (never copied nor configured). */
export const TOKEN_ENDPOINT_RESERVED_CLAIMS: readonly string[] = [
  'iss',
  'sub',
  'aud',
  'exp',
  'nbf',
  'iat',
  'jti',
  'client_id',
  'scope',
  'cnf',
  'act',
];

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export const GRANT_TYPE_JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const GRANT_TYPE_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** Grant types a token endpoint client may be allowed (clients[].grant_types). */
export const TOKEN_ENDPOINT_GRANT_TYPES = [
  GRANT_TYPE_JWT_BEARER,
  'refresh_token',
  'client_credentials',
  GRANT_TYPE_TOKEN_EXCHANGE,
] as const;
/** A client's grant types when clients[].grant_types is not set: those that existed before the list did. */
export const DEFAULT_CLIENT_GRANT_TYPES: readonly string[] = [GRANT_TYPE_JWT_BEARER, 'refresh_token'];
export const TOKEN_ENDPOINT_AUTH_METHODS = [
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
] as const;
export const DEFAULT_TOKEN_PATH = '/oauth2/token';
