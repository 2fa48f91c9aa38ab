// Which credentials an allowed request loses before it goes upstream. A credential that
// was not verified never reaches the upstream (it could not tell it from one we checked);
// a verified one does only under forward_original_token (an API key never). Headers this
// service sets (claim headers, the minted token, the method-override headers) are removed
// when the request carries them itself.

import {
  compileCredentialPlan,
  cookieHeaderWithout,
  tokenQueryKeys,
  type CompiledTokenSource,
  type CredentialPlan,
  type ExtractedToken,
} from '../authn/extract.js';
import { isDpopSource } from '../authn/sender-constraint.js';
import { hiddenCredentials, type HiddenCredentials } from '../authz/expressions.js';
import type { HeaderToSet } from '../core/decision.js';
import type { AuthRequest } from '../core/request.js';

/**
 * Headers some frameworks read as the request method: rules match the real method, so an
 * allowed request does not carry them upstream (unless upstream.allow_method_override).
 */
export const METHOD_OVERRIDE_HEADERS: readonly string[] = [
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
];

/** What an allow that verified nothing removes; shared by every such decision. */
export interface UnverifiedRemovals {
  readonly headers: string[];
  readonly query: string[];
  readonly cookies: string[];
}

/** The credential side of the configuration, compiled once. */
export class Credentials {
  readonly plan: CredentialPlan;
  /** Headers this service may set: a request's own values of them never go upstream. */
  readonly injectable: readonly string[];
  readonly unverified: UnverifiedRemovals;
  /** Token-source headers and query parameters that expressions never see. */
  readonly hidden: HiddenCredentials;

  constructor(
    tokenSources: readonly CompiledTokenSource[],
    setHeaders: Iterable<string>,
    allowMethodOverride: boolean,
  ) {
    const names = [...setHeaders];
    if (!allowMethodOverride) for (const h of METHOD_OVERRIDE_HEADERS) if (!names.includes(h)) names.push(h);
    this.injectable = names;
    this.plan = compileCredentialPlan(tokenSources);
    // Nothing was verified: every token source goes, forward_original_token or not.
    const removals: UnverifiedRemovals = { headers: [...names], query: [], cookies: [] };
    for (const src of tokenSources) {
      const list =
        src.kind === 'header' ? removals.headers : src.kind === 'query' ? removals.query : removals.cookies;
      if (!list.includes(src.name)) list.push(src.name);
    }
    this.unverified = removals;
    this.hidden = hiddenCredentials(
      tokenSources.filter((t) => t.kind === 'header').map((t) => t.name),
      tokenSources.filter((t) => t.kind === 'query').map((t) => t.name),
    );
  }

  /**
   * The removals of an authenticated allow, added to its lists: injectable headers the
   * allow does not set, the verified credential unless it is forwarded (its DPoP proof
   * with it), stray empty token parameters and cookies, and a Cookie header rewritten
   * without the credential cookies.
   */
  removeForVerified(
    req: AuthRequest,
    extracted: ExtractedToken,
    forward: boolean,
    minterHeader: string | undefined,
    headers: HeaderToSet[],
    headersToRemove: string[],
    queryParametersToRemove: string[],
  ): void {
    for (const name of this.injectable) if (!headers.some((h) => h.key === name)) headersToRemove.push(name);
    const source = extracted.source;
    if (!forward) {
      if (source.kind === 'header') {
        // A minted token written to the same header already replaces it; Envoy applies
        // removals after sets, so listing it would drop our own value.
        if (minterHeader !== source.name && !headersToRemove.includes(source.name))
          headersToRemove.push(source.name);
        // The proof goes with the token it was made for.
        if (isDpopSource(source) && !headersToRemove.includes('dpop')) headersToRemove.push('dpop');
      } else if (source.kind === 'query') {
        // The only token parameter in the request (any other spelling would have been a
        // second credential), under the exact name it was read from.
        queryParametersToRemove.push(source.name);
      }
    }
    // Empty token parameters and cookies beside the token go too.
    if (extracted.strays && req.rawPath.indexOf('?') >= 0) {
      const raw = tokenQueryKeys(req.rawPath, this.plan.queryKeys);
      if (Array.isArray(raw))
        for (const k of raw)
          if (
            !(forward && source.kind === 'query' && k === source.name) &&
            !queryParametersToRemove.includes(k)
          )
            queryParametersToRemove.push(k);
    }
    const cookie = req.headers.cookie;
    if (typeof cookie === 'string' && ((source.kind === 'cookie' && !forward) || extracted.strays)) {
      const keep = forward && source.kind === 'cookie' ? source.name : undefined;
      const rest = cookieHeaderWithout(cookie, this.plan.cookieKeys, keep);
      if (rest === '') headersToRemove.push('cookie');
      else if (rest !== undefined) headers.push({ key: 'cookie', value: rest });
    }
  }
}
