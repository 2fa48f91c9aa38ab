#!/usr/bin/env node
// Token issuance throughput over HTTP (docs/token-endpoint.md): POST /oauth2/token with the
// jwt-bearer grant, jwt / opaque access tokens × memory / Redis store.
//
//   npm run build && node bench/oauth.mjs [--requests 2000]
//   REDIS_URL=redis://127.0.0.1:6379 node bench/oauth.mjs     (the Redis rows need a Redis)
//
// Client assertions are signed before the clock starts; 300 warm-up requests, then
// --requests timed ones, 16 at a time. The client certificate comes from openssl, in a temp
// dir removed afterwards. Exits 1 when a request is not answered 200.
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { URLSearchParams } from 'node:url';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import { importPKCS8, SignJWT } from 'jose';
import pino from 'pino';
import { loadConfigObject } from '../dist/config/load.js';
import { createTokenService, registerOAuthRoutes } from '../dist/oauth/index.js';
import { Metrics } from '../dist/observability/metrics.js';
import { MemoryStore, RedisStore } from '../dist/store/index.js';

const { values: opts } = parseArgs({
  options: { requests: { type: 'string', default: '2000' } },
  strict: true,
});
const N = Number(opts.requests);
if (!(N > 0)) {
  console.error('--requests must be a positive number');
  process.exit(2);
}
const CONCURRENCY = 16;
const WARMUP = 300;
const AUD = 'https://authz.example.com/oauth2/token';
const REDIS_URL = process.env.REDIS_URL;

const dir = mkdtempSync(join(tmpdir(), 'oauth-bench-'));
let failed = false;
try {
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'c.key', '-out', 'c.crt', '-days', '2', '-subj', '/CN=c'],
    { cwd: dir, stdio: 'ignore' },
  );
  const key = await importPKCS8(readFileSync(join(dir, 'c.key'), 'utf8'), 'RS256');
  for (const backend of ['memory', 'redis']) {
    if (backend === 'redis' && !REDIS_URL) {
      console.log('[bench] token issuance × redis: skipped (set REDIS_URL)');
      continue;
    }
    for (const format of ['jwt', 'opaque']) {
      const ok = await issuance(key, format, backend);
      if (ok !== N) {
        console.error(`[bench] token issuance ${format} × ${backend}: ${N - ok} of ${N} requests not answered 200`);
        failed = true;
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

/** One row: returns how many timed requests were answered 200. */
async function issuance(key, format, backend) {
  const cfg = loadConfigObject(
    {
      token_endpoint: {
        enabled: true,
        issuer: 'https://authz.example.com',
        audience: AUD,
        access_token: { format },
        clients: [{ client_id: 'c', certificate_file: 'c.crt', scopes: ['read'] }],
      },
    },
    dir,
    {},
  ).config.token_endpoint;
  const store =
    backend === 'memory'
      ? new MemoryStore()
      : new RedisStore({ url: REDIS_URL, keyPrefix: `bench:${randomBytes(4).toString('hex')}:` });
  if (store instanceof RedisStore) await store.waitUntilReady(5000);
  const svc = await createTokenService(cfg, {
    baseDir: dir,
    logger: pino({ level: 'silent' }),
    metrics: new Metrics({ processMetrics: false }),
    store,
    issuersByName: new Map(),
  });
  const app = Fastify({ logger: false });
  registerOAuthRoutes(app, () => svc);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${app.server.address().port}/oauth2/token`;
  const now = Math.floor(Date.now() / 1000);
  const bodies = [];
  for (let i = 0; i < N + WARMUP; i++) {
    const a = await new SignJWT({ iss: 'c', sub: 'c', aud: AUD, iat: now, exp: now + 280, jti: randomUUID() })
      .setProtectedHeader({ alg: 'RS256' })
      .sign(key);
    bodies.push(
      new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: a }).toString(),
    );
  }
  let next = 0;
  let ok = 0;
  const run = (until) =>
    Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < until) {
          const body = bodies[next++];
          const res = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body,
          });
          await res.arrayBuffer();
          if (res.status === 200) ok++;
        }
      }),
    );
  await run(WARMUP); // JIT and connection warm-up, not timed
  ok = 0;
  const t0 = performance.now();
  await run(N + WARMUP);
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `[bench] token issuance ${format} × ${backend}: ${N} requests in ${seconds.toFixed(2)} s = ${Math.round(N / seconds)}/s`,
  );
  await app.close();
  await svc.close();
  await store.close();
  return ok;
}
