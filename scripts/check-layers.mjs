#!/usr/bin/env node
// Checks the dependency map of src/: each top-level folder of src/ (and main.ts) lists
// exactly the folders it may import from, and a file may import only from its own
// folder or from a folder on its list. Siblings that do not list each other stay
// independent (authz may not import authn, oauth may not import check). Also refuses
// import cycles between files, and checks that the map itself has no cycle. Exit 1 on
// any finding, each named.
//
//   node scripts/check-layers.mjs               list findings, exit 1 if any
//   node scripts/check-layers.mjs --graph       also print the map (unused entries marked)
//   node scripts/check-layers.mjs --root DIR    check DIR/src instead of this project's
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Who may import whom: today's real imports, written down. A new arrow is a design
// decision: add it here (and to docs/architecture.md) in the same change.
const ALLOWED = {
  core: [],
  observability: ['core'],
  net: ['core'],
  config: ['core', 'net', 'observability'],
  crypto: ['config', 'core', 'observability'],
  store: ['config', 'core', 'observability'],
  authn: ['config', 'core', 'crypto', 'net', 'observability', 'store'],
  authz: ['config', 'core'],
  upstream: ['authz', 'config', 'core', 'crypto', 'observability'],
  check: ['authn', 'authz', 'core', 'observability', 'store', 'upstream'],
  envoy: ['authn', 'check', 'core', 'observability'],
  oauth: ['authn', 'config', 'core', 'crypto', 'observability', 'store'],
  server: [
    'authn',
    'authz',
    'check',
    'config',
    'core',
    'crypto',
    'envoy',
    'net',
    'oauth',
    'observability',
    'store',
    'upstream',
  ],
  cli: ['authn', 'config', 'core', 'crypto', 'envoy', 'observability', 'server'],
  'main.ts': ['cli', 'core'],
};

function argValue(name) {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) {
    console.error(`check-layers: ${name} needs a value`);
    process.exit(2);
  }
  return v;
}

const root = resolve(argValue('--root') ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const src = join(root, 'src');
if (!existsSync(src)) {
  console.error(`check-layers: ${src} does not exist`);
  process.exit(2);
}
const problems = [];

// The map must itself be a DAG of known folders, or "imports point one way" means nothing.
for (const [folder, deps] of Object.entries(ALLOWED)) {
  for (const d of deps) {
    if (!(d in ALLOWED)) problems.push(`map: "${folder}" lists "${d}", which has no entry`);
    if (d === folder) problems.push(`map: "${folder}" lists itself`);
  }
}
{
  const state = new Map();
  const path = [];
  const visit = (f) => {
    state.set(f, 1);
    path.push(f);
    for (const d of ALLOWED[f] ?? []) {
      if (state.get(d) === 1)
        problems.push(`map cycle: ${path.slice(path.indexOf(d)).concat(d).join(' -> ')}`);
      else if (!state.has(d) && d in ALLOWED) visit(d);
    }
    path.pop();
    state.set(f, 2);
  };
  for (const f of Object.keys(ALLOWED)) if (!state.has(f)) visit(f);
}

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]+)\1/g;
const topOf = (file) => relative(src, file).split('/')[0];
const edges = new Map(); // file -> Set(file)
const used = new Set(); // "from -> to" folder edges seen

for (const file of walk(src)) {
  const text = readFileSync(file, 'utf8');
  const from = topOf(file);
  const allowed = ALLOWED[from];
  if (allowed === undefined)
    problems.push(`${relative(root, file)}: folder "${from}" has no entry in the map`);
  const deps = new Set();
  for (const m of text.matchAll(IMPORT)) {
    const target = join(dirname(file), m[2]).replace(/\.js$/, '.ts');
    if (!existsSync(target)) continue;
    deps.add(target);
    const to = topOf(target);
    if (to === from) continue;
    used.add(`${from} -> ${to}`);
    if (allowed !== undefined && !allowed.includes(to)) {
      problems.push(
        `${relative(root, file)} imports ${relative(root, target)}: "${from}" may not import from "${to}" (allowed: ${allowed.join(', ') || 'nothing'})`,
      );
    }
  }
  edges.set(file, deps);
}

// File-level cycles: DFS with colours.
const colour = new Map();
const stack = [];
function visit(f) {
  colour.set(f, 1);
  stack.push(f);
  for (const d of edges.get(f) ?? []) {
    if (colour.get(d) === 1) {
      const cycle = stack
        .slice(stack.indexOf(d))
        .concat(d)
        .map((x) => relative(root, x));
      problems.push(`import cycle: ${cycle.join(' -> ')}`);
    } else if (!colour.has(d)) visit(d);
  }
  stack.pop();
  colour.set(f, 2);
}
for (const f of edges.keys()) if (!colour.has(f)) visit(f);

if (process.argv.includes('--graph')) {
  console.log('folder -> folders it may import from (* = allowed, no import today)');
  for (const [folder, deps] of Object.entries(ALLOWED)) {
    const list = deps.map((d) => (used.has(`${folder} -> ${d}`) ? d : `${d}*`));
    console.log(`${folder.padEnd(14)}-> ${list.join(', ') || '(nothing)'}`);
  }
}
if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`check-layers: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`check-layers: ${edges.size} files, every import on the dependency map, no cycles`);
