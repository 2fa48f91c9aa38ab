// Explanations: one request's decision with its trail (where the credential was found,
// which issuer and key verified it or why not, the mapped claims, the rules considered,
// each requirement's result, the rate limits and what would go upstream).
//
// The trail is recorded by an ExplainingPipeline: a CheckPipeline built for one
// explanation over the same compiled parts, that records what authenticate() found.
// The normal Check path is untouched (it allocates nothing for explanations). Side
// effects are kept out: its verified-token cache is off, DPoP proof jtis go to a
// throwaway replay cache, and rate limits are not counted: their state is read with the
// store's read-only peek, which records nothing.

import { decodeJwt, decodeProtectedHeader } from 'jose';
import { DENY_OUTCOMES, type Decision, type Deny } from '../core/decision.js';
import type { AuthRequest, Principal } from '../core/request.js';
import { compileCredentialPlan, findCredential } from '../authn/extract.js';
import { MemoryReplayCache } from '../authn/dpop.js';
import { isAmbiguousPath, normalizePath } from '../authz/path.js';
import { compileClaimReader } from '../authz/claims.js';
import { evaluateExpression, type EffectiveRule } from '../authz/requirement.js';
import { Metrics } from '../observability/metrics.js';
import { CheckPipeline, type PipelineParts } from './pipeline.js';

const REDACTED = '[redacted]';

export interface ExplainOptions {
  /** debug.redact_claims: claim names whose values are masked. */
  readonly redactClaims?: readonly string[];
  /** Names of the configured rate limits and the rules they apply to (all when unset). */
  readonly rateLimits?: readonly { readonly name: string; readonly rules?: readonly string[] }[];
}

class ExplainingPipeline extends CheckPipeline {
  principal?: Principal;
  authDeny?: Deny;
  constructor(parts: PipelineParts) {
    super({
      ...parts,
      verifiedCacheMax: 0,
      replay: new MemoryReplayCache(),
      rateLimiter: undefined,
      // An explanation is not a Check: it is not counted with them.
      metrics: new Metrics({ processMetrics: false }),
      logger: parts.logger.child({ explain: true }),
    });
  }

  override async authenticate(token: string, deadline?: number): Promise<Principal | Deny> {
    const r = await super.authenticate(token, deadline, null);
    if ('kind' in r) this.authDeny ??= r;
    else this.principal ??= r;
    return r;
  }

  input(req: AuthRequest, path: string, principal: Principal) {
    return this.expressionInput(req, path, principal);
  }
}

function redact(claims: Record<string, unknown>, names: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(claims)) out[k] = names.has(k) ? REDACTED : v;
  return out;
}

function denyText(d: Deny): Record<string, unknown> {
  return {
    reason: d.reason,
    http_status: DENY_OUTCOMES[d.reason].httpStatus,
    ...(d.description ? { description: d.description } : {}),
    ...(d.logDetail ? { detail: d.logDetail } : {}),
    ...(d.scope ? { scope: d.scope } : {}),
  };
}

function requirements(
  rule: EffectiveRule,
  principal: Principal,
  evaluate: () => Deny | undefined,
): Record<string, unknown> {
  const req = rule.requirement;
  const out: Record<string, unknown> = {};
  if (req.issuers) out.issuers = { accepted: [...req.issuers], ok: req.issuers.has(principal.issuer) };
  if (req.scopesAll.length > 0) {
    const missing = req.scopesAll.filter((s) => !principal.scopes.has(s));
    out.scopes_all = { required: req.scopesAll, missing, ok: missing.length === 0 };
  }
  const groups = [req.scopesAny, req.scopesAnyAlso ?? []].filter((g) => g.length > 0);
  if (groups.length > 0)
    out.scopes_any = groups.map((g) => ({ one_of: g, ok: g.some((s) => principal.scopes.has(s)) }));
  if (req.claims.length > 0)
    out.claims = req.claims.map((c) => {
      const value = (c.read ?? compileClaimReader(c.name))(principal.claims);
      const list = Array.isArray(value) ? value : [value];
      return { claim: c.name, accepted: c.values, ok: list.some((v) => c.values.includes(v as never)) };
    });
  if (req.expression) {
    const d = evaluate();
    out.expression = d ? { ok: false, ...denyText(d) } : { ok: true };
  }
  return out;
}

/** The token's header fields that say which key: never the token, never its signature. */
function tokenHeader(token: string): Record<string, unknown> {
  try {
    const h = decodeProtectedHeader(token);
    return {
      format: 'jws',
      ...(typeof h.alg === 'string' ? { alg: h.alg } : {}),
      ...(typeof h.kid === 'string' ? { kid: h.kid } : {}),
    };
  } catch {
    return { format: token.split('.').length === 3 ? 'unreadable jws' : 'opaque' };
  }
}

/** A decision with its trail, as JSON. */
export async function explainCheck(
  pipeline: CheckPipeline,
  req: AuthRequest,
  opts: ExplainOptions = {},
): Promise<Record<string, unknown>> {
  const parts = pipeline.parts;
  const redacted = new Set(opts.redactClaims ?? []);
  const trail: Record<string, unknown> = {};
  const ambiguous = parts.rejectAmbiguousPaths !== false && isAmbiguousPath(req.rawPath);
  const np = normalizePath(req.rawPath);
  trail.request = {
    method: req.method,
    path: np.path,
    host: req.host,
    ...(ambiguous ? { ambiguous: true } : {}),
    ...(np.encodedSeparator ? { encoded_separator: true } : {}),
    context_extensions: req.contextExtensions,
  };
  const input = { method: req.method, path: np.path, encodedSeparator: np.encodedSeparator, host: req.host };
  const considered = parts.rules.considered(input);
  const rule = parts.rules.resolve(input, req.contextExtensions);
  trail.rules = considered;
  trail.rule = {
    name: rule.name,
    action: rule.action,
    mode: rule.dryRun ? 'audit' : 'enforce',
    ...(rule.dryRun ? { audit_action: rule.dryRun.auditAction } : {}),
    ...(considered.some((r) => r.matched) ? {} : { matched: 'no rule: default_action' }),
  };
  const enforced = rule.dryRun?.enforced ?? rule;

  const found = findCredential(req, compileCredentialPlan(parts.tokenSources));
  if (enforced.action === 'allow' || enforced.action === 'deny')
    trail.credential = { read: false, why: `action ${enforced.action} does not read a token` };
  else if (found === undefined) trail.credential = { found: false };
  else if ('problem' in found) trail.credential = { found: false, problem: String(found.problem) };
  else
    trail.credential = {
      found: true,
      where: { [found.source.kind]: found.source.name },
      ...tokenHeader(found.token),
    };

  const explaining = new ExplainingPipeline(parts);
  const decision: Decision = await explaining.check(req);

  const principal = explaining.principal;
  if (principal) {
    trail.verification = {
      ok: true,
      issuer: principal.issuer,
      ...(trail.credential && (trail.credential as { kid?: string }).kid
        ? { kid: (trail.credential as { kid?: string }).kid }
        : {}),
    };
    trail.claims = redact(principal.claims, redacted);
    trail.scopes = [...principal.scopes];
    trail.requirements = requirements(enforced, principal, () =>
      evaluateExpression(enforced.requirement, explaining.input(req, np.path, principal)),
    );
  } else if (explaining.authDeny) {
    const d = explaining.authDeny;
    trail.verification = { ok: false, ...(d.issuer ? { issuer: d.issuer } : {}), ...denyText(d) };
  }

  const limits = (opts.rateLimits ?? []).filter((l) => !l.rules || l.rules.includes(enforced.name));
  const limiter = parts.rateLimiter;
  const bound = limiter?.forRule(enforced.name);
  if (limits.length === 0 || !bound)
    trail.rate_limits = { limits: [], counted: false, note: 'no rate limit applies to this rule' };
  else if (decision.kind !== 'allow' || !principal)
    trail.rate_limits = {
      limits: limits.map((l) => l.name),
      counted: false,
      note: 'not counted: rate limits count only authenticated requests that are allowed',
    };
  else {
    // As a Check would count them, read only: the explanation uses up no request.
    const state = await limiter!.peek(bound, principal, explaining.input(req, np.path, principal));
    const refused = state.some((s) => s.would_refuse === true);
    trail.rate_limits = {
      limits: limits.map((l) => l.name),
      counted: false,
      state,
      ...(refused ? { would_refuse: true, note: 'a Check now would be refused: 429 rate_limited' } : {}),
    };
  }

  if (decision.kind === 'allow') {
    const minterHeader = parts.minter?.header;
    const headers: Record<string, unknown> = {};
    for (const h of decision.headers) {
      if (h.key !== minterHeader) headers[h.key] = h.value;
      else if (h.value.split('.').length === 3)
        // The claims only: never the signature (the token would be usable).
        headers[h.key] = { minted_token_claims: redact(decodeJwt(h.value), redacted) };
      else headers[h.key] = { minted_token: 'encrypted (JWE): claims not shown' };
    }
    // A claim header carries a claim's value: masked when that value is.
    const hidden = new Set<string>();
    if (principal)
      for (const n of redacted) if (typeof principal.claims[n] === 'string') hidden.add(principal.claims[n]);
    for (const [k, v] of Object.entries(headers))
      if (typeof v === 'string' && hidden.has(v)) headers[k] = REDACTED;
    trail.upstream = {
      headers,
      headers_to_remove: decision.headersToRemove,
      query_parameters_to_remove: decision.queryParametersToRemove,
    };
  }
  return {
    decision: decision.kind,
    ...(decision.kind === 'deny' ? denyText(decision) : { reason: decision.reason }),
    ...(decision.rule ? { rule: decision.rule } : {}),
    ...(decision.dryRun ? { dry_run: decision.dryRun } : {}),
    trail,
  };
}
