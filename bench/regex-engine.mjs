#!/usr/bin/env node
// Cost of matches() with RE2 (re2js, what expressions use) against a backtracking JS
// RegExp (what @marcbachmann/cel-js's own matches() runs), in one process:
//   engine      one test() call per pattern on typical short values (ns per call)
//   expression  one evaluation of the whole CEL expression (ns per evaluation): the
//               library's environment with its JS RegExp matches(), against ours
//               (compileExpression: RE2, the request view, the budget's clock pair)
//   attack      one call on 'aaa…!' (RE2 on 3,000 characters; JS RegExp on shorter
//               inputs, since it takes seconds on 2,000)
// Rounds alternate the order of the two engines; prints best and median per round.
// `--candidates DIR` also measures re2-wasm and re2 (native) from DIR/node_modules,
// for the comparison recorded in docs/policies.md (they are not dependencies).
//
//   npm run build && node bench/regex-engine.mjs [--rounds 7] [--candidates /tmp/re2cmp]
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Environment } from '@marcbachmann/cel-js';
import { RE2JS } from 're2js';
import { compileExpression, ExpressionInput } from '../dist/authz/expressions.js';

const { values: opts } = parseArgs({
  options: { rounds: { type: 'string', default: '7' }, candidates: { type: 'string' } },
});
const ROUNDS = Number(opts.rounds);

// The most expression_budget_ms allows: a bench on a shared machine must not stop at a
// scheduling pause (the budget is wall time).
const BUDGET_MS = 1000;
const HANDLE = '^[a-z0-9]+[a-z0-9._-]*[a-z0-9]+$';
/** Our kinds of expressions: [CEL source, pattern, value the pattern sees]. */
const CASES = [
  [`request.headers['x-handle'].matches('${HANDLE}')`, HANDLE, 'alice.smith'],
  ["claims.email.matches('^[^@]+@example\\\\.com$')", '^[^@]+@example\\.com$', 'alice@example.com'],
  ["request.path.matches('^/api/v[0-9]+/orders')", '^/api/v[0-9]+/orders', '/api/v2/orders/17'],
  ["'admin' in scopes && claims.org.id.matches('^o[0-9]{1,6}$')", '^o[0-9]{1,6}$', 'o1234'],
];

const values = {
  handle: 'alice.smith',
  email: 'alice@example.com',
  path: '/api/v2/orders/17',
  org: 'o1234',
};
const claims = Object.assign(Object.create(null), {
  sub: 'alice',
  email: values.email,
  org: { id: values.org },
});
const headers = Object.assign(Object.create(null), { 'x-handle': values.handle, 'user-agent': 'bench' });
const authRequest = {
  method: 'GET',
  rawPath: values.path,
  host: 'api.example.com',
  headers,
  contextExtensions: Object.create(null),
};
const principal = {
  issuer: 'corp',
  sub: 'alice',
  claims,
  scopes: new Set(['read', 'admin']),
  scope: 'read admin',
  cacheKey: 'bench',
};

// The library's environment, with its built-in (JS RegExp) matches().
const plain = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false });
const plainActivation = {
  claims,
  scopes: ['read', 'admin'],
  request: { method: 'GET', path: values.path, host: 'api.example.com', headers },
};

function perOp(fn, n) {
  const start = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  return ((performance.now() - start) * 1e6) / n; // ns
}

function summary(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { best: s[0], median: s[Math.floor(s.length / 2)] };
}

const fmt = (ns) => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : `${ns.toFixed(0)} ns`);

console.log(`node ${process.version}, ${ROUNDS} rounds`);

// Engine level.
console.log('\nengine: one test() call on a typical value (best / median of rounds)');
const engines = {
  'JS RegExp': (p) => {
    const r = new RegExp(p);
    return (s) => r.test(s);
  },
  're2js (used)': (p) => {
    const r = RE2JS.compile(p);
    return (s) => r.test(s);
  },
};
if (opts.candidates) {
  const require = createRequire(join(opts.candidates, 'node_modules', 'x.js'));
  try {
    const { RE2 } = require('re2-wasm');
    engines['re2-wasm'] = (p) => {
      const r = new RE2(p, 'u');
      return (s) => r.test(s);
    };
  } catch (err) {
    console.log(`  (re2-wasm not loaded: ${err.message.split('\n')[0]})`);
  }
  try {
    const RE2 = require('re2');
    engines['re2 (native)'] = (p) => {
      const r = new RE2(p, 'u');
      return (s) => r.test(s);
    };
  } catch (err) {
    console.log(`  (re2 not loaded: ${err.message.split('\n')[0]})`);
  }
}
for (const [, pattern, value] of CASES) {
  const compiled = Object.entries(engines).map(([name, make]) => {
    const t0 = performance.now();
    const test = make(pattern);
    const compileUs = (performance.now() - t0) * 1000;
    return { name, test, compileUs, samples: [] };
  });
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? compiled : [...compiled].reverse();
    for (const e of order) {
      e.test(value);
      e.samples.push(perOp(() => e.test(value), 100_000));
    }
  }
  console.log(`  ${pattern} on ${JSON.stringify(value)}`);
  for (const e of compiled) {
    const { best, median } = summary(e.samples);
    console.log(
      `    ${e.name.padEnd(14)} ${fmt(best).padStart(8)} / ${fmt(median).padStart(8)}   (first compile ${e.compileUs.toFixed(0)} µs)`,
    );
  }
}

// Expression level.
console.log(
  '\nexpression: one evaluation (best / median of rounds); ours builds a fresh request input each time',
);
const ratios = [];
for (const [source] of CASES) {
  const js = plain.parse(source);
  const problems = [];
  const ours = compileExpression(source, 'bench', 'value', problems);
  if (!ours) throw new Error(problems.join('\n'));
  const a = js(plainActivation);
  const b = ours.evaluate(
    new ExpressionInput(authRequest, values.path, principal, 1_700_000_000, undefined, BUDGET_MS),
  );
  if (a !== true || b !== true) throw new Error(`${source}: ${a} / ${b}`);
  const jsSamples = [];
  const oursSamples = [];
  for (let r = 0; r < ROUNDS; r++) {
    const runJs = () => jsSamples.push(perOp(() => js(plainActivation), 50_000));
    const runOurs = () =>
      oursSamples.push(
        perOp(
          () =>
            ours.evaluate(
              new ExpressionInput(authRequest, values.path, principal, 1_700_000_000, undefined, BUDGET_MS),
            ),
          50_000,
        ),
      );
    if (r % 2 === 0) {
      runJs();
      runOurs();
    } else {
      runOurs();
      runJs();
    }
  }
  const j = summary(jsSamples);
  const o = summary(oursSamples);
  ratios.push(o.median / j.median);
  console.log(`  ${source}`);
  console.log(`    library (JS RegExp) ${fmt(j.best).padStart(8)} / ${fmt(j.median).padStart(8)}`);
  console.log(
    `    ours (RE2)          ${fmt(o.best).padStart(8)} / ${fmt(o.median).padStart(8)}   ours/library (medians) ${(o.median / j.median).toFixed(2)}`,
  );
}

// Attack.
console.log("\nattack: one call on 'aaa…!' (best of 3)");
for (const pattern of [HANDLE, '(a+)+$', '^(a|aa)*$']) {
  for (const [name, make] of Object.entries(engines)) {
    const test = make(pattern);
    const backtracks = name === 'JS RegExp';
    // Exponential patterns are measured on short inputs; the cubic one on 500 characters.
    const n = backtracks ? (pattern === HANDLE ? 500 : 24) : 3000;
    const input = 'a'.repeat(n) + '!';
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      test(input);
      best = Math.min(best, performance.now() - t);
    }
    console.log(
      `  ${pattern.padEnd(34)} ${name.padEnd(14)} ${String(n + 1).padStart(5)} chars: ${best.toFixed(3)} ms`,
    );
  }
}
