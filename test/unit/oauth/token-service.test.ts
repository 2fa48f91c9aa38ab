import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompiledIssuer } from '../../../src/authn/verify.js';
import { loadConfigObject } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/errors.js';
import { createTokenService } from '../../../src/oauth/index.js';
import { EMPTY_KEY_SET } from '../../../src/authn/keys/jwk.js';
import { staticKeySource } from '../../../src/oauth/client-keys.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { MemoryStore } from '../../../src/store/index.js';

// Config problems of the token endpoint are ConfigErrors, each prefixed with its config path.

let dir: string;
const logger = pino({ level: 'silent' });
const store = new MemoryStore();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oauth-cfg-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ok.key',
    '-out',
    'ok.crt',
    '-days',
    '2',
    '-subj',
    '/CN=ok',
  ]);
  // An expired certificate (openssl ca lets us pick the validity dates).
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '01\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n',
  );
  run(['req', '-new', '-key', 'ok.key', '-subj', '/CN=old', '-out', 'old.csr']);
  run([
    'ca',
    '-batch',
    '-selfsign',
    '-config',
    'ca.cnf',
    '-keyfile',
    'ok.key',
    '-in',
    'old.csr',
    '-out',
    'expired.crt',
    '-startdate',
    '20200101000000Z',
    '-enddate',
    '20200102000000Z',
  ]);
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:1024',
    '-nodes',
    '-keyout',
    'weak.key',
    '-out',
    'weak.crt',
    '-days',
    '2',
    '-subj',
    '/CN=weak',
  ]);
  writeFileSync(join(dir, 'not-a-cert.crt'), 'hello');
  writeFileSync(join(dir, 'empty.secret'), '\n');
  writeFileSync(join(dir, 'ok.secret'), 'secret');
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  writeFileSync(
    join(dir, 'client-jwks.json'),
    JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'c1' }] }),
  );
  writeFileSync(join(dir, 'empty-jwks.json'), JSON.stringify({ keys: [] }));
});

afterAll(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await store.close();
});

const idp: CompiledIssuer = {
  name: 'idp',
  issuer: 'https://idp.example.com',
  audiences: new Set(['x']),
  algorithms: new Set(['ES256']),
  keySource: staticKeySource(EMPTY_KEY_SET, 'local-jwks'),
  clockSkewSeconds: 60,
  requiredClaims: [],
  maxLifetimeSeconds: 3600,
};

// The loader's own checks (grant_issuers names, our issuer reused by an issuers[] entry) are
// tested in test/unit/config/load.test.ts; here grant_issuers only need compiled issuers.
function cfg(tokenEndpoint: Record<string, unknown>) {
  const { grant_issuers: grantIssuers, ...rest } = tokenEndpoint;
  const loaded = loadConfigObject({ token_endpoint: rest }, dir, {}).config.token_endpoint;
  const names = (grantIssuers as string[] | undefined) ?? [];
  return {
    ...loaded,
    grant_issuers: names.map((issuer) => ({
      issuer,
      require_jti: true,
      require_iat: false,
      copy_claims: [],
    })),
  };
}

async function problems(
  tokenEndpoint: Record<string, unknown>,
  issuers: [string, CompiledIssuer][] = [],
): Promise<string[]> {
  try {
    const svc = await createTokenService(cfg(tokenEndpoint), {
      baseDir: dir,
      logger,
      metrics: new Metrics({ processMetrics: false }),
      store,
      issuersByName: new Map(issuers),
    });
    await svc.close();
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

const base = {
  enabled: true,
  issuer: 'https://authz.example.com',
  audience: 'https://authz.example.com/oauth2/token',
};

describe('token endpoint config errors', () => {
  it('a valid configuration builds (certificate, JWKS and secret clients; ephemeral signing key)', async () => {
    expect(
      await problems(
        {
          ...base,
          clients: [
            { client_id: 'a', certificate_file: 'ok.crt' },
            { client_id: 'b', jwks_file: 'client-jwks.json' },
            { client_id: 'c', client_secret_file: 'ok.secret' },
          ],
          grant_issuers: ['idp'],
        },
        [['idp', idp]],
      ),
    ).toEqual([]);
  });

  it('enabled without issuer or audience', async () => {
    const p = await problems({ enabled: true });
    expect(p).toContainEqual(expect.stringMatching(/^token_endpoint\.issuer: required/));
    expect(p).toContainEqual(expect.stringMatching(/^token_endpoint\.audience: required/));
  });

  it('a client with neither certificate/JWKS nor secret', async () => {
    expect(await problems({ ...base, clients: [{ client_id: 'lonely', scopes: ['read'] }] })).toEqual([
      expect.stringMatching(
        /^token_endpoint\.clients\[0\]: needs a certificate_file or jwks_file .* or a client_secret_file/,
      ),
    ]);
  });

  it('unreadable, invalid, expired or weak certificates; empty JWKS; empty secret; reserved claims', async () => {
    const p = await problems({
      ...base,
      clients: [
        { client_id: 'a', certificate_file: 'missing.crt' },
        { client_id: 'b', certificate_file: 'not-a-cert.crt' },
        { client_id: 'c', certificate_file: 'expired.crt' },
        { client_id: 'd', certificate_file: 'weak.crt' },
        { client_id: 'e', jwks_file: 'empty-jwks.json' },
        { client_id: 'f', client_secret_file: 'empty.secret' },
        { client_id: 'g', client_secret_file: 'ok.secret', token_claims: { sub: 'x' } },
        { client_id: 'h', certificate_file: 'ok.crt', jwks_file: 'client-jwks.json' },
        { client_id: 'h', client_secret_file: 'ok.secret' },
      ],
    });
    expect(p).toEqual([
      expect.stringMatching(
        /^token_endpoint\.clients\[0\]\.certificate_file: cannot read .*missing\.crt: no such file/,
      ),
      expect.stringMatching(/^token_endpoint\.clients\[1\]\.certificate_file: .* is not a PEM certificate/),
      expect.stringMatching(/^token_endpoint\.clients\[2\]\.certificate_file: the certificate in .* expired/),
      expect.stringMatching(/^token_endpoint\.clients\[3\]\.certificate_file: .*1024 bits/),
      expect.stringMatching(/^token_endpoint\.clients\[4\]\.jwks_file: .* no usable public signature key/),
      expect.stringMatching(/^token_endpoint\.clients\[5\]\.client_secret_file: the secret is empty/),
      expect.stringMatching(/^token_endpoint\.clients\[6\]\.token_claims\.sub: reserved claim/),
      expect.stringMatching(/^token_endpoint\.clients\[7\]: give either certificate_file or jwks_file/),
      expect.stringMatching(/^token_endpoint\.clients\[8\]\.client_id: duplicate client_id "h"/),
    ]);
  });

  it('an identity provider whose iss is also a client_id', async () => {
    const clash = { ...idp, issuer: 'a' };
    expect(
      await problems(
        { ...base, clients: [{ client_id: 'a', client_secret_file: 'ok.secret' }], grant_issuers: ['idp'] },
        [['idp', clash]],
      ),
    ).toEqual([
      expect.stringMatching(/^token_endpoint\.grant_issuers\[0\]: the issuer "a" is also a client_id/),
    ]);
  });

  it('signing key problems carry the access_token.signing path', async () => {
    const p = await problems({
      ...base,
      access_token: { signing: { alg: 'ES256', key_file: 'missing.jwk.json' } },
    });
    expect(p).toEqual([
      expect.stringMatching(/^token_endpoint\.access_token\.signing\.key_file: cannot read/),
    ]);
  });
});

describe('public_base_url for DPoP proofs of token requests', () => {
  const build = (publicBaseUrl: string) =>
    createTokenService(cfg(base), {
      baseDir: dir,
      logger,
      metrics: new Metrics({ processMetrics: false }),
      store,
      issuersByName: new Map(),
      publicBaseUrl,
    });

  it('must be an http(s) URL: anything else is a problem naming the field', async () => {
    for (const bad of ['login.example.com', 'ftp://login.example.com', 'https://', 'https://x.example?a=1']) {
      const err = await build(bad).then(
        (svc) => svc.close(),
        (e: unknown) => e,
      );
      expect(err, bad).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toEqual([
        'public_base_url: must be an http:// or https:// URL without query or fragment',
      ]);
    }
    await (await build('https://login.example.com/auth/')).close();
  });
});
