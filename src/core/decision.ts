// Decisions are values. Every outcome of a check is one of these, and the single
// table below maps a denial reason to what Envoy receives (gRPC status, HTTP status,
// RFC 6750 challenge). Nothing else in the code decides status codes.

export type DenyReason =
  | 'token_missing'
  | 'token_too_large'
  | 'token_malformed'
  | 'issuer_unknown'
  | 'alg_not_allowed'
  | 'header_invalid'
  | 'crit_unsupported'
  | 'key_not_found'
  | 'signature_invalid'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'iat_in_future'
  | 'audience_invalid'
  | 'claim_missing'
  | 'claim_invalid'
  | 'lifetime_exceeded'
  | 'typ_invalid'
  | 'token_revoked'
  | 'token_inactive'
  | 'cnf_missing'
  | 'cnf_mismatch'
  | 'dpop_invalid'
  | 'dpop_replayed'
  | 'insufficient_scope'
  | 'rule_deny'
  | 'claims_condition'
  | 'issuer_not_allowed'
  | 'peer_not_allowed'
  | 'expression_false'
  | 'expression_error'
  | 'keys_unavailable'
  | 'introspection_unavailable'
  | 'store_unavailable'
  | 'mint_failed'
  | 'internal_error'
  | 'request_invalid'
  | 'multiple_credentials'
  | 'rate_limited';

export type ChallengeKind =
  | 'unauthorized'
  | 'invalid_token'
  | 'invalid_dpop_proof'
  | 'insufficient_scope'
  | 'forbidden'
  | 'invalid_request'
  | 'unavailable'
  | 'rate_limited'
  | 'server_error';

export interface DenyOutcome {
  /** google.rpc.Code */
  readonly grpcCode: number;
  readonly httpStatus: number;
  readonly kind: ChallengeKind;
}

export const GRPC_OK = 0;
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_RESOURCE_EXHAUSTED = 8;
export const GRPC_UNAVAILABLE = 14;
export const GRPC_UNAUTHENTICATED = 16;

const invalidToken: DenyOutcome = { grpcCode: GRPC_UNAUTHENTICATED, httpStatus: 401, kind: 'invalid_token' };
const forbidden: DenyOutcome = { grpcCode: GRPC_PERMISSION_DENIED, httpStatus: 403, kind: 'forbidden' };
const unavailable: DenyOutcome = { grpcCode: GRPC_UNAVAILABLE, httpStatus: 503, kind: 'unavailable' };

export const DENY_OUTCOMES: Readonly<Record<DenyReason, DenyOutcome>> = {
  token_missing: { grpcCode: GRPC_UNAUTHENTICATED, httpStatus: 401, kind: 'unauthorized' },
  token_too_large: invalidToken,
  token_malformed: invalidToken,
  issuer_unknown: invalidToken,
  alg_not_allowed: invalidToken,
  header_invalid: invalidToken,
  crit_unsupported: invalidToken,
  key_not_found: invalidToken,
  signature_invalid: invalidToken,
  token_expired: invalidToken,
  token_not_yet_valid: invalidToken,
  iat_in_future: invalidToken,
  audience_invalid: invalidToken,
  claim_missing: invalidToken,
  claim_invalid: invalidToken,
  lifetime_exceeded: invalidToken,
  typ_invalid: invalidToken,
  token_revoked: invalidToken,
  token_inactive: invalidToken,
  // Sender-constrained tokens: the token is not bound as the issuer demands, or not to this sender.
  cnf_missing: invalidToken,
  cnf_mismatch: invalidToken,
  dpop_invalid: { grpcCode: GRPC_UNAUTHENTICATED, httpStatus: 401, kind: 'invalid_dpop_proof' },
  dpop_replayed: { grpcCode: GRPC_UNAUTHENTICATED, httpStatus: 401, kind: 'invalid_dpop_proof' },
  insufficient_scope: { grpcCode: GRPC_PERMISSION_DENIED, httpStatus: 403, kind: 'insufficient_scope' },
  rule_deny: forbidden,
  claims_condition: forbidden,
  issuer_not_allowed: forbidden,
  // require.source_principals: the connection's peer (mTLS principal) is not one the rule accepts.
  peer_not_allowed: forbidden,
  expression_false: forbidden,
  expression_error: forbidden,
  keys_unavailable: unavailable,
  // Another identity provider's introspection endpoint did not give a usable answer.
  introspection_unavailable: unavailable,
  store_unavailable: unavailable,
  // Mint failures and internal errors: Envoy sees 500 with a generic body; the detail goes to the log.
  mint_failed: { grpcCode: GRPC_UNAVAILABLE, httpStatus: 500, kind: 'server_error' },
  internal_error: { grpcCode: GRPC_UNAVAILABLE, httpStatus: 500, kind: 'server_error' },
  // No HTTP attributes, or an ambiguous path refused before any rule.
  request_invalid: { grpcCode: GRPC_PERMISSION_DENIED, httpStatus: 400, kind: 'invalid_request' },
  // The token in more than one place (RFC 6750: a client uses one method only).
  multiple_credentials: { grpcCode: GRPC_PERMISSION_DENIED, httpStatus: 400, kind: 'invalid_request' },
  // Over a configured quota (rate_limits).
  rate_limited: { grpcCode: GRPC_RESOURCE_EXHAUSTED, httpStatus: 429, kind: 'rate_limited' },
};

export interface Deny {
  readonly kind: 'deny';
  readonly reason: DenyReason;
  /** Plain words for error_description; never contains the token, a key or a secret. */
  readonly description?: string;
  /** insufficient_scope: the scopes needed, space-separated. */
  readonly scope?: string;
  /** Authentication scheme of the challenge: DPoP for proof-of-possession problems, else Bearer. */
  readonly scheme?: 'DPoP';
  /** Detail for the log only (never sent to the client). */
  readonly logDetail?: string;
  readonly issuer?: string;
  readonly rule?: string;
  /** The rule's own answer for its 401/403 denials (deny_response). */
  readonly response?: DenyResponse;
  /** x-request-id as logged, for a deny_response body's {request_id}. */
  readonly requestId?: string;
  /** Further headers of the denied response (rate limits: Retry-After, RateLimit-Policy, RateLimit). */
  readonly headers?: readonly HeaderToSet[];
  /** A rule in audit mode answered: what it would have decided (dynamic metadata `dry_run`). */
  readonly dryRun?: DryRunOutcome;
}

/** What a rule in audit mode would have decided. */
export interface DryRunOutcome {
  readonly decision: 'allow' | 'deny';
  readonly reason: string;
}

/** A rule's deny_response, compiled: unset parts keep the defaults. */
export interface DenyResponse {
  readonly status?: number;
  /** Lower-case names. */
  readonly headers: readonly HeaderToSet[];
  readonly body?: string;
}

export interface HeaderToSet {
  readonly key: string;
  readonly value: string;
}

export interface Allow {
  readonly kind: 'allow';
  readonly headers: HeaderToSet[];
  readonly headersToRemove: string[];
  readonly queryParametersToRemove: string[];
  /** Top-level CheckResponse.dynamic_metadata, or undefined for anonymous allows. */
  readonly metadata?: {
    issuer: string;
    sub?: string;
    scope: string;
    /** The local claims upstream.metadata_claims names (absent when it names none). */
    claims?: Record<string, unknown>;
    /** Configured upstream.dynamic_metadata fields (JSON values). */
    extra?: Record<string, unknown>;
  };
  /** An optional rule let a request without a token through. */
  readonly anonymous?: boolean;
  readonly reason: 'authenticated' | 'rule_allow' | 'default_allow' | 'anonymous' | 'cors_preflight';
  /** The same decision object is returned again for the same token and rule (its response may be cached). */
  readonly reusable?: boolean;
  /** Headers Envoy adds to the response sent to the client (ok_response.response_headers_to_add). */
  readonly responseHeaders?: readonly HeaderToSet[];
  /** The reusable decision this one extends with responseHeaders (its serialized bytes are reused). */
  readonly base?: Allow;
  /** A rule in audit mode answered: what it would have decided (dynamic metadata `dry_run`). */
  readonly dryRun?: DryRunOutcome;
  readonly issuer?: string;
  readonly rule?: string;
}

export type Decision = Allow | Deny;

// Decisions are created complete and never changed afterwards: a memoised allow is
// answered again, and a denial may be logged after it was returned. What a later step
// knows (the rule, the issuer) goes into a new value made with denyWith.

export function deny(
  reason: DenyReason,
  description?: string,
  extra?: Partial<Omit<Deny, 'kind' | 'reason'>>,
): Deny {
  return { kind: 'deny', reason, description, ...extra };
}

/** A copy of `d` with `extra` set (the rule that refused, the issuer…): `d` itself is not changed. */
export function denyWith(d: Deny, extra: Partial<Omit<Deny, 'kind' | 'reason'>>): Deny {
  return { ...d, ...extra };
}
