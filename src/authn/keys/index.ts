import type { IssuerConfig } from '../../config/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { KeySource } from './types.js';

export interface KeySourceContext {
  /** Folder that relative paths in the config are resolved against. */
  readonly baseDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** Builds the key source an issuer's config names (exactly one; load.ts checked that). */
export function createKeySource(_issuer: IssuerConfig, _ctx: KeySourceContext): KeySource {
  throw new Error('not implemented yet');
}
