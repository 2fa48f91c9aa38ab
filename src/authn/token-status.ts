import type { Deny } from '../core/decision.js';

/**
 * What a lookup of an opaque access token found. `refused`: the issuer knows the token
 * but its claims fail a check (expired, wrong audience); `deny` says which.
 * `unavailable` may carry the denial to answer (default: the token store is down).
 */
export type OpaqueLookup =
  | { status: 'active'; claims: Record<string, unknown> }
  | { status: 'inactive' }
  | { status: 'refused'; deny: Deny }
  | { status: 'unavailable'; deny?: Deny };

/**
 * Checks an issuer's tokens need beyond a valid signature and claims: tokens this
 * service issues itself can be revoked, and may be opaque. An issuer with such a check
 * never has its decisions reused without asking it, and keeps the raw claims of its
 * cached tokens for it.
 */
export interface TokenStatusCheck {
  /** For a verified JWT, by its claims. Answers may be cached briefly. Never "not revoked" when the store is down. */
  isRevoked(claims: Record<string, unknown>): Promise<boolean | 'unavailable'>;
  /** Whether this issuer hands out opaque (non-JWT) access tokens. */
  readonly issuesOpaqueTokens: boolean;
  /** An opaque access token's claims (sub, scope, client_id, exp, iss, …), or why there are none. */
  lookupOpaque(token: string): Promise<OpaqueLookup>;
  /**
   * Asks about any token that is not a compact JWS (another identity provider's
   * introspection endpoint), rather than only tokens shaped like this service's own.
   */
  readonly introspects?: boolean;
}
