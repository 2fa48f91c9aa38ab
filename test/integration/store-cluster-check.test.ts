// Check on the real gRPC server with the token store on a Redis Cluster: the master
// holding a revocation dies → Check answers 503 (never allow) → the replica takes over →
// the revocation is enforced again, with no restart of the service.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestService, type Decision } from '../helpers/harness.js';
import { createSelfSignedCertificate, generateEcKeyPair, generateRsaKeyPair } from '../helpers/keys.js';
import { startRedisCluster, redisClusterSkipReason } from '../helpers/redis-cluster.js';
import { uniquePrefix } from '../helpers/redis.js';
import { sleep } from '../helpers/wait.js';
import { clientAssertion } from '../helpers/tokens.js';

const ISSUER = 'https://authz.example.com';
const AUD = 'https://authz.example.com/oauth2/token';
const CLIENT = 'SampleConfidentialApp';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const cluster = await startRedisCluster();
if (!cluster)
  console.warn(`[redis-cluster] SKIPPED: Check on a Redis Cluster store — ${redisClusterSkipReason}`);
const dir = mkdtempSync(join(tmpdir(), 'store-cluster-check-'));
afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!cluster)('Check with the token store on a Redis Cluster', () => {
  it('a revoked JWT is never allowed while the master holding its revocation is down, and is refused again after the failover', async () => {
    const clientKey = generateRsaKeyPair({ kid: 'client-1' });
    writeFileSync(join(dir, 'client.crt'), createSelfSignedCertificate(clientKey, { subject: CLIENT }).pem);
    const signing = generateEcKeyPair({ kid: 'at-1' });
    writeFileSync(join(dir, 'signing.jwk.json'), JSON.stringify(signing.privateJwk));
    const prefix = uniquePrefix('cluster-check');
    const svc = await startTestService(
      {
        default_action: 'authenticate',
        token_endpoint: {
          enabled: true,
          issuer: ISSUER,
          audience: AUD,
          access_token: { format: 'jwt', signing: { alg: 'ES256', key_file: 'signing.jwk.json' } },
          clients: [{ client_id: CLIENT, certificate_file: 'client.crt', scopes: ['read'] }],
        },
        store: { type: 'redis', redis: { cluster: cluster!.seeds }, key_prefix: prefix },
      },
      { baseDir: dir, logLevel: 'info' },
    );
    const assertion = () => clientAssertion(clientKey, CLIENT, AUD);
    const post = async (path: string, form: Record<string, string>) => {
      const res = await fetch(`${svc.httpUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form).toString(),
      });
      return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, any> };
    };
    try {
      for (let i = 0; i < 100 && (await fetch(`${svc.httpUrl}/readyz`)).status !== 200; i++) await sleep(50);
      const issued = await post('/oauth2/token', { grant_type: JWT_BEARER, assertion: await assertion() });
      expect(issued.status, JSON.stringify(issued.json)).toBe(200);
      const token = issued.json.access_token as string;
      expect((await svc.check({ token })).decision).toBe('allow');
      const revoked = await post('/oauth2/revoke', {
        token,
        client_assertion_type: CLIENT_ASSERTION_TYPE,
        client_assertion: await assertion(),
      });
      expect(revoked.status).toBe(200);
      const denied = (d: Decision) => d.decision === 'deny' && d.reason === 'token_revoked';
      for (let i = 0; i < 30 && !denied(await svc.check({ token })); i++) await sleep(100);
      expect(denied(await svc.check({ token }))).toBe(true);

      const key = `${prefix}jti:{${decodeJwt(token).jti as string}}`;
      expect(await cluster!.waitReplicated(key, 5000)).toBe(true);
      await cluster!.kill(await cluster!.masterFor(key));

      const seen = new Map<string, number>();
      let recovered = false;
      const t0 = Date.now();
      while (Date.now() - t0 < 20_000) {
        const started = Date.now();
        const d = await svc.check({ token });
        // Bounded: one Check never waits long on a dead master.
        expect(Date.now() - started).toBeLessThan(1500);
        expect(d.decision, JSON.stringify(d)).toBe('deny');
        const what = `${d.http_status} ${d.reason}`;
        expect(['401 token_revoked', '503 store_unavailable']).toContain(what);
        seen.set(what, (seen.get(what) ?? 0) + 1);
        if (what === '401 token_revoked' && seen.has('503 store_unavailable')) {
          recovered = true;
          break;
        }
        await sleep(100);
      }
      expect(seen.get('503 store_unavailable')).toBeGreaterThan(0);
      expect(recovered).toBe(true);
      // A fresh token is issued and allowed through the promoted replica, same service.
      const again = await post('/oauth2/token', { grant_type: JWT_BEARER, assertion: await assertion() });
      expect(again.status).toBe(200);
      expect((await svc.check({ token: again.json.access_token as string })).decision).toBe('allow');
    } finally {
      await svc.close();
    }
  }, 40_000);
});
