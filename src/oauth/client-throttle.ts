import { createHash } from 'node:crypto';
import { OAuthError } from './answers.js';
import type { OAuthState } from './state.js';

/**
 * token_endpoint.rate_limit: one count per token request of an authenticated client,
 * before anything is issued or an assertion's jti is spent. Over the limit: 429
 * `rate_limited` with Retry-After. A store failure propagates (503 temporarily_unavailable).
 */
export async function limitClient(state: OAuthState, clientId: string): Promise<void> {
  const rl = state.cfg.rate_limit;
  if (!rl) return;
  // Client ids are configured, but may be long or hold any character: hashed, namespaced.
  const key = `token_endpoint:${createHash('sha256').update(clientId).digest('base64url')}`;
  const r = await state.ctx.store.hit(key, rl.limit, rl.window_seconds);
  if (r.allowed) return;
  state.ctx.metrics.rateLimitedTotal.labels('token_endpoint').inc();
  throw new OAuthError('rate_limited', 'too many token requests from this client; retry later', {
    retryAfterSeconds: r.retryAfterSeconds ?? 1,
  });
}
