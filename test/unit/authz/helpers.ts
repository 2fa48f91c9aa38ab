// Shared helpers of the authz unit tests.
import type { Action, RuleConfig } from '../../../src/config/types.js';
import type { Principal } from '../../../src/core/request.js';
import { normalizePath } from '../../../src/authz/path.js';
import { RuleSet } from '../../../src/authz/compile.js';
import type { MatchInput } from '../../../src/authz/match.js';
export function compile(
  rules: RuleConfig[],
  defaultAction: Action = 'authenticate',
  knownIssuers?: Set<string>,
) {
  const problems: string[] = [];
  const set = RuleSet.compile(rules, defaultAction, problems, knownIssuers);
  return { set, problems };
}

export function req(path: string, method = 'GET', host = 'api.example.com'): MatchInput {
  const n = normalizePath(path);
  return { method, path: n.path, encodedSeparator: n.encodedSeparator, host };
}

export const NONE: Record<string, string> = Object.create(null);

export function rule(
  match: RuleConfig['match'],
  action: Action = 'authenticate',
  name?: string,
  require?: RuleConfig['require'],
) {
  return { ...(name ? { name } : {}), match, action, ...(require ? { require } : {}) } as RuleConfig;
}

export function principal(
  scopes: string[],
  claims: Record<string, unknown> = {},
  issuer = 'corp-idp',
): Principal {
  return {
    issuer,
    sub: 'u1',
    claims: Object.assign(Object.create(null), claims),
    scopes: new Set(scopes),
    scope: scopes.join(' '),
    cacheKey: 'k',
  };
}
