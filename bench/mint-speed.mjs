#!/usr/bin/env node
// Downstream-token minting speed (docs/upstream.md "What upstream services receive"), in process, one core, sequential.
//
//   npm run build && node bench/mint-speed.mjs [--duration 1]
//
// For every JWS alg: tokens/s of createUpstreamTokenMinter(...).mint() with
// cache: false (every call signs), then ES256 with cache: true and the same
// principal (every call after the first is a reuse hit), one nested JWT row, and
// RS256 / ES256 signature verification (dist/authn/jws.js verifySignature) for
// comparison. Keys are generated per run in a temp dir and removed afterwards.
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseCompactJws, verifySignature } from '../dist/authn/jws.js';
import { JWS_ALGORITHMS } from '../dist/config/schema.js';
import { createLogger } from '../dist/observability/logger.js';
import { Metrics } from '../dist/observability/metrics.js';
import { createUpstreamTokenMinter } from '../dist/upstream/token-minter.js';

const { values: opts } = parseArgs({
  options: { duration: { type: 'string', default: '1' } },
  strict: true,
});
const DURATION_MS = Number(opts.duration) * 1000;
if (!(DURATION_MS > 0)) {
  console.error('--duration must be a positive number of seconds');
  process.exit(2);
}
const WARMUP_MS = Math.min(200, DURATION_MS / 5);

const ALGS = JWS_ALGORITHMS;

const dir = mkdtempSync(join(tmpdir(), 'mint-speed-'));
const logger = createLogger('error', { write() {} });
const metrics = new Metrics({ processMetrics: false });
const ctx = { baseDir: dir, logger, metrics };

function privateKeyFor(alg) {
  if (alg.startsWith('RS') || alg.startsWith('PS'))
    return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  if (alg === 'ES256') return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  if (alg === 'ES384') return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  if (alg === 'ES512') return generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
  return generateKeyPairSync('ed25519').privateKey;
}

/** Writes a key file for alg; returns the `signing` section and the public key (asymmetric). */
function signingFor(alg) {
  if (alg.startsWith('HS')) {
    const secret = randomBytes(Number(alg.slice(2)) / 8);
    writeFileSync(join(dir, `${alg}.secret`), Buffer.concat([secret, Buffer.from('\n')]));
    return { signing: { alg, secret_file: `${alg}.secret`, previous_key_files: [] } };
  }
  const key = privateKeyFor(alg);
  writeFileSync(join(dir, `${alg}.jwk.json`), JSON.stringify({ ...key.export({ format: 'jwk' }), kid: alg }));
  return {
    signing: { alg, key_file: `${alg}.jwk.json`, previous_key_files: [] },
    publicKey: createPublicKey(key),
  };
}

function tokenConfig(over) {
  return {
    header: 'x-jwt-assertion',
    issuer: 'https://authz.internal',
    audiences: ['backend'],
    ttl_seconds: 300,
    jti: true,
    copy_claims: ['scope', 'email', 'realm_access.roles'],
    claims: { env: 'prod' },
    cache: false,
    cache_max_entries: 10000,
    ...over,
  };
}

function principal(cacheKey) {
  const claims = Object.assign(Object.create(null), {
    sub: 'alice',
    scope: 'read write',
    email: 'alice@example.com',
    realm_access: { roles: ['eng', 'ops'] },
  });
  return {
    issuer: 'corp-idp',
    sub: 'alice',
    scopes: new Set(['read', 'write']),
    scope: 'read write',
    claims,
    exp: Math.floor(Date.now() / 1000) + 3600,
    cacheKey,
  };
}

/** Runs `op` sequentially for DURATION_MS after a warm-up; ops/s and µs/op (`total` counts the warm-up too). */
async function measure(op) {
  let warm = 0;
  const warmEnd = performance.now() + WARMUP_MS;
  for (; performance.now() < warmEnd; warm++) await op();
  let n = 0;
  const t0 = performance.now();
  const end = t0 + DURATION_MS;
  let now = t0;
  while (now < end) {
    // Check the clock every few ops, so fast ops are not dominated by performance.now().
    for (let i = 0; i < 16; i++) await op();
    n += 16;
    now = performance.now();
  }
  const seconds = (now - t0) / 1000;
  return { n, total: warm + n, perSecond: n / seconds, usPerOp: (seconds * 1e6) / n };
}

const rows = [];
const record = (what, mode, r) => rows.push({ what, mode, ...r });

try {
  const keys = new Map();
  for (const alg of ALGS) {
    const { signing, publicKey } = signingFor(alg);
    keys.set(alg, { signing, publicKey });
    const minter = await createUpstreamTokenMinter(tokenConfig({ signing }), ctx);
    let i = 0;
    const r = await measure(() => minter.mint(principal(`distinct-${i++}`), undefined));
    record(`mint ${alg}`, 'cache: false', r);
    minter.close();
  }

  {
    const { signing } = keys.get('ES256');
    const minter = await createUpstreamTokenMinter(tokenConfig({ signing, cache: true }), ctx);
    const p = principal('same-incoming-token');
    const hits0 = (await metrics.cacheHitsTotal.get()).values.find((v) => v.labels.cache === 'minted_token');
    const r = await measure(() => minter.mint(p, undefined));
    const hits1 = (await metrics.cacheHitsTotal.get()).values.find((v) => v.labels.cache === 'minted_token');
    const hits = (hits1?.value ?? 0) - (hits0?.value ?? 0);
    record('mint ES256, reuse', `cache: true, ${((100 * hits) / r.total).toFixed(2)}% hits`, r);
    minter.close();
  }

  {
    const { signing } = keys.get('ES256');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'backend.pub.pem'), rsa.publicKey.export({ format: 'pem', type: 'spki' }));
    const encryption = { alg: 'RSA-OAEP-256', enc: 'A256GCM', key_file: 'backend.pub.pem' };
    const minter = await createUpstreamTokenMinter(tokenConfig({ signing, encryption }), ctx);
    let i = 0;
    const r = await measure(() => minter.mint(principal(`nested-${i++}`), undefined));
    record('mint ES256 + RSA-OAEP-256/A256GCM', 'cache: false (nested JWT)', r);
    minter.close();
  }

  for (const alg of ['RS256', 'ES256']) {
    const { signing, publicKey } = keys.get(alg);
    const minter = await createUpstreamTokenMinter(tokenConfig({ signing }), ctx);
    const parsed = parseCompactJws(await minter.mint(principal('verify'), undefined), 16384);
    if ('kind' in parsed) throw new Error(`minted ${alg} token does not parse: ${parsed.reason}`);
    if (!verifySignature(alg, publicKey, parsed.signingInput, parsed.signature))
      throw new Error(`minted ${alg} token does not verify`);
    const r = await measure(() => verifySignature(alg, publicKey, parsed.signingInput, parsed.signature));
    record(`verify ${alg}`, 'authn/jws.js verifySignature', r);
    minter.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const table = [
  ['operation', 'mode', 'ops/s', 'µs/op'],
  ...rows.map((r) => [r.what, r.mode, fmt(r.perSecond), fmt(r.usPerOp, 1)]),
];
const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
const line = (row) =>
  `| ${row.map((cell, c) => (c >= 2 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join(' | ')} |`;
console.log(`node ${process.version}, ${DURATION_MS / 1000} s per row, sequential, one core`);
console.log(line(table[0]));
console.log(`| ${widths.map((w, c) => (c >= 2 ? '-'.repeat(w - 1) + ':' : '-'.repeat(w))).join(' | ')} |`);
for (const row of table.slice(1)) console.log(line(row));
