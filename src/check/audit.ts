// A rule in audit mode answers as its audit_action says, after its enforce-mode decision
// was logged and counted (see dry-run.ts). An audit allow of a would-be deny is enriched
// like an authenticated allow when the token verified and only the policy refused it.

import type { ApiKeyLookup } from '../authn/api-keys.js';
import { findCredential, type CredentialPlan } from '../authn/extract.js';
import type { ExpressionInput } from '../authz/expressions.js';
import type { DryRun, EffectiveRule } from '../authz/requirement.js';
import type { Decision, Deny } from '../core/decision.js';
import type { AuthRequest, Principal } from '../core/request.js';
import type { Clock } from '../core/time.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { UpstreamTokenMinter, MintedToken } from '../upstream/token-minter.js';
import type { Allows } from './allow.js';
import { denyByRule } from './deny.js';
import { recordDryRun, VERIFIED_TOKEN_DENIALS, withDryRun } from './dry-run.js';

/** What an audit answer needs of the pipeline (made once per pipeline). */
export interface AuditHost {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly minter?: UpstreamTokenMinter;
  readonly allows: Allows;
  readonly credentials: CredentialPlan;
  readonly clock: Clock;
  authenticate(token: string, deadline: number | undefined): Promise<Principal | Deny>;
  expressionInput(req: AuthRequest, path: string, principal: Principal): ExpressionInput;
}

/** The answer of an audit rule, given what it would have decided in enforce mode. */
export function auditAnswer(
  host: AuditHost,
  req: AuthRequest,
  path: string,
  rule: EffectiveRule,
  dryRun: DryRun,
  would: Decision,
  deadline: number | undefined,
): Decision | Promise<Decision> {
  const outcome = recordDryRun(host.logger, host.metrics, req, rule, would, dryRun.auditAction);
  let answer: Decision | Promise<Decision>;
  if (dryRun.auditAction === 'deny')
    answer =
      would.kind === 'deny' ? would : denyByRule('rule_deny', 'access to this route is denied', rule, req);
  else answer = would.kind === 'allow' ? would : auditAllow(host, req, path, rule, would, deadline);
  return answer instanceof Promise ? answer.then((a) => withDryRun(a, outcome)) : withDryRun(answer, outcome);
}

/**
 * audit_action allow of a would-be deny: enriched like an authenticated allow when the
 * token verified (and only the policy refused it), else like an anonymous allow.
 */
async function auditAllow(
  host: AuditHost,
  req: AuthRequest,
  path: string,
  rule: EffectiveRule,
  would: Deny,
  deadline: number | undefined,
): Promise<Decision> {
  const extracted = VERIFIED_TOKEN_DENIALS.has(would.reason)
    ? findCredential(req, host.credentials)
    : undefined;
  if (extracted === undefined || 'problem' in extracted)
    return host.allows.unverified(req, rule, 'anonymous');
  const principal = await principalOf(host, extracted.token, extracted.source.apiKeys, deadline);
  if (principal === undefined) return host.allows.unverified(req, rule, 'anonymous');
  const minter = host.minter;
  const profile = minter?.profile(rule.name);
  let minted: MintedToken | undefined;
  if (minter && profile?.enabled !== false) {
    try {
      const input =
        profile && profile.computed.length > 0 ? host.expressionInput(req, path, principal) : undefined;
      minted = await minter.mintEntry(principal, rule.audience, profile, input);
    } catch {
      return host.allows.unverified(req, rule, 'anonymous');
    }
  }
  // No cache entry: never memoised.
  const o = { req, rule, principal, extracted, entry: undefined, extra: undefined, requestDependent: true };
  return host.allows.authenticated(o, minted);
}

/**
 * The credential's principal, or undefined when it is refused. An API key is looked up in
 * its keys file, never sent to a token verifier or an introspection endpoint.
 */
async function principalOf(
  host: AuditHost,
  credential: string,
  apiKeys: ApiKeyLookup | undefined,
  deadline: number | undefined,
): Promise<Principal | undefined> {
  if (apiKeys !== undefined) {
    const found = apiKeys.check(credential, host.clock.nowSeconds());
    return 'deny' in found ? undefined : found.principal;
  }
  const verified = await host.authenticate(credential, deadline);
  return 'kind' in verified ? undefined : verified;
}
