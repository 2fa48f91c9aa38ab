#!/usr/bin/env node
// API key checks against repeated-token checks (docs/api-keys.md), in process, one core, sequential.
//
//   npm run build && node bench/api-key-speed.mjs [--duration 1] [--rounds 5]
//
// One runtime built from a config with an ES256 issuer (inline JWKS), an api_keys header
// source, two claim headers and an ES256 downstream token (ephemeral key). Rows: checks/s of
// CheckPipeline.check for one repeated bearer token (verified-token cache and memoised allow
// hit), for one API key (a SHA-256 and a Map lookup, then the same decision), and for unknown
// keys (denied). Rounds alternate between the rows, so machine load hits them alike; each
// row reports its median round.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT, exportJWK } from 'jose';
import { generateApiKey } from '../dist/authn/api-keys.js';
import { loadConfigObject } from '../dist/config/load.js';
import { createLogger } from '../dist/observability/logger.js';
import { Metrics } from '../dist/observability/metrics.js';
import { Runtime } from '../dist/server/runtime.js';

const { values: opts } = parseArgs({
  options: { duration: { type: 'string', default: '1' }, rounds: { type: 'string', default: '5' } },
  strict: true,
});
const DURATION_MS = Number(opts.duration) * 1000;
const ROUNDS = Number(opts.rounds);
if (!(DURATION_MS > 0) || !(ROUNDS >= 1)) {
  console.error('--duration and --rounds must be positive numbers');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'api-key-speed-'));
try {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const key = generateApiKey();
  writeFileSync(
    join(dir, 'keys.json'),
    JSON.stringify({
      keys: [{ id: 'bench', hash: key.hash, sub: 'svc', scopes: ['read'], claims: { tenant: 't' } }],
    }),
  );
  const loaded = loadConfigObject(
    {
      issuers: [{ name: 'idp', issuer: 'https://idp', audiences: ['api'], jwks: { keys: [jwk] } }],
      api_keys: [{ name: 'partners', header: 'x-api-key', keys_file: 'keys.json' }],
      upstream: {
        claim_headers: { 'x-user-id': 'sub', 'x-user-scope': 'scope' },
        token: { issuer: 'https://authz', audiences: ['backend'] },
      },
    },
    dir,
    {},
  );
  const rt = await Runtime.build(loaded, {
    logger: createLogger('error', { write() {} }),
    metrics: new Metrics({ processMetrics: false }),
  });
  await rt.start();
  const now = Math.floor(Date.now() / 1000);
  const jwt = await new SignJWT({ sub: 'alice', scope: 'read' })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
    .setIssuer('https://idp')
    .setAudience('api')
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(privateKey);
  const request = (headers) => ({
    method: 'GET',
    rawPath: '/api/orders',
    host: 'api.example.com',
    headers: Object.assign(Object.create(null), { 'x-request-id': 'r1', ...headers }),
    contextExtensions: {},
  });
  const unknown = Array.from({ length: 1000 }, () => request({ 'x-api-key': generateApiKey().key }));
  const rows = {
    'repeated bearer token': { next: () => request({ authorization: `Bearer ${jwt}` }), want: 'allow' },
    'api key': { next: () => request({ 'x-api-key': key.key }), want: 'allow' },
    'unknown api key': { next: (i) => unknown[i % unknown.length], want: 'deny' },
  };
  const results = Object.fromEntries(Object.keys(rows).map((k) => [k, []]));
  const run = async (row, ms) => {
    let n = 0;
    const end = performance.now() + ms;
    while (performance.now() < end) {
      for (let i = 0; i < 200; i++, n++) {
        const d = await rt.pipeline.check(row.next(n));
        if (d.kind !== row.want) throw new Error(`unexpected ${d.kind} (${d.reason})`);
      }
    }
    return n;
  };
  for (const row of Object.values(rows)) await run(row, 200); // warm-up
  for (let r = 0; r < ROUNDS; r++)
    for (const [name, row] of Object.entries(rows))
      results[name].push((await run(row, DURATION_MS)) / (DURATION_MS / 1000));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(results['repeated bearer token']);
  console.log('row                       checks/s   µs/check   × repeated token');
  for (const [name, xs] of Object.entries(results)) {
    const m = median(xs);
    console.log(
      `${name.padEnd(24)} ${String(Math.round(m)).padStart(9)} ${(1e6 / m).toFixed(1).padStart(10)} ${(m / base).toFixed(2).padStart(18)}`,
    );
  }
  await rt.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
