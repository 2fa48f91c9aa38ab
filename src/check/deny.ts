// Denials as the Check pipeline answers them: named after the rule that refused, with the
// rule's own answer (deny_response) when it has one. Always a new value: a denial made
// elsewhere (authentication, sender binding, a requirement) is never changed.

import { HIDDEN_QUERY_CREDENTIAL, type CredentialProblem } from '../authn/extract.js';
import { ExpressionError } from '../authz/expressions.js';
import type { EffectiveRule } from '../authz/requirement.js';
import { deny, type Deny } from '../core/decision.js';
import type { AuthRequest } from '../core/request.js';

/** `d` as the rule's denial (and the issuer's, when given). */
export function ruleDeny(d: Deny, rule: EffectiveRule, req: AuthRequest, issuer?: string): Deny {
  const response = rule.denyResponse;
  if (issuer === undefined) {
    return response
      ? { ...d, rule: rule.name, response, requestId: req.requestId }
      : { ...d, rule: rule.name };
  }
  return response
    ? { ...d, rule: rule.name, issuer, response, requestId: req.requestId }
    : { ...d, rule: rule.name, issuer };
}

/** A new denial of the rule, with its deny_response when it has one. */
export function denyByRule(
  reason: Deny['reason'],
  description: string | undefined,
  rule: EffectiveRule,
  req: AuthRequest,
): Deny {
  const response = rule.denyResponse;
  return response
    ? { kind: 'deny', reason, description, rule: rule.name, response, requestId: req.requestId }
    : { kind: 'deny', reason, description, rule: rule.name };
}

/** More than one credential, or a token query parameter Envoy cannot remove. */
export function credentialDeny(problem: CredentialProblem): Deny {
  return problem === HIDDEN_QUERY_CREDENTIAL
    ? deny('request_invalid', 'a token query parameter is separated by ";"', {
        logDetail: 'a token query parameter behind ";" cannot be removed by Envoy',
      })
    : deny('multiple_credentials', 'the request carries more than one credential');
}

/**
 * A downstream token could not be minted: a claims_expr that failed is the policy's error
 * (the rule's denial); anything else is ours (500, the detail only logged).
 */
export function mintFailure(err: unknown, rule: EffectiveRule, req: AuthRequest, issuer: string): Deny {
  if (err instanceof ExpressionError) {
    return ruleDeny(
      deny('expression_error', "the route's policy could not be evaluated", {
        issuer,
        logDetail: err.message,
      }),
      rule,
      req,
    );
  }
  return deny('mint_failed', undefined, { rule: rule.name, issuer, logDetail: (err as Error).message });
}
