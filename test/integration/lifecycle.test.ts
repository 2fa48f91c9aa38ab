// docs/operations.md "Running it" and "Operations": gRPC health follows key loading and shutdown; SIGTERM-style shutdown
// turns health NOT_SERVING first and still answers the checks already in flight.
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';

const ISS = 'https://idp.example.com';

function healthOf(address: string): Promise<string> {
  const Client = grpc.makeGenericClientConstructor(healthService, 'Health');
  const client = new Client(address, grpc.credentials.createInsecure()) as any;
  return new Promise((resolve, reject) =>
    client.check({ service: '' }, { deadline: Date.now() + 2000 }, (err: Error | null, res: any) => {
      client.close();
      if (err) reject(err);
      else resolve(res.status);
    }),
  );
}

let svc: TestService | undefined;
let jwks: JwksServer | undefined;
afterEach(async () => {
  await svc?.close().catch(() => undefined);
  await jwks?.close();
  svc = undefined;
  jwks = undefined;
});

describe('health and graceful shutdown', () => {
  it('SERVING once keys loaded; on shutdown NOT_SERVING first, and the in-flight check is still answered', async () => {
    const key = generateEcKeyPair({ kid: 'k1' });
    jwks = await startJwksServer({ jwks: makeJwks(key) });
    svc = await startTestService({
      issuers: [
        {
          name: 'corp',
          issuer: ISS,
          audiences: ['api'],
          jwks_uri: jwks.url,
          jwks_cache: { max_age_seconds: 60, cooldown_seconds: 0, timeout_ms: 1500, max_stale_seconds: 600 },
        },
      ],
    });
    expect(await healthOf(svc.grpcAddress)).toBe('SERVING');

    // A token with an unknown kid makes the check wait for a JWKS refetch that hangs.
    const other = generateEcKeyPair({ kid: 'k-unknown' });
    const slowToken = await new SignJWT({ sub: 'u' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k-unknown' })
      .setIssuer(ISS)
      .setAudience('api')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(other.privateKey);
    jwks.setMode('slow', { delayMs: 700 });
    const inFlight = svc.check({ token: slowToken, timeoutMs: 5000 });
    // Real time: the check must reach the real server and start its hanging refetch before shutdown.
    await new Promise((r) => setTimeout(r, 150));

    const stopping = svc.service.shutdown(5);
    // Health turns NOT_SERVING before the in-flight check has finished.
    expect(await healthOf(svc.grpcAddress)).toBe('NOT_SERVING');
    const ready = await fetch(`${svc.httpUrl}/readyz`);
    expect(ready.status).toBe(503);
    const decision = await inFlight;
    expect(decision).toMatchObject({ decision: 'deny', grpc_status: 16, reason: 'key_not_found' });
    await stopping;
    svc = undefined;
  });

  describe('drain delay (server.drain_delay_seconds, passed by `serve` on SIGTERM)', () => {
    const config = () => ({
      issuers: [
        {
          name: 'corp',
          issuer: ISS,
          audiences: ['api'],
          jwks: makeJwks(generateEcKeyPair({ kid: 'k1' })),
        },
      ],
    });

    it('after a health probe: NOT_SERVING at once, checks still answered during the delay, then closed', async () => {
      svc = await startTestService(config());
      expect(await healthOf(svc.grpcAddress)).toBe('SERVING'); // a health checker is watching
      const started = Date.now();
      const stopping = svc.service.shutdown(1, 2);
      expect(await healthOf(svc.grpcAddress)).toBe('NOT_SERVING');
      await new Promise((r) => setTimeout(r, 1000));
      // a second into the drain, a new Check is still answered (a decision, not UNAVAILABLE)
      expect(await svc.check({ path: '/x' })).toMatchObject({ decision: 'deny', http_status: 401 });
      await stopping;
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
      await expect(svc.check({ path: '/x', timeoutMs: 1000 })).rejects.toThrow();
      svc = undefined;
    });

    it('a readiness probe (GET /readyz) counts as a health checker too', async () => {
      svc = await startTestService(config());
      expect((await fetch(`${svc.httpUrl}/readyz`)).status).toBe(200);
      const started = Date.now();
      await svc.service.shutdown(1, 1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
      svc = undefined;
    });

    it('never probed (nobody would see NOT_SERVING, e.g. Ctrl-C on a local run): no delay', async () => {
      svc = await startTestService(config());
      const started = Date.now();
      await svc.service.shutdown(1, 30);
      expect(Date.now() - started).toBeLessThan(10_000);
      svc = undefined;
    });
  });
});
