import type { JwksCacheConfig } from '../../config/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { checkFetchUrl, errorReason, fetchJson, FetchError, urlForLog } from '../../net/safe-fetch.js';
import { RemoteJwksKeySource, type FetchCause, type JwksLocator } from './remote-jwks.js';

export interface DiscoveryOptions {
  /** Issuer name (label for logs and metrics). */
  readonly issuer: string;
  /** The configured `issuer`: the discovery document's `issuer` must equal it exactly. */
  readonly expectedIssuer: string;
  readonly discoveryUri: string;
  readonly cache: JwksCacheConfig;
  readonly insecureHttp?: boolean;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly initialBackoffMs?: number;
}

/**
 * Resolves `jwks_uri` from an OIDC discovery document (OpenID Connect Discovery 1.0 §4.3:
 * the document's `issuer` must be identical to the configured one). Re-resolved on every
 * scheduled refresh (every max_age) and after failures; an unknown-kid refetch reuses the
 * last resolved URL. When re-resolution fails, the last good jwks_uri is still used.
 */
export function createDiscoveryLocator(opts: DiscoveryOptions): JwksLocator {
  let resolved: string | undefined;
  return async (cause: FetchCause): Promise<string> => {
    if (resolved !== undefined && cause === 'unknown-kid') return resolved;
    const { issuer, logger, metrics } = opts;
    try {
      const doc = await fetchJson(opts.discoveryUri, {
        timeoutMs: opts.cache.timeout_ms,
        insecureHttp: opts.insecureHttp,
      });
      if (doc.issuer !== opts.expectedIssuer) {
        throw new FetchError('discovery issuer mismatch');
      }
      if (typeof doc.jwks_uri !== 'string') throw new FetchError('discovery document has no jwks_uri');
      try {
        checkFetchUrl(doc.jwks_uri, opts.insecureHttp);
      } catch (err) {
        throw new FetchError(`discovery jwks_uri refused: ${errorReason(err)}`);
      }
      metrics?.jwksFetchTotal.inc({ issuer, result: 'discovery_success' });
      if (resolved !== doc.jwks_uri) {
        logger.info({ issuer, jwks_uri: urlForLog(doc.jwks_uri) }, 'discovery resolved jwks_uri');
      }
      resolved = doc.jwks_uri;
      return resolved;
    } catch (err) {
      const reason = errorReason(err);
      metrics?.jwksFetchTotal.inc({ issuer, result: 'discovery_error' });
      if (resolved !== undefined) {
        logger.warn(
          { issuer, url: urlForLog(opts.discoveryUri), reason },
          'OIDC discovery failed; using the last resolved jwks_uri',
        );
        return resolved;
      }
      throw new FetchError(reason.startsWith('discovery') ? reason : `discovery: ${reason}`);
    }
  };
}

/** A RemoteJwksKeySource whose URL comes from OIDC discovery. */
export function createDiscoveryKeySource(opts: DiscoveryOptions): RemoteJwksKeySource {
  return new RemoteJwksKeySource({
    issuer: opts.issuer,
    kind: 'discovery',
    jwksUri: createDiscoveryLocator(opts),
    cache: opts.cache,
    insecureHttp: opts.insecureHttp,
    logger: opts.logger,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.initialBackoffMs !== undefined ? { initialBackoffMs: opts.initialBackoffMs } : {}),
  });
}
