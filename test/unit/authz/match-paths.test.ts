import { describe, expect, it } from 'vitest';
import type { RuleConfig } from '../../../src/config/types.js';
import { normalizePath } from '../../../src/authz/path.js';
import { RuleSet } from '../../../src/authz/compile.js';
import type { MatchInput } from '../../../src/authz/match.js';

const NONE: Record<string, string> = Object.create(null);

function compile(rules: RuleConfig[]) {
  const problems: string[] = [];
  const set = RuleSet.compile(rules, 'authenticate', problems);
  return { set, problems };
}

function req(path: string): MatchInput {
  const n = normalizePath(path);
  return { method: 'GET', path: n.path, encodedSeparator: n.encodedSeparator, host: 'api.example.com' };
}

const name = (set: RuleSet, path: string): string => set.resolve(req(path), NONE).name;

describe('match.case_sensitive: false', () => {
  const { set, problems } = compile([
    { name: 'exact', match: { path: '/Exact', case_sensitive: false }, action: 'deny' },
    { name: 'prefix', match: { path_prefix: '/Pre', case_sensitive: false }, action: 'deny' },
    { name: 'sep', match: { path_separated_prefix: '/Sep', case_sensitive: false }, action: 'deny' },
    { name: 'regex', match: { path_regex: '/Re/[a-z]+', case_sensitive: false }, action: 'deny' },
    {
      name: 'both',
      match: { path_prefix: '/Both', path_regex: '/Both/[0-9]+', case_sensitive: false },
      action: 'deny',
    },
    { name: 'sensitive', match: { path: '/Sensitive' }, action: 'deny' },
    { name: 'enc', match: { path_prefix: '/Caf%C3%A9', case_sensitive: false }, action: 'deny' },
  ]);

  it('compiles without problems', () => expect(problems).toEqual([]));

  it.each([
    ['/exact', 'exact'],
    ['/EXACT', 'exact'],
    ['/Exact/x', 'default'],
    ['/preFIX', 'prefix'],
    ['/SEP', 'sep'],
    ['/sep/X', 'sep'],
    ['/SEPX', 'default'],
    ['/RE/ABC', 'regex'],
    ['/both/42', 'both'],
    ['/BOTH/42', 'both'],
    ['/BOTH/x', 'default'],
    ['/Sensitive', 'sensitive'],
    ['/sensitive', 'default'],
    ['/caf%c3%a9/x', 'enc'],
    ['/CAF%C3%A9', 'enc'],
  ])('%s → %s', (path, expected) => {
    expect(name(set, path)).toBe(expected);
  });

  it('folds ASCII only: a non-ASCII letter never becomes an ASCII one', () => {
    // U+212A KELVIN SIGN lower-cases to "k" under Unicode rules.
    const k = compile([{ name: 'k', match: { path: '/k', case_sensitive: false }, action: 'deny' }]).set;
    expect(name(k, '/K')).toBe('k');
    expect(name(k, '/\u212a')).toBe('default');
  });

  it('is reported without a path matcher', () => {
    const { problems: p } = compile([
      { name: 'm', match: { methods: ['GET'], case_sensitive: false }, action: 'deny' },
    ]);
    expect(p).toEqual([
      'rules[0].match.case_sensitive: only applies to path, path_prefix, path_separated_prefix or path_regex (rule "m")',
    ]);
  });

  it('shows in the rule summary', () => {
    expect(set.summary[0]).toEqual({
      name: 'exact',
      action: 'deny',
      match: 'path=/Exact case_sensitive=false',
    });
  });
});

describe('non-ASCII rule paths', () => {
  const { set, problems } = compile([
    { name: 'decoded', match: { path: '/café' }, action: 'deny' },
    { name: 'encoded', match: { path_separated_prefix: '/th%C3%A9' }, action: 'deny' },
    { name: 'space', match: { path_prefix: '/a b' }, action: 'deny' },
  ]);

  it('compiles without problems', () => expect(problems).toEqual([]));

  it.each([
    ['/caf%C3%A9', 'decoded'],
    ['/caf%c3%a9', 'decoded'],
    ['/cafe', 'default'],
    ['/th%C3%A9/vert', 'encoded'],
    ['/a%20b/c', 'space'],
  ])('%s → %s', (path, expected) => {
    expect(name(set, path)).toBe(expected);
  });

  it('lower-case hex in an exact rule path is reported with the form to use', () => {
    const { problems: p } = compile([{ name: 'x', match: { path: '/caf%c3%a9' }, action: 'deny' }]);
    expect(p).toEqual([
      'rules[0].match.path: "/caf%c3%a9" never matches a normalised request path; use "/caf%C3%A9" (rule "x")',
    ]);
  });

  it('a lone surrogate is reported', () => {
    const { problems: p } = compile([{ name: 'x', match: { path_prefix: '/a\ud800' }, action: 'deny' }]);
    expect(p).toEqual(['rules[0].match.path_prefix: is not valid Unicode text (rule "x")']);
  });
});
