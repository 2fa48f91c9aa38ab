import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { importPKCS8, SignJWT } from 'jose';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigObject } from '../../src/config/load.js';
import { createTokenService, registerOAuthRoutes } from '../../src/oauth/index.js';
import { Metrics } from '../../src/observability/metrics.js';
import { MemoryStore, RedisStore, type Store } from '../../src/store/index.js';
import { getRedisUrl, uniquePrefix } from '../helpers/redis.js';

// Token issuance throughput over HTTP (jwt / opaque × memory / redis). Opt-in:
//   OAUTH_BENCH=1 npx vitest run test/integration/oauth-bench.test.ts
// Assertions are signed before the clock starts; requests run 16 at a time.

const ENABLED = process.env.OAUTH_BENCH === '1';
const N = Number(process.env.OAUTH_BENCH_N ?? 2000);
const CONCURRENCY = 16;
const AUD = 'https://authz.example.com/oauth2/token';

describe.skipIf(!ENABLED)('token issuance throughput', async () => {
  const redis = ENABLED ? await getRedisUrl() : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'oauth-bench-'));
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await redis?.stop();
  });

  for (const backend of ['memory', 'redis'] as const) {
    for (const format of ['jwt', 'opaque'] as const) {
      it.skipIf(backend === 'redis' && !redis)(`${format} × ${backend}`, async () => {
        execFileSync(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'rsa:2048',
            '-nodes',
            '-keyout',
            'c.key',
            '-out',
            'c.crt',
            '-days',
            '2',
            '-subj',
            '/CN=c',
          ],
          { cwd: dir, stdio: 'ignore' },
        );
        const key = await importPKCS8(readFileSync(join(dir, 'c.key'), 'utf8'), 'RS256');
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
        const store: Store =
          backend === 'memory'
            ? new MemoryStore()
            : new RedisStore({ url: redis!.url, keyPrefix: uniquePrefix('bench') });
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
        const addr = app.server.address();
        const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/oauth2/token`;
        const now = Math.floor(Date.now() / 1000);
        const bodies: string[] = [];
        const WARMUP = 300;
        for (let i = 0; i < N + WARMUP; i++) {
          const a = await new SignJWT({
            iss: 'c',
            sub: 'c',
            aud: AUD,
            iat: now,
            exp: now + 280,
            jti: randomUUID(),
          })
            .setProtectedHeader({ alg: 'RS256' })
            .sign(key);
          bodies.push(
            new URLSearchParams({
              grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
              assertion: a,
            }).toString(),
          );
        }
        let next = 0;
        let ok = 0;
        const run = (until: number) =>
          Promise.all(
            Array.from({ length: CONCURRENCY }, async () => {
              while (next < until) {
                const body = bodies[next++]!;
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
        expect(ok).toBe(N);
        await app.close();
        await svc.close();
        await store.close();
      });
    }
  }
});
