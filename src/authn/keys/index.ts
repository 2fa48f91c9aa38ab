import { issuerKeySource } from '../../config/key-sources.js';
import type { IssuerConfig } from '../../config/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { createDiscoveryKeySource } from './discovery.js';
import { InlineJwksKeySource, JwksFileKeySource } from './local-jwks.js';
import { RemoteJwksKeySource } from './remote-jwks.js';
import { SecretKeySource } from './secret.js';
import { TruststoreKeySource } from './truststore.js';
import { EMPTY_KEY_SET } from './jwk.js';
import type { KeySource, KeySourceStatus } from './key-source.js';

export type { KeySet, KeySource, KeySourceState, KeySourceStatus, VerificationKey } from './key-source.js';
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

const NO_KEYS_STATUS: KeySourceStatus = { state: 'ready', keys: 0, loaded: true };

/**
 * The "keys" of an issuer whose tokens are introspected: none to load, so it is ready at
 * once, and a JWT naming it is refused (key_not_found) rather than sent anywhere.
 */
const NO_KEYS: KeySource = {
  kind: 'introspection',
  generation: 1,
  start: async () => undefined,
  current: () => EMPTY_KEY_SET,
  refreshForUnknownKid: () => EMPTY_KEY_SET,
  status: () => NO_KEYS_STATUS,
  close: () => undefined,
};

export interface KeySourceContext {
  /** Folder that relative paths in the config are resolved against. */
  readonly baseDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** Builds the key source an issuer's config names (exactly one; load.ts checked that). */
export function createKeySource(issuer: IssuerConfig, ctx: KeySourceContext): KeySource {
  const common = { issuer: issuer.name, logger: ctx.logger, metrics: ctx.metrics };
  const kind = issuerKeySource(issuer);
  switch (kind) {
    case 'jwks_uri':
      return new RemoteJwksKeySource({
        ...common,
        jwksUri: issuer.jwks_uri!,
        cache: issuer.jwks_cache,
        insecureHttp: issuer.insecure_http,
      });
    case 'discovery_uri':
      return createDiscoveryKeySource({
        ...common,
        expectedIssuer: issuer.issuer,
        discoveryUri: issuer.discovery_uri!,
        cache: issuer.jwks_cache,
        insecureHttp: issuer.insecure_http,
      });
    case 'jwks':
      return new InlineJwksKeySource(issuer.jwks, common);
    case 'jwks_file':
      return new JwksFileKeySource(issuer.jwks_file!, ctx.baseDir, common);
    case 'truststore':
      return new TruststoreKeySource(issuer.truststore!, ctx.baseDir, common);
    case 'secret_file':
      return new SecretKeySource(issuer.secret_file!, ctx.baseDir, common);
    case 'introspection':
      return NO_KEYS;
    case undefined:
      throw new Error(`issuer ${issuer.name}: no key source configured`);
    default: {
      const unhandled: never = kind;
      throw new Error(`issuer ${issuer.name}: key source ${String(unhandled)} not supported`);
    }
  }
}

// Fields of an issuer entry that only the verifier reads; a change to them never needs a new key source.
const VERIFY_ONLY_FIELDS: readonly string[] = [
  'audiences',
  'algorithms',
  'clock_skew_seconds',
  'required_claims',
  'max_lifetime_seconds',
  'claim_mappings',
];

/**
 * What an issuer's key source is built from: the whole issuer entry except the fields
 * only the verifier reads, plus the folder relative paths resolve against. A reload
 * keeps the running key source (its fetched keys, timers and file watch) when this is
 * deep-equal to the previous value. Listing the verifier's fields, rather than the key
 * source's, means a new field is taken to change the key source until it is added here.
 */
export function keySourceSettings(issuer: IssuerConfig, baseDir: string): Record<string, unknown> {
  const settings: Record<string, unknown> = { ...issuer, baseDir };
  for (const field of VERIFY_ONLY_FIELDS) delete settings[field];
  return settings;
}
