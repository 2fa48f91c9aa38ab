#!/usr/bin/env node
// Copies the Envoy ext_authz v3 protos and everything they import from the
// npm package @grpc/grpc-js-xds (deps/*) into protos/. The protos are never
// written by hand: re-run `npm run protos:vendor` after upgrading that package.
import { readFileSync, mkdirSync, copyFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
const pkgVersion = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version;
const roots = ['envoy-api', 'googleapis', 'xds', 'protoc-gen-validate'].map((d) => join(pkgDir, 'deps', d));
const entry = ['envoy/service/auth/v3/external_auth.proto'];
const outDir = join(dirname(new URL(import.meta.url).pathname), '..', 'protos');

// google/protobuf/*.proto well-known types are bundled with @grpc/proto-loader.
const isWellKnown = (p) => p.startsWith('google/protobuf/');

function locate(rel) {
  for (const root of roots) {
    const candidate = join(root, rel);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`cannot find ${rel} in @grpc/grpc-js-xds deps`);
}

const seen = new Map();
const queue = [...entry];
while (queue.length > 0) {
  const rel = queue.shift();
  if (seen.has(rel) || isWellKnown(rel)) continue;
  const abs = locate(rel);
  seen.set(rel, abs);
  const text = readFileSync(abs, 'utf8');
  for (const m of text.matchAll(/^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)";/gm)) queue.push(m[1]);
}

rmSync(outDir, { recursive: true, force: true });
for (const [rel, abs] of [...seen].sort()) {
  const dest = join(outDir, rel);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(abs, dest);
}
writeFileSync(
  join(outDir, 'SOURCE.md'),
  `# Vendored protos\n\nCopied by \`scripts/vendor-protos.mjs\` from the npm package \`@grpc/grpc-js-xds@${pkgVersion}\` (\`deps/\`).\nEntry point: \`${entry.join(', ')}\` and its transitive imports (${seen.size} files).\nDo not edit by hand; run \`npm run protos:vendor\`.\n`,
);
console.log(`vendored ${seen.size} proto files from @grpc/grpc-js-xds@${pkgVersion} into protos/`);
