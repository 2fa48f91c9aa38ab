#!/usr/bin/env node
// Cost of rules[].match.path_regex with RE2 (PathRegex: re2js behind a literal-prefix
// check) against the backtracking JS RegExp it replaced (`^(?:…)$`, flag u, plus i for
// case_sensitive: false), in one process:
//   engine   one call per pattern on a short path that matches and one that does not
//            (ns per call): JS RegExp, bare re2js testExact, PathRegex.matches
//   rules    RuleSet.resolve over a mix of ordinary paths with a typical rule list of
//            prefixes and three regex routes (ns per resolve); "JS" is the same RuleSet
//            with each compiled regex swapped for the JS RegExp of the old code
//   attack   one call on a 3,000-character path that backtracking takes seconds on
// Rounds alternate the order of the engines; prints best and median per round.
//
//   npm run build && node bench/route-regex.mjs [--rounds 7]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { RE2JS } from 're2js';
import { RuleSet } from '../dist/authz/compile.js';
import { normalizePath } from '../dist/authz/path.js';
import { PathRegex } from '../dist/authz/path-regex.js';

const { values: opts } = parseArgs({ options: { rounds: { type: 'string', default: '7' } } });
const ROUNDS = Number(opts.rounds);

/** [pattern, case-insensitive, a path it matches, a path it does not]. */
const PATTERNS = [
  ['/users/[0-9]+', false, '/users/12345', '/orders/17/items'],
  ['^/internal(/.*)?$', false, '/internal/metrics', '/public/index.html'],
  ['/api/v[0-9]+/orders(/[0-9]+)?', false, '/api/v2/orders/17', '/api/v2/users/17'],
  ['/users/[a-z0-9]+[a-z0-9._-]*[a-z0-9]+', false, '/users/alice.smith', '/users/alice.'],
  ['/files/.+\\.(png|jpg)', false, '/files/x/y.png', '/files/x/y.gif'],
  ['/Reports/[a-z]+', true, '/REPORTS/daily', '/RECEIPTS/daily'],
  ['.*/admin(/.*)?', false, '/v1/admin/users', '/v1/public/users'],
];

const jsRegex = (p, ci) => new RegExp(`^(?:${p})$`, ci ? 'iu' : 'u');

function perOp(fn, n) {
  const start = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  return ((performance.now() - start) * 1e6) / n; // ns
}

function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return `${Math.round(s[0])} / ${Math.round(s[Math.floor(s.length / 2)])}`;
}

let sink = 0;

console.log(`engine: ns per call, best / median of ${ROUNDS} rounds (Node ${process.version})`);
console.log('| pattern | path | JS RegExp | re2js testExact | PathRegex (prefix + re2js) |');
console.log('| --- | --- | --- | --- | --- |');
for (const [pattern, ci, yes, no] of PATTERNS) {
  const js = jsRegex(pattern, ci);
  const re = RE2JS.compile(pattern, ci ? RE2JS.CASE_INSENSITIVE : 0);
  const ours = PathRegex.compile(pattern, ci);
  for (const path of [yes, no]) {
    if (js.test(path) !== ours.matches(path) || re.testExact(path) !== ours.matches(path)) {
      throw new Error(`engines disagree on ${pattern} / ${path}`);
    }
    const engines = [
      ['js', () => (sink += js.test(path) ? 1 : 0)],
      ['re2js', () => (sink += re.testExact(path) ? 1 : 0)],
      ['ours', () => (sink += ours.matches(path) ? 1 : 0)],
    ];
    const times = { js: [], re2js: [], ours: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? engines : [...engines].reverse();
      for (const [name, fn] of order) times[name].push(perOp(fn, 50_000));
    }
    const label = `\`${pattern}\`${ci ? ' (i)' : ''}`;
    console.log(
      `| ${label} | \`${path}\` ${path === yes ? 'match' : 'no match'} | ${summary(times.js)} | ${summary(times.re2js)} | ${summary(times.ours)} |`,
    );
  }
}

// A typical rule list: health and public prefixes, three regex routes, an API prefix.
const RULES = [
  { name: 'health', match: { path: '/healthz' }, action: 'allow' },
  { name: 'public', match: { path_separated_prefix: '/public' }, action: 'allow' },
  { name: 'profiles', match: { path_regex: '/users/[a-z0-9]+[a-z0-9._-]*[a-z0-9]+' }, action: 'allow' },
  { name: 'internal', match: { path_regex: '^/internal(/.*)?$' }, action: 'deny' },
  { name: 'reports', match: { path_regex: '/reports/[a-z]+', case_sensitive: false }, action: 'deny' },
  { name: 'api', match: { path_separated_prefix: '/api' } },
];
const PATHS = [
  '/api/v1/orders/17',
  '/api/v1/users/42',
  '/public/index.html',
  '/users/alice.smith',
  '/healthz',
  '/static/app.js',
  '/internal/metrics',
  '/Reports/daily',
].map((p) => {
  const n = normalizePath(p);
  return { method: 'GET', path: n.path, encodedSeparator: n.encodedSeparator, host: 'api.example.com' };
});
const NONE = Object.create(null);

function ruleSet(useJs) {
  const problems = [];
  const set = RuleSet.compile(RULES, 'authenticate', problems);
  if (problems.length) throw new Error(problems.join('\n'));
  if (useJs) {
    // The old matcher: the same rules, each regex swapped for the JS RegExp it used to be.
    for (const [i, r] of RULES.entries()) {
      if (!r.match.path_regex) continue;
      const js = jsRegex(r.match.path_regex, r.match.case_sensitive === false);
      set.rules[i].match = { ...set.rules[i].match, regex: { matches: (p) => js.test(p) } };
    }
  }
  return set;
}
const sets = { js: ruleSet(true), ours: ruleSet(false) };
const names = (set) => PATHS.map((p) => set.resolve(p, NONE).name).join(',');
if (names(sets.js) !== names(sets.ours)) throw new Error('rule sets disagree');

console.log(`\nrules: ns per resolve over ${PATHS.length} paths (${names(sets.ours)}), best / median`);
const rt = { js: [], ours: [] };
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? ['js', 'ours'] : ['ours', 'js'];
  for (const name of order) {
    const set = sets[name];
    rt[name].push(perOp((i) => (sink += set.resolve(PATHS[i % PATHS.length], NONE).plain ? 1 : 0), 200_000));
  }
}
console.log(`| JS RegExp | ${summary(rt.js)} |\n| PathRegex | ${summary(rt.ours)} |`);

console.log('\nattack: one call on /users/aaaa…! (ms)');
const HANDLE = '/users/[a-z0-9]+[a-z0-9._-]*[a-z0-9]+';
const ours = PathRegex.compile(HANDLE, false);
const attack = `/users/${'a'.repeat(3000)}!`;
let best = Infinity;
for (let r = 0; r < ROUNDS; r++) {
  const start = performance.now();
  sink += ours.matches(attack) ? 1 : 0;
  best = Math.min(best, performance.now() - start);
}
console.log(`| PathRegex, 3,000 characters | ${best.toFixed(3)} |`);
for (const n of [200, 500]) {
  const start = performance.now();
  sink += jsRegex(HANDLE, false).test(`/users/${'a'.repeat(n)}!`) ? 1 : 0;
  console.log(`| JS RegExp, ${n} characters | ${(performance.now() - start).toFixed(1)} |`);
}
if (sink < 0) console.log(sink);
