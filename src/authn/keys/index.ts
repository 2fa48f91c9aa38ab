import type { IssuerConfig } from '../../config/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { createDiscoveryKeySource } from './discovery.js';
import { InlineJwksKeySource, JwksFileKeySource } from './local-jwks.js';
import { RemoteJwksKeySource } from './remote-jwks.js';
import { SecretKeySource } from './secret.js';
import { TruststoreKeySource } from './truststore.js';
import type { KeySource } from './types.js';

export type { KeySet, KeySource, KeySourceState, KeySourceStatus, VerificationKey } from './types.js';
export {
  buildKeySet,
  makeKeySet,
  keySetFingerprint,
  importVerificationJwk,
  KeySetError,
  EMPTY_KEY_SET,
} from './jwk.js';
export { fetchJson, FetchError, checkFetchUrl, isLoopbackHost } from '../../net/safe-fetch.js';
export { RemoteJwksKeySource } from './remote-jwks.js';
export { createDiscoveryKeySource } from './discovery.js';
export { InlineJwksKeySource, JwksFileKeySource } from './local-jwks.js';
export { TruststoreKeySource, certificateThumbprints } from './truststore.js';
export { SecretKeySource } from './secret.js';

export interface KeySourceContext {
  /** Folder that relative paths in the config are resolved against. */
  readonly baseDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** Builds the key source an issuer's config names (exactly one; load.ts checked that). */
export function createKeySource(issuer: IssuerConfig, ctx: KeySourceContext): KeySource {
  const common = { issuer: issuer.name, logger: ctx.logger, metrics: ctx.metrics };
  if (issuer.jwks_uri !== undefined) {
    return new RemoteJwksKeySource({
      ...common,
      jwksUri: issuer.jwks_uri,
      cache: issuer.jwks_cache,
      insecureHttp: issuer.insecure_http,
    });
  }
  if (issuer.discovery_uri !== undefined) {
    return createDiscoveryKeySource({
      ...common,
      expectedIssuer: issuer.issuer,
      discoveryUri: issuer.discovery_uri,
      cache: issuer.jwks_cache,
      insecureHttp: issuer.insecure_http,
    });
  }
  if (issuer.jwks !== undefined) return new InlineJwksKeySource(issuer.jwks, common);
  if (issuer.jwks_file !== undefined) return new JwksFileKeySource(issuer.jwks_file, ctx.baseDir, common);
  if (issuer.truststore !== undefined) return new TruststoreKeySource(issuer.truststore, ctx.baseDir, common);
  if (issuer.secret_file !== undefined) return new SecretKeySource(issuer.secret_file, ctx.baseDir, common);
  throw new Error(`issuer ${issuer.name}: no key source configured`);
}
