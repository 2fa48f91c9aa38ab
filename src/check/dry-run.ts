// Rules in audit mode (a dry run): the rule is evaluated fully in enforce mode, what it
// would have decided is logged and counted, and the request is answered as the rule's
// audit_action says. Only this file's callers turn a would-be deny into an allow.

import type { Allow, Decision, Deny, DryRunOutcome } from '../core/decision.js';
import type { AuthRequest } from '../core/request.js';
import type { EffectiveRule } from '../authz/requirement.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/**
 * Denials that come after the token verified and was bound to its sender: an audit allow
 * of one of these is enriched (claim headers, downstream token) like an authenticated allow.
 */
export const VERIFIED_TOKEN_DENIALS: ReadonlySet<string> = new Set([
  'insufficient_scope',
  'claims_condition',
  'issuer_not_allowed',
  'expression_false',
  'expression_error',
  'rate_limited',
  'mint_failed',
]);

/** Logs (info, never sampled) and counts what an audit rule would have decided. */
export function recordDryRun(
  logger: Logger,
  metrics: Metrics,
  req: AuthRequest,
  rule: EffectiveRule,
  would: Decision,
  auditAction: 'allow' | 'deny',
): DryRunOutcome {
  const outcome: DryRunOutcome = { decision: would.kind, reason: would.reason };
  metrics.dryRunTotal.labels(rule.name, would.kind).inc();
  logger.info(
    {
      request_id: req.requestId,
      rule: rule.name,
      would_decision: would.kind,
      would_reason: would.reason,
      ...(would.kind === 'deny' && would.logDetail ? { would_detail: would.logDetail } : {}),
      issuer: would.issuer,
      audit_action: auditAction,
    },
    would.kind === 'deny' && auditAction === 'allow'
      ? 'dry run: a request the rule would deny is allowed (mode audit)'
      : 'dry run (mode audit)',
  );
  return outcome;
}

/** The answer with its dry-run outcome: a copy, never a memoised or shared decision. */
export function withDryRun(answer: Decision, outcome: DryRunOutcome): Decision {
  if (answer.kind === 'deny') return { ...answer, dryRun: outcome } satisfies Deny;
  // Neither reused nor answered from another decision's cached bytes.
  const { base: _base, ...rest } = answer;
  return { ...rest, reusable: false, dryRun: outcome } satisfies Allow;
}
