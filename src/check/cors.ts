// cors_preflight: allow lets CORS preflights through without a token (authenticate, the
// default, treats them as any other request).

import { effective, EMPTY_REQUIREMENT, type EffectiveRule } from '../authz/requirement.js';
import type { AuthRequest } from '../core/request.js';

/**
 * A CORS preflight, as Envoy's jwt_authn tells one: OPTIONS with a non-empty Origin and
 * Access-Control-Request-Method. A plain OPTIONS is not one.
 */
export function isCorsPreflight(req: AuthRequest): boolean {
  if (req.method !== 'OPTIONS') return false;
  const h = req.headers;
  return !!h.origin && !!h['access-control-request-method'];
}

/** What a preflight let through under cors_preflight: allow is decided by (never a configured rule). */
export const CORS_PREFLIGHT_RULE: EffectiveRule = effective('cors_preflight', 'allow', EMPTY_REQUIREMENT);
