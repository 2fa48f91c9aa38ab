// End to end through a real Envoy: client → envoyproxy/envoy (the shipped
// envoy/envoy.yaml) → ext_authz gRPC → this service (image built from the
// Dockerfile) → echo upstream that returns the headers it received.
//
// Needs a container engine (Docker, Podman with the Docker API, Colima, …).
// Without one the suite is skipped and says so loudly. Environment:
//   AUTHZ_E2E=off        skip even when a container engine exists
//   AUTHZ_E2E=required   fail (instead of skip) when no container engine is found (CI)
//   AUTHZ_E2E_LOGS=1     print the containers' logs after the run
import { generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT, decodeJwt } from 'jose';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GenericContainer,
  Network,
  Wait,
  getContainerRuntimeClient,
  type StartedNetwork,
  type StartedTestContainer,
} from 'testcontainers';

const ENVOY_IMAGE = 'envoyproxy/envoy:v1.31-latest';
const ECHO_IMAGE = 'node:20-alpine';
const SERVICE_IMAGE = 'envoy-jwt-authz:e2e';
const RUNTIME_PROBE_TIMEOUT_MS = 8000;
const SETUP_TIMEOUT_MS = 15 * 60 * 1000; // image build + pulls on a cold machine
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const ISSUER = 'https://idp.e2e.test';
const AUDIENCE = 'api://e2e';
const REALM = 'e2e-realm';
const KID = 'e2e-key-1';

type Probe = { ok: true; info: string } | { ok: false; reason: string };

async function detectContainerRuntime(timeoutMs: number): Promise<Probe> {
  if (process.env.AUTHZ_E2E === 'off') return { ok: false, reason: 'disabled by AUTHZ_E2E=off' };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  try {
    const client = await Promise.race([getContainerRuntimeClient(), timeout]);
    return {
      ok: true,
      info: `${client.info.containerRuntime.host} (${client.info.containerRuntime.operatingSystem})`,
    };
  } catch (err) {
    const first = ((err as Error).message ?? String(err)).split('\n')[0];
    return { ok: false, reason: first };
  } finally {
    clearTimeout(timer);
  }
}

const runtime = await detectContainerRuntime(RUNTIME_PROBE_TIMEOUT_MS);
if (!runtime.ok) {
  const line = `[e2e] SKIPPED: no container engine (${runtime.reason}); the Envoy end-to-end test needs Docker`;
  if (process.env.AUTHZ_E2E === 'required')
    throw new Error(line.replace('SKIPPED', 'FAILED (AUTHZ_E2E=required)'));
  console.warn(line);
}

// --- test fixtures -------------------------------------------------------------

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

interface Echo {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
}

/** Raw HTTP/1.1 request: node:http does not normalise the path (fetch would resolve `%2e%2e`). */
function send(
  port: number,
  host: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout on ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

function serviceConfig(publicJwk: JsonWebKey): Record<string, unknown> {
  return {
    server: { grpc_address: '0.0.0.0:9001', http_address: '0.0.0.0:9002', shutdown_grace_seconds: 1 },
    log: { level: 'debug' },
    realm: REALM,
    issuers: [
      {
        // named like the issuer that envoy/envoy.yaml's /reports route restricts to
        name: 'corp-idp',
        issuer: ISSUER,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        jwks: { keys: [{ ...publicJwk, kid: KID, alg: 'ES256', use: 'sig' }] },
      },
    ],
    rules: [{ name: 'api', match: { path_separated_prefix: '/api' }, require: { scopes_any: ['read'] } }],
    default_action: 'authenticate',
    upstream: {
      forward_original_token: false,
      claim_headers: { 'x-user-id': 'sub', 'x-user-roles': 'roles' },
      token: {
        header: 'x-jwt-assertion',
        issuer: 'https://authz.e2e.test',
        audiences: ['backend'],
        ttl_seconds: 120,
        copy_claims: ['scope'],
      },
    },
  };
}

/** The shipped envoy/envoy.yaml, with the admin port reachable for the readiness wait. */
function envoyConfig(): string {
  const doc = YAML.parse(readFileSync(join(REPO_ROOT, 'envoy', 'envoy.yaml'), 'utf8'));
  doc.admin.address.socket_address.address = '0.0.0.0';
  return YAML.stringify(doc);
}

describe.skipIf(!runtime.ok)('Envoy ext_authz end to end (containers)', () => {
  let network: StartedNetwork | undefined;
  const started: StartedTestContainer[] = [];
  const logs: Record<string, string[]> = {};
  let envoyHost = '';
  let envoyPort = 0;
  let signingKey: KeyObject;
  let workDir = '';

  const logTo = (name: string) => (stream: NodeJS.ReadableStream) => {
    logs[name] = [];
    stream.on('data', (line: Buffer | string) => logs[name]!.push(String(line).trimEnd()));
  };

  const token = (claims: Record<string, unknown>, opts: { sub?: string; exp?: string | number } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: KID, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(opts.sub ?? 'alice')
      .setIssuedAt()
      .setExpirationTime(opts.exp ?? '5m')
      .sign(signingKey);

  const get = (path: string, headers: Record<string, string> = {}) =>
    send(envoyPort, envoyHost, path, headers);
  const echoOf = (reply: Reply): Echo => JSON.parse(reply.body) as Echo;

  beforeAll(async () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    signingKey = pair.privateKey;
    const publicJwk = pair.publicKey.export({ format: 'jwk' });

    workDir = mkdtempSync(join(tmpdir(), 'authz-e2e-'));
    const serviceConfigFile = join(workDir, 'config.yaml');
    const envoyConfigFile = join(workDir, 'envoy.yaml');
    writeFileSync(serviceConfigFile, YAML.stringify(serviceConfig(publicJwk)));
    writeFileSync(envoyConfigFile, envoyConfig());

    network = await new Network().start();

    const serviceImage = await GenericContainer.fromDockerfile(REPO_ROOT, 'Dockerfile').build(SERVICE_IMAGE, {
      deleteOnExit: false,
    });

    const authz = serviceImage
      .withNetwork(network)
      .withNetworkAliases('authz')
      .withCopyFilesToContainer([
        { source: serviceConfigFile, target: '/etc/envoy-jwt-authz/config.yaml', mode: 0o644 },
      ])
      .withCommand(['serve', '--config', '/etc/envoy-jwt-authz/config.yaml'])
      .withExposedPorts(9001, 9002)
      .withLogConsumer(logTo('authz'))
      .withWaitStrategy(Wait.forHttp('/readyz', 9002).forStatusCode(200))
      .withStartupTimeout(120_000)
      .start();

    const echo = new GenericContainer(ECHO_IMAGE)
      .withNetwork(network)
      .withNetworkAliases('backend')
      .withCopyFilesToContainer([
        {
          source: join(REPO_ROOT, 'test', 'e2e', 'echo-upstream.mjs'),
          target: '/app/echo-upstream.mjs',
          mode: 0o644,
        },
      ])
      .withCommand(['node', '/app/echo-upstream.mjs'])
      .withLogConsumer(logTo('backend'))
      .withWaitStrategy(Wait.forLogMessage(/echo upstream listening/))
      .withStartupTimeout(120_000)
      .start();

    started.push(...(await Promise.all([authz, echo])));

    const envoy = await new GenericContainer(ENVOY_IMAGE)
      .withNetwork(network)
      .withNetworkAliases('envoy')
      .withCopyFilesToContainer([{ source: envoyConfigFile, target: '/etc/envoy/envoy.yaml', mode: 0o644 }])
      .withCommand(['-c', '/etc/envoy/envoy.yaml', '--log-level', 'info'])
      .withExposedPorts(8080, 9901)
      .withLogConsumer(logTo('envoy'))
      .withWaitStrategy(Wait.forHttp('/ready', 9901).forStatusCode(200))
      .withStartupTimeout(120_000)
      .start();
    started.push(envoy);
    envoyHost = envoy.getHost();
    envoyPort = envoy.getMappedPort(8080);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    if (process.env.AUTHZ_E2E_LOGS) {
      for (const [name, lines] of Object.entries(logs)) console.log(`--- ${name} ---\n${lines.join('\n')}`);
    }
    await Promise.allSettled(started.reverse().map((c) => c.stop()));
    await network?.stop().catch(() => undefined);
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  }, 120_000);

  it('no token on a protected route → 401 with a bare Bearer challenge', async () => {
    const reply = await get('/api/items');
    expect(reply.status).toBe(401);
    expect(reply.headers['www-authenticate']).toBe(`Bearer realm="${REALM}"`);
    expect(reply.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'unauthorized' });
  });

  it('valid token → 200; the upstream gets x-user-id and a minted token, not the original Authorization', async () => {
    const jwt = await token({ scope: 'read', roles: ['reader', 'writer'] });
    const reply = await get('/api/items', { authorization: `Bearer ${jwt}` });
    expect(reply.status).toBe(200);
    const echo = echoOf(reply);
    expect(echo.path).toBe('/api/items');
    expect(echo.headers['x-user-id']).toBe('alice');
    expect(echo.headers['x-user-roles']).toBe('reader,writer');
    expect(echo.headers.authorization).toBeUndefined();
    expect(echo.headers['x-jwt-assertion']).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(decodeJwt(echo.headers['x-jwt-assertion']!)).toMatchObject({
      sub: 'alice',
      iss: 'https://authz.e2e.test',
      aud: 'backend',
    });
  });

  it('public route: client-sent identity headers are removed even without a token', async () => {
    const reply = await get('/public/hello', {
      'x-user-id': 'mallory',
      'x-user-roles': 'admin',
      'x-jwt-assertion': 'forged',
    });
    expect(reply.status).toBe(200);
    const echo = echoOf(reply);
    expect(echo.headers['x-user-id']).toBeUndefined();
    expect(echo.headers['x-user-roles']).toBeUndefined();
    expect(echo.headers['x-jwt-assertion']).toBeUndefined();
  });

  it('/admin (context_extensions scopes_all: admin) without the scope → 403 insufficient_scope', async () => {
    const jwt = await token({ scope: 'read' });
    const reply = await get('/admin/panel', { authorization: `Bearer ${jwt}` });
    expect(reply.status).toBe(403);
    const challenge = String(reply.headers['www-authenticate']);
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="admin"');
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'insufficient_scope' });
  });

  it('/admin with the admin scope → 200', async () => {
    const jwt = await token({ scope: 'read admin' });
    const reply = await get('/admin/panel', { authorization: `Bearer ${jwt}` });
    expect(reply.status).toBe(200);
    expect(echoOf(reply).headers['x-user-id']).toBe('alice');
  });

  it('/orders: scopes_any and the per-route downstream audience from context_extensions', async () => {
    const jwt = await token({ scope: 'orders:write' });
    const reply = await get('/orders/42', { authorization: `Bearer ${jwt}` });
    expect(reply.status).toBe(200);
    const assertion = echoOf(reply).headers['x-jwt-assertion'];
    expect(assertion).toBeDefined();
    expect(decodeJwt(assertion!).aud).toBe('orders-service');
  });

  it('expired token → 401 invalid_token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const jwt = await token({ scope: 'read' }, { exp: now - 3600 });
    const reply = await get('/api/items', { authorization: `Bearer ${jwt}` });
    expect(reply.status).toBe(401);
    expect(String(reply.headers['www-authenticate'])).toContain('error="invalid_token"');
  });

  it('dot-segments cannot climb out of /public into /admin', async () => {
    const reply = await get('/public/%2e%2e/admin/panel', { 'x-user-id': 'mallory' });
    expect(reply.status).not.toBe(200);
    expect(reply.status).toBe(401);
  });

  it('encoded slashes are rejected by Envoy (path_with_escaped_slashes_action: REJECT_REQUEST)', async () => {
    const reply = await get('/public%2F..%2Fadmin/panel');
    expect(reply.status).toBe(400);
  });

  it('/healthz bypasses ext_authz but spoofed identity headers are still stripped by the route', async () => {
    const reply = await get('/healthz', { 'x-user-id': 'mallory' });
    expect(reply.status).toBe(200);
    expect(echoOf(reply).headers['x-user-id']).toBeUndefined();
  });
});
