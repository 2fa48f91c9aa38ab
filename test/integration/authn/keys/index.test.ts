import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeySource, type KeySource } from '../../../../src/authn/keys/index.js';
import type { IssuerConfig } from '../../../../src/config/types.js';
import { Metrics } from '../../../../src/observability/metrics.js';
import { startJwksServer, type JwksServer } from '../../../helpers/jwks-server.js';
import { createSelfSignedCertificate, generateRsaKeyPair, makeJwks } from '../../../helpers/keys.js';
import { captureLogger } from '../../../helpers/logger.js';

const k1 = generateRsaKeyPair({ kid: 'k1' });
let server: JwksServer;
let dir: string;
const sources: KeySource[] = [];

beforeAll(async () => {
  server = await startJwksServer({ jwks: makeJwks(k1) });
  dir = mkdtempSync(join(tmpdir(), 'keysrc-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(makeJwks(k1)));
  writeFileSync(join(dir, 'shared.secret'), 'x'.repeat(32) + '\n');
  writeFileSync(join(dir, 'gw.pem'), createSelfSignedCertificate(k1).pem);
});
afterAll(async () => {
  for (const s of sources) s.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function issuer(extra: Partial<IssuerConfig>): IssuerConfig {
  return {
    name: 'idp',
    issuer: server.baseUrl,
    audiences: ['api'],
    insecure_http: false,
    jwks_cache: { max_age_seconds: 600, cooldown_seconds: 30, timeout_ms: 1000, max_stale_seconds: 86400 },
    clock_skew_seconds: 60,
    required_claims: [],
    max_lifetime_seconds: 86400,
    claim_mappings: [],
    sender_constraint: { mtls: 'off', dpop: 'off' },
    ...extra,
  };
}

describe('createKeySource', () => {
  const ctx = () => ({
    baseDir: dir,
    logger: captureLogger().logger,
    metrics: new Metrics({ processMetrics: false }),
  });

  it.each([
    ['jwks_uri', () => ({ jwks_uri: server.url }), 'remote-jwks', 'k1'],
    ['discovery_uri', () => ({ discovery_uri: server.discoveryUrl }), 'discovery', 'k1'],
    ['jwks', () => ({ jwks: makeJwks(k1) }), 'local-jwks', 'k1'],
    ['jwks_file', () => ({ jwks_file: './jwks.json' }), 'jwks-file', 'k1'],
    ['truststore', () => ({ truststore: { path: '.', default_alias: 'gw' } }), 'truststore', 'gw'],
    ['secret_file', () => ({ secret_file: 'shared.secret' }), 'secret', undefined],
  ] as const)('%s → %s', async (_label, cfg, kind, kid) => {
    const src = createKeySource(issuer(cfg()), ctx());
    sources.push(src);
    expect(src.kind).toBe(kind);
    await src.start();
    expect(src.status()).toMatchObject({ state: 'ready', keys: 1, loaded: true });
    expect(src.current()!.keys[0]!.kid).toBe(kid);
  });

  it('throws when no key source is configured', () => {
    expect(() => createKeySource(issuer({}), ctx())).toThrow(/no key source/);
  });
});
