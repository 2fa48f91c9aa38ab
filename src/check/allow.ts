// Allow decisions: an authenticated allow (claim headers, downstream token, dynamic
// metadata, credentials removed), memoised on its principal when it can be answered
// again for the same token and rule; and the constant allow of a rule that verified
// nothing (an allow rule, an optional rule's anonymous caller, a CORS preflight).

import {
  cookieHeaderWithout,
  HIDDEN_QUERY_CREDENTIAL,
  tokenQueryKeys,
  type ExtractedToken,
} from '../authn/extract.js';
import type { MemoHolder } from '../authn/principal-cache.js';
import { toJsonValue, type CompiledExpression, type ExpressionInput } from '../authz/expressions.js';
import type { EffectiveRule } from '../authz/requirement.js';
import { deny, type Allow, type Deny, type HeaderToSet } from '../core/decision.js';
import type { AuthRequest, Principal } from '../core/request.js';
import type { Logger } from '../observability/logger.js';
import type { ClaimHeaders } from '../upstream/claim-headers.js';
import type { UpstreamTokenMinter, MintedToken } from '../upstream/token-minter.js';
import type { Credentials } from './credentials.js';
import { credentialDeny, ruleDeny } from './deny.js';

/** Distinct rules one cached token keeps decisions for (bounded: rules with context_extensions vary). */
const MAX_MEMOISED_RULES = 8;

export interface AuthenticatedAllow {
  readonly req: AuthRequest;
  readonly rule: EffectiveRule;
  readonly principal: Principal;
  readonly extracted: ExtractedToken;
  /** Where the decision is memoised when reusable (a cached token's or an API key's entry). */
  readonly entry: MemoHolder | undefined;
  /** upstream.dynamic_metadata fields. */
  readonly extra: Record<string, unknown> | undefined;
  /** Something in the decision varies between requests of the same token: never reused. */
  readonly requestDependent: boolean;
}

export interface AllowParts {
  readonly claimHeaders: ClaimHeaders;
  readonly forwardOriginalToken: boolean;
  /** Claims in the dynamic metadata: absent = all, empty = none. */
  readonly metadataClaims?: readonly string[];
  readonly minter?: UpstreamTokenMinter;
  readonly logger: Logger;
}

export class Allows {
  /** The constant allow of each allow rule and each optional rule's anonymous allow. */
  private readonly ruleAllows = new WeakMap<EffectiveRule, Allow>();
  private readonly anonymousAllows = new WeakMap<EffectiveRule, Allow>();
  /** Memo holders of API key principals (they live as long as their keys-file version). */
  private readonly apiKeyHolders = new WeakMap<Principal, MemoHolder>();

  constructor(
    private readonly parts: AllowParts,
    private readonly credentials: Credentials,
  ) {}

  /** An authenticated allow; memoised on `entry` when it can be answered again as it is. */
  authenticated(o: AuthenticatedAllow, minted: MintedToken | undefined): Allow {
    const { req, principal, extracted, entry } = o;
    const logger = this.parts.logger;
    const headers: HeaderToSet[] = [];
    this.parts.claimHeaders.build(principal, headers, (header, claim, why, quiet) => {
      const fields = { request_id: req.requestId, header, claim, why };
      if (quiet) logger.debug(fields, 'claim header not set');
      else logger.warn(fields, 'claim header not set');
    });
    const minter = this.parts.minter;
    if (minter && minted) headers.push({ key: minter.header, value: minted.value });
    const headersToRemove: string[] = [];
    const queryParametersToRemove: string[] = [];
    const source = extracted.source;
    // An API key never goes upstream.
    const forward = this.parts.forwardOriginalToken && source.apiKeys === undefined;
    this.credentials.removeForVerified(
      req,
      extracted,
      forward,
      minter?.header,
      headers,
      headersToRemove,
      queryParametersToRemove,
    );
    // The decision only depends on (token, rule, token source) — except a cookie rewrite
    // or stray empty credentials to remove, which depend on the request — so it is
    // reused, response bytes included, until the minted token is due for renewal or the
    // verification expires.
    const reusable =
      entry !== undefined &&
      (source.kind === 'header' || source.kind === 'query') &&
      !extracted.strays &&
      !o.requestDependent &&
      (minted === undefined || minted.reuseUntil > 0);
    const metadata: NonNullable<Allow['metadata']> = {
      issuer: principal.issuer,
      sub: principal.sub,
      scope: principal.scope,
    };
    const claims = this.metadataClaims(principal.claims);
    if (claims !== undefined) metadata.claims = claims;
    if (o.extra) metadata.extra = o.extra;
    const allow: Allow = {
      kind: 'allow',
      headers,
      headersToRemove,
      queryParametersToRemove,
      metadata,
      reason: 'authenticated',
      rule: o.rule.name,
      issuer: principal.issuer,
      reusable,
    };
    if (reusable) {
      const allows = (entry.allows ??= new Map());
      if (allows.size >= MAX_MEMOISED_RULES) allows.clear();
      allows.set(o.rule, {
        source,
        decision: allow,
        reuseUntil: Math.min(minted?.reuseUntil ?? Infinity, entry.expiresAt * 1000),
      });
    }
    return allow;
  }

  /** dynamic_metadata.claims as upstream.metadata_claims picks them. */
  private metadataClaims(claims: Readonly<Record<string, unknown>>): Record<string, unknown> | undefined {
    const names = this.parts.metadataClaims;
    if (names === undefined) return claims;
    if (names.length === 0) return undefined;
    const picked: Record<string, unknown> = Object.create(null);
    for (const name of names) if (Object.hasOwn(claims, name)) picked[name] = claims[name];
    return picked;
  }

  /**
   * Where an API key's allows are memoised: one principal object per key entry and
   * keys-file version, so its allows are memoised like a cached token's.
   */
  apiKeyHolder(p: Principal): MemoHolder {
    let holder = this.apiKeyHolders.get(p);
    if (!holder) {
      holder = { principal: p, expiresAt: p.exp ?? Infinity };
      this.apiKeyHolders.set(p, holder);
    }
    return holder;
  }

  /**
   * An allow that verified nothing: every configured token source is removed (see
   * Credentials), so the upstream never receives a credential that nobody checked (and
   * cannot mistake it for one we did). A token parameter behind ";" cannot be removed by
   * Envoy: such a request is refused.
   */
  unverified(req: AuthRequest, rule: EffectiveRule, why?: 'anonymous' | 'cors_preflight'): Allow | Deny {
    const anonymous = why === 'anonymous';
    const plan = this.credentials.plan;
    const r = this.credentials.unverified;
    let headers: HeaderToSet[] = [];
    let headersToRemove = r.headers;
    const cookie = req.headers.cookie;
    if (r.cookies.length > 0 && typeof cookie === 'string') {
      const rest = cookieHeaderWithout(cookie, plan.cookieKeys);
      if (rest === '') headersToRemove = [...r.headers, 'cookie'];
      else if (rest !== undefined) headers = [{ key: 'cookie', value: rest }];
    }
    // Envoy strips query parameters by their raw keys: every spelling a backend reads as
    // the token parameter (access%5Ftoken, ACCESS_TOKEN, access.token, …) is listed.
    let queryParametersToRemove = r.query;
    if (r.query.length > 0 && req.rawPath.indexOf('?') >= 0) {
      const raw = tokenQueryKeys(req.rawPath, plan.queryKeys);
      if (raw === HIDDEN_QUERY_CREDENTIAL) return ruleDeny(credentialDeny(raw), rule, req);
      if (Array.isArray(raw) && raw.some((k) => !r.query.includes(k)))
        queryParametersToRemove = [...new Set([...r.query, ...raw])];
    }
    // Nothing request-specific to add or remove: one decision per rule, answered from
    // its cached response bytes (see envoy/response.ts).
    const constant =
      headers.length === 0 && headersToRemove === r.headers && queryParametersToRemove === r.query;
    const memo = anonymous ? this.anonymousAllows : this.ruleAllows;
    if (constant) {
      const known = memo.get(rule);
      if (known) return known;
    }
    const allow: Allow = {
      kind: 'allow',
      headers,
      headersToRemove,
      queryParametersToRemove,
      reason: why ?? (rule.name === 'default' ? 'default_allow' : 'rule_allow'),
      ...(anonymous ? { anonymous } : {}),
      rule: rule.name,
      ...(constant ? { reusable: true } : {}),
    };
    if (constant) memo.set(rule, allow);
    return allow;
  }
}

/** upstream.dynamic_metadata for one request; an evaluation error denies (fail closed). */
export function dynamicMetadataFields(
  fields: readonly { readonly name: string; readonly expression: CompiledExpression }[],
  input: ExpressionInput,
): { ok: true; fields: Record<string, unknown> } | { ok: false; deny: Deny } {
  const out: Record<string, unknown> = Object.create(null);
  for (const m of fields) {
    try {
      out[m.name] = toJsonValue(m.expression.evaluate(input));
    } catch (err) {
      const d = deny('expression_error', "the route's policy could not be evaluated", {
        logDetail: `upstream.dynamic_metadata.${m.name}: ${(err as Error).message}`,
      });
      return { ok: false, deny: d };
    }
  }
  return { ok: true, fields: out };
}
