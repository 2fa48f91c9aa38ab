#!/usr/bin/env node
// Checks that src/ imports point down only: each top-level folder of src/ has a
// layer, and a file may import only from its own folder or from folders of a
// lower layer. Also refuses import cycles between files. Exit 1 on any finding.
//
//   node scripts/check-layers.mjs          list findings, exit 1 if any
//   node scripts/check-layers.mjs --graph  also print the folder graph
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// Bottom first. A folder may import from folders listed before it.
const LAYERS = [
  ['core'],
  ['observability'],
  ['net'],
  ['config'],
  ['crypto', 'store'],
  ['authn'],
  ['authz'],
  ['upstream'],
  ['check'],
  ['envoy'],
  ['oauth'],
  ['server'],
  ['cli'],
  ['main.ts'],
];
const rank = new Map();
LAYERS.forEach((names, i) => names.forEach((n) => rank.set(n, i)));

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]+)\1/g;
const topOf = (file) => relative(src, file).split('/')[0];
const problems = [];
const edges = new Map(); // file -> Set(file)
const folderEdges = new Set();

for (const file of walk(src)) {
  const text = readFileSync(file, 'utf8');
  const from = topOf(file);
  if (!rank.has(from)) problems.push(`${relative(root, file)}: folder "${from}" has no layer`);
  const deps = new Set();
  for (const m of text.matchAll(IMPORT)) {
    let target = join(dirname(file), m[2]).replace(/\.js$/, '.ts');
    if (!existsSync(target)) continue;
    deps.add(target);
    const to = topOf(target);
    if (to === from) continue;
    folderEdges.add(`${from} -> ${to}`);
    if ((rank.get(to) ?? Infinity) >= (rank.get(from) ?? -1)) {
      problems.push(`${relative(root, file)} imports ${relative(root, target)}: "${from}" may not import from "${to}" (same or higher layer)`);
    }
  }
  edges.set(file, deps);
}

// File-level cycles (Tarjan would be overkill: DFS with colours).
const colour = new Map();
const stack = [];
function visit(f) {
  colour.set(f, 1);
  stack.push(f);
  for (const d of edges.get(f) ?? []) {
    if (colour.get(d) === 1) {
      const cycle = stack.slice(stack.indexOf(d)).concat(d).map((x) => relative(root, x));
      problems.push(`import cycle: ${cycle.join(' -> ')}`);
    } else if (!colour.has(d)) visit(d);
  }
  stack.pop();
  colour.set(f, 2);
}
for (const f of edges.keys()) if (!colour.has(f)) visit(f);

if (process.argv.includes('--graph')) for (const e of [...folderEdges].sort()) console.log(e);
if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`check-layers: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`check-layers: ${edges.size} files, imports point down only, no cycles`);
void posix;
