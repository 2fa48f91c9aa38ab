// path_regex runs RE2 (linear time) with the semantics it had: whole-path match,
// case_sensitive: false ignoring case; what RE2 refuses is a config error naming the
// field and the pattern. The literal-prefix check in front of the engine never turns away
// a path the pattern accepts.
import { performance } from 'node:perf_hooks';
import { RE2JS } from 're2js';
import { describe, expect, it } from 'vitest';
import { PathRegex } from '../../../src/authz/path-regex.js';
import { compile, NONE, req, rule } from './helpers.js';

const HANDLE_ROUTE = '/users/[a-z0-9]+[a-z0-9._-]*[a-z0-9]+';

/** Best of a few runs, so a scheduling pause on a loaded machine does not count. */
function bestMs(fn: () => void, runs = 5): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

describe('path_regex on a long attack path', () => {
  it('decides a 3,000-character path on a catastrophic-for-backtracking pattern within 10 ms', () => {
    const { set, problems } = compile([
      rule({ path_regex: HANDLE_ROUTE }, 'deny', 'users'),
      rule({ path_regex: '(/[a-z]+)*/admin', case_sensitive: false }, 'deny', 'admin'),
    ]);
    expect(problems).toEqual([]);
    const attack = req(`/users/${'a'.repeat(3000)}!`);
    const nested = req(`${'/aaaa'.repeat(600)}!`);
    let name = '';
    const ms = bestMs(() => {
      name = set.resolve(attack, NONE).name;
      name += ',' + set.resolve(nested, NONE).name;
    });
    expect(name).toBe('default,default');
    expect(ms).toBeLessThan(10);
    // Still matches what it should.
    expect(set.resolve(req(`/users/${'a'.repeat(3000)}`), NONE).name).toBe('users');
    expect(set.resolve(req(`${'/aaaa'.repeat(600)}/ADMIN`), NONE).name).toBe('admin');
  });
});

describe('patterns RE2 does not accept', () => {
  it('are config errors naming the field, the rule and the pattern', () => {
    const cases: [string, RegExp][] = [
      ['/(a)\\1', /invalid escape sequence: `\\1`/],
      ['/(?=admin).*', /invalid or unsupported Perl syntax: `\(\?=`/],
      ['/(?!public).*', /invalid or unsupported Perl syntax: `\(\?!`/],
      ['(?<!/public)/admin', /invalid named capture/],
      ['/\\u0041', /invalid escape sequence: `\\u`/],
      ['/a++', /invalid nested repetition operator/],
    ];
    for (const [pattern, why] of cases) {
      const { problems } = compile([rule({ path_regex: pattern }, 'deny', 'r')]);
      expect(problems, pattern).toHaveLength(1);
      const quoted = pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      expect(problems[0]).toMatch(
        new RegExp(`^rules\\[0\\]\\.match\\.path_regex: pattern '${quoted}' is not accepted by RE2: `),
      );
      expect(problems[0]).toMatch(why);
      expect(problems[0]).toMatch(/ \(rule "r"\)$/);
    }
  });

  it('include a pattern that closes the anchoring group (it compiled, half-anchored, before)', () => {
    const { problems } = compile([rule({ path_regex: '/admin)|(?:/public' }, 'deny', 'r')]);
    expect(problems.join('\n')).toMatch(
      /path_regex: pattern '\/admin\)\|\(\?:\/public' is not accepted by RE2/,
    );
  });

  it('include programs too large to match in bounded time', () => {
    const { problems } = compile([rule({ path_regex: '(.*/){0,600}x' }, 'deny', 'r')]);
    expect(problems.join('\n')).toMatch(
      /^rules\[0\]\.match\.path_regex: pattern '\(\.\*\/\)\{0,600\}x' is too large: its RE2 program has \d+ instructions, at most 1000 are accepted \(rule "r"\)$/,
    );
    // A long but ordinary alternation is well within the limit.
    const routes = Array.from({ length: 40 }, (_, i) => `res${i}`).join('|');
    expect(compile([rule({ path_regex: `/api/v[0-9]+/(${routes})(/[0-9]+)?` })]).problems).toEqual([]);
  });
});

describe('path_regex semantics', () => {
  it('matches the whole path; RE2 syntax such as (?i), \\pL and \\Q…\\E works', () => {
    const { set, problems } = compile([
      rule({ path_regex: '/a|/b' }, 'deny', 'alt'),
      rule({ path_regex: '^/internal(/.*)?$' }, 'deny', 'anchored'),
      rule({ path_regex: '(?i)/Docs/[0-9]+' }, 'deny', 'inline'),
      rule({ path_regex: '/v/\\pL+' }, 'deny', 'letters'),
      rule({ path_regex: '/q/\\Q*.*\\E' }, 'deny', 'quoted'),
    ]);
    expect(problems).toEqual([]);
    const name = (p: string) => set.resolve(req(p), NONE).name;
    expect(name('/a')).toBe('alt');
    expect(name('/ab')).toBe('default');
    expect(name('/xx/b')).toBe('default');
    expect(name('/internal')).toBe('anchored');
    expect(name('/internal/x')).toBe('anchored');
    expect(name('/internalx')).toBe('default');
    expect(name('/DOCS/12')).toBe('inline');
    expect(name('/v/abc')).toBe('letters');
    expect(name('/q/*.*')).toBe('quoted');
    expect(name('/q/ab')).toBe('default');
  });

  it('case_sensitive: false ignores ASCII case; the path keeps non-ASCII characters percent-encoded', () => {
    const { set, problems } = compile([
      rule({ path_regex: '/Re/[a-z]+', case_sensitive: false }, 'deny', 'ci'),
      rule({ path_regex: '/caf%C3%A9/[0-9]+', case_sensitive: false }, 'deny', 'encoded'),
      rule({ path_regex: '/Exact/[a-z]+' }, 'deny', 'cs'),
    ]);
    expect(problems).toEqual([]);
    const name = (p: string) => set.resolve(req(p), NONE).name;
    expect(name('/RE/ABC')).toBe('ci');
    expect(name('/re/abc')).toBe('ci');
    expect(name('/CAF%c3%a9/1')).toBe('encoded');
    expect(name('/café/1')).toBe('default'); // raw non-ASCII is not the normalised form
    expect(name('/Exact/abc')).toBe('cs');
    expect(name('/exact/abc')).toBe('default');
  });

  it('computes the literal prefix that turns paths away before the engine runs', () => {
    const prefix = (p: string, ci = false) => (PathRegex.compile(p, ci) as PathRegex).requiredPrefix;
    expect(prefix('/users/[0-9]+')).toBe('/users/');
    expect(prefix('^/internal(/.*)?$')).toBe('/internal');
    expect(prefix('/Users/[0-9]+', true)).toBe('/Users/');
    expect(prefix('/a|/b')).toBe('/');
    expect(prefix('.*/admin')).toBe('');
    // "^" bound to a repetition is not stripped: "{2}/x" alone is not "^{2}/x".
    expect(prefix('^{2}/x')).toBe('');
    expect(prefix('^*/x')).toBe('');
  });

  it('gives the same answers as RE2 without the prefix check, and as the old JS RegExp', () => {
    const patterns = [
      '/users/[0-9]+',
      '^/internal(/.*)?$',
      '^{2}/x',
      '^*/x|/y',
      '^|/k',
      '/a|/b',
      '/Ks/[a-z]+',
      '/kS',
      '/x+/y?',
      '/files/.+\\.(png|jpg)',
      '/@`/[[]',
      '/\u017F/x',
      '/\u212A',
    ];
    const paths = [
      '',
      '/',
      '/users/1',
      '/USERS/1',
      '/users/',
      '/internal',
      '/Internal/x',
      '/x',
      '/y',
      '/k',
      '/K',
      '/\u212A',
      '/\u017F/x',
      '/s/x',
      '/S/x',
      '/a',
      '/B',
      '/ks/abc',
      '/KS/ABC',
      '/\u212As/abc',
      '/k\u017F/abc',
      '/kS',
      '/Ks',
      '/xx/y',
      '/xxy',
      '/files/a.png',
      '/FILES/A.JPG',
      '/@`/[',
      '/`@/[',
      '/@`/{',
    ];
    for (const ci of [false, true]) {
      for (const pattern of patterns) {
        const ours = PathRegex.compile(pattern, ci) as PathRegex;
        expect(typeof ours, pattern).toBe('object');
        const plain = RE2JS.compile(pattern, ci ? RE2JS.CASE_INSENSITIVE : 0);
        // "^{2}" and "^*" are RE2 only.
        const js =
          pattern.startsWith('^{') || pattern.startsWith('^*')
            ? undefined
            : new RegExp(`^(?:${pattern})$`, ci ? 'iu' : 'u');
        for (const path of paths) {
          const want = plain.testExact(path);
          expect(ours.matches(path), `${pattern} ${ci ? 'i' : ''} on ${path}`).toBe(want);
          if (js) expect(js.test(path), `JS ${pattern} ${ci ? 'i' : ''} on ${path}`).toBe(want);
        }
      }
    }
  });

  it('turns no path away that RE2 would accept (seeded random patterns and paths)', () => {
    let seed = 20261204;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return (seed >> 8) % n;
    };
    const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)]!;
    const atoms = [
      '/',
      'a',
      'us',
      'K',
      'k',
      's',
      'S',
      '\u212A',
      '\u017F',
      '[a-z]',
      '[0-9]',
      '.',
      '\\.',
      '(?i:k)',
    ];
    const quantifiers = ['', '', '', '?', '*', '+', '{2}'];
    const piece = (): string => pick(atoms) + pick(quantifiers);
    const branch = (): string => Array.from({ length: 1 + rand(5) }, piece).join('');
    const alphabet = ['/', 'a', 'u', 's', 'S', 'k', 'K', '\u212A', '\u017F', '0', '.', 'A'];
    let checked = 0;
    let turnedAway = 0;
    for (let i = 0; i < 400; i++) {
      let pattern = branch();
      if (rand(4) === 0) pattern += `|${branch()}`;
      if (rand(3) === 0) pattern = `(${pattern})${pick(quantifiers)}`;
      if (rand(3) === 0) pattern = `^${pattern}`;
      for (const ci of [false, true]) {
        const ours = PathRegex.compile(pattern, ci);
        if (typeof ours === 'string') continue;
        const plain = RE2JS.compile(pattern, ci ? RE2JS.CASE_INSENSITIVE : 0);
        for (let j = 0; j < 30; j++) {
          const path = Array.from({ length: rand(8) }, () => pick(alphabet)).join('');
          const want = plain.testExact(path);
          expect(
            ours.matches(path),
            `${JSON.stringify(pattern)} ${ci ? 'i' : ''} on ${JSON.stringify(path)}`,
          ).toBe(want);
          checked++;
          if (!want && ours.requiredPrefix !== '') turnedAway++;
        }
      }
    }
    expect(checked).toBeGreaterThan(10_000);
    expect(turnedAway).toBeGreaterThan(1000);
  });
});
