import type { CompiledIssuer } from '../authn/verify.js';
import { ConfigError } from '../core/errors.js';
import { systemClock } from '../core/time.js';
import { ASYMMETRIC_DEFAULT_ALGORITHMS, TOKEN_ENDPOINT_RESERVED_CLAIMS } from '../config/schema.js';
import type { ClientConfig } from '../config/types.js';
import { readSecretFile } from '../crypto/key-files.js';
import { CLIENT_ASSERTION_SKEW_SECONDS } from './assertions.js';
import { loadClientCertificate, loadClientJwks, staticKeySource } from './client-keys.js';
import { sha256 } from './requests.js';
import type { Client, ClientAuthMethod, TokenServiceContext } from './state.js';

/** One `token_endpoint.clients[i]` entry, with its secret digest and assertion verifier; problems name their field. */
export function compileClient(
  c: ClientConfig,
  i: number,
  audiences: readonly string[],
  ctx: TokenServiceContext,
  problems: string[],
): Client | undefined {
  const p = `token_endpoint.clients[${i}]`;
  const sources = ['certificate_file', 'jwks_file'].filter((k) => c[k as keyof ClientConfig] !== undefined);
  if (sources.length === 0 && c.client_secret_file === undefined) {
    problems.push(
      `${p}: needs a certificate_file or jwks_file (signed assertions) or a client_secret_file (HTTP Basic)`,
    );
    return undefined;
  }
  if (sources.length > 1) {
    problems.push(`${p}: give either certificate_file or jwks_file, not both`);
    return undefined;
  }
  for (const name of Object.keys(c.token_claims)) {
    if (TOKEN_ENDPOINT_RESERVED_CLAIMS.includes(name)) {
      problems.push(`${p}.token_claims.${name}: reserved claim; the service sets it itself`);
    }
  }
  const before = problems.length;
  let secretDigest: Buffer | undefined;
  if (c.client_secret_file !== undefined) {
    try {
      const secret = readSecretFile(c.client_secret_file, ctx.baseDir, `${p}.client_secret_file`);
      if (secret.length === 0) problems.push(`${p}.client_secret_file: the secret is empty`);
      else secretDigest = sha256(secret);
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else throw err;
    }
  }
  let assertionIssuer: CompiledIssuer | undefined;
  let singleKey = false;
  if (sources.length === 1) {
    const clock = ctx.clock ?? systemClock;
    const loaded =
      c.certificate_file !== undefined
        ? loadClientCertificate(
            c.certificate_file,
            ctx.baseDir,
            `${p}.certificate_file`,
            clock.nowMs(),
            ctx.logger,
          )
        : loadClientJwks(c.jwks_file!, ctx.baseDir, `${p}.jwks_file`, ctx.logger);
    if (typeof loaded === 'string') {
      problems.push(loaded);
    } else {
      singleKey = loaded.single;
      assertionIssuer = Object.freeze({
        name: `client:${c.client_id}`,
        issuer: c.client_id,
        audiences: new Set(audiences),
        algorithms: new Set<string>(ASYMMETRIC_DEFAULT_ALGORITHMS),
        keySource: staticKeySource(loaded.set, loaded.kind, clock),
        clockSkewSeconds: CLIENT_ASSERTION_SKEW_SECONDS,
        // iat is optional for assertions (RFC 7523).
        requiredClaims: c.require_jti ? ['iss', 'aud', 'exp', 'jti'] : ['iss', 'aud', 'exp'],
        // exp − now is bounded by max_assertion_lifetime_seconds instead (checked by the service).
        maxLifetimeSeconds: Number.MAX_SAFE_INTEGER,
      });
    }
  }
  if (problems.length > before) return undefined;
  // Without a configured method: what its credentials allow (client_secret_post only when chosen).
  const authMethods = new Set<ClientAuthMethod>();
  if (c.token_endpoint_auth_method !== undefined) authMethods.add(c.token_endpoint_auth_method);
  else {
    if (secretDigest) authMethods.add('client_secret_basic');
    if (assertionIssuer) authMethods.add('private_key_jwt');
  }
  return Object.freeze({
    id: c.client_id,
    scopes: Object.freeze([...new Set(c.scopes)]),
    scopeSet: new Set(c.scopes),
    tokenClaims: Object.freeze({ ...c.token_claims }),
    ...(secretDigest ? { secretDigest } : {}),
    ...(assertionIssuer ? { assertionIssuer } : {}),
    singleKey,
    requireJti: c.require_jti,
    authMethods,
    grantTypes: new Set<string>(c.grant_types),
    exchangeAudiences: new Set(c.exchange_audiences),
  });
}
