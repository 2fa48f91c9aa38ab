// End to end through the real Envoy (test/helpers/envoy.ts finds it; `npm run
// envoy:install` provisions it): HTTP/1.1 and HTTP/2 (h2c) clients → Envoy running the
// shipped envoy/envoy.yaml (rendered onto loopback ports, plus a few test routes) →
// ext_authz gRPC → this service (in-process) → echo upstream that returns what it got.
// Every test asserts what the client received and, when the request passed, what the
// upstream saw. A transparent gRPC hop (test/helpers/ext-authz-recorder.ts) between
// Envoy and the service keeps the CheckRequests Envoy really sent.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { request } from 'node:http';
import { connect, constants as h2 } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  envoyOrSkip,
  freePort,
  renderEnvoyConfig,
  shippedEnvoyYaml,
  startEnvoy,
  type RunningEnvoy,
} from '../helpers/envoy.js';
import { startRecorder, type ExtAuthzRecorder } from '../helpers/ext-authz-recorder.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { generateEcKeyPair } from '../helpers/keys.js';
import { forgeToken } from '../helpers/tokens.js';
import { startEcho } from './echo-upstream.mjs';

const envoy = await envoyOrSkip('Envoy ext_authz end to end');

const ISSUER = 'https://idp.e2e.test';
const DOWN_ISSUER = 'https://down-idp.e2e.test';
const AUDIENCE = 'api://e2e';
const REALM = 'e2e-realm';
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

const idpKey = generateEcKeyPair({ kid: 'e2e-key-1' });

function serviceConfig(downJwksUrl: string): Record<string, unknown> {
  return {
    realm: REALM,
    issuers: [
      {
        // named like the issuer that envoy/envoy.yaml's /reports route restricts to
        name: 'corp-idp',
        issuer: ISSUER,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        jwks: { keys: [idpKey.publicJwk] },
      },
      {
        name: 'down-idp',
        issuer: DOWN_ISSUER,
        audiences: [AUDIENCE],
        jwks_uri: downJwksUrl,
        jwks_cache: { timeout_ms: 200, cooldown_seconds: 1 },
      },
    ],
    token_sources: [
      { header: 'authorization', prefix: 'Bearer ' },
      { query: 'access_token' },
      { cookie: 'access_token' },
    ],
    max_token_bytes: 200_000,
    rules: [
      { name: 'internal', match: { path_separated_prefix: '/internal' }, action: 'deny' },
      { name: 'api', match: { path_separated_prefix: '/api' }, require: { scopes_any: ['read'] } },
    ],
    default_action: 'authenticate',
    upstream: {
      forward_original_token: false,
      claim_headers: { 'x-user-id': 'sub', 'x-user-roles': 'roles' },
      token: {
        header: 'x-jwt-assertion',
        issuer: 'https://authz.e2e.test',
        audiences: ['backend'],
        ttl_seconds: 120,
        copy_claims: ['scope', 'roles', 'blob'],
      },
    },
  };
}

function token(
  claims: Record<string, unknown>,
  opts: { iss?: string; sub?: string; exp?: number } = {},
): string {
  const now = Math.floor(Date.now() / 1000);
  return forgeToken({
    header: { alg: 'ES256', kid: idpKey.kid, typ: 'JWT' },
    payload: {
      iss: opts.iss ?? ISSUER,
      aud: AUDIENCE,
      sub: opts.sub ?? 'alice',
      iat: now,
      exp: opts.exp ?? now + 300,
      ...claims,
    },
    key: idpKey.privateKey,
  });
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

interface Echo {
  method: string;
  path: string;
  httpVersion: string;
  headers: Record<string, string | undefined>;
  rawHeaders: string[];
}

/** HTTP/1.1 with node:http (it sends the path as given: no dot-segment resolution). */
function http1(port: number, path: string, headers: Record<string, string | string[]> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers }, (res) => {
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

/** HTTP/2 over cleartext with prior knowledge (Envoy's codec_type AUTO detects the preface). */
function http2(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({
      [h2.HTTP2_HEADER_PATH]: path,
      [h2.HTTP2_HEADER_METHOD]: 'GET',
      ...headers,
    });
    let status = 0;
    let responseHeaders: Record<string, string | string[] | undefined> = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      responseHeaders = h as Record<string, string | string[] | undefined>;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      session.close();
      resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks).toString('utf8') });
    });
    stream.on('error', (e) => {
      session.destroy();
      reject(e);
    });
    stream.end();
  });
}

const echoOf = (reply: Reply): Echo => {
  expect(reply.status, reply.body).toBe(200);
  return JSON.parse(reply.body) as Echo;
};

/** Test routes put in front of the shipped routes (per-route context_extensions). */
function testRoutes(): any[] {
  const ext = (ctx: Record<string, string>) => ({
    'envoy.filters.http.ext_authz': {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
      check_settings: { context_extensions: ctx },
    },
  });
  return [
    {
      name: 'ctx-deny',
      match: { path_separated_prefix: '/ctx-deny' },
      route: { cluster: 'backend' },
      typed_per_filter_config: ext({ action: 'deny' }),
    },
    {
      name: 'ctx-blank',
      match: { path_separated_prefix: '/ctx-blank' },
      route: { cluster: 'backend' },
      typed_per_filter_config: ext({ scopes_all: '' }),
    },
  ];
}

const ACCESS_LOG_FIELDS = {
  authz_sub: '%DYNAMIC_METADATA(envoy.filters.http.ext_authz:sub)%',
  authz_scope: '%DYNAMIC_METADATA(envoy.filters.http.ext_authz:scope)%',
  authz_issuer: '%DYNAMIC_METADATA(envoy.filters.http.ext_authz:issuer)%',
  test_id: '%REQ(X-TEST-ID)%',
};

describe.skipIf(!envoy)(`Envoy ${envoy?.version ?? ''} → ext_authz → service → echo upstream`, () => {
  let svc: TestService;
  let recorder: ExtAuthzRecorder;
  let echo: Server;
  let proxy: RunningEnvoy;
  let dir: string;
  let accessLog: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'envoy-e2e-'));
    accessLog = join(dir, 'access.log');
    const closedPort = await freePort();
    svc = await startTestService(serviceConfig(`http://127.0.0.1:${closedPort}/jwks.json`));
    recorder = await startRecorder(svc.grpcAddress);
    echo = await startEcho(0);
    const echoPort = (echo.address() as { port: number }).port;
    const doc = renderEnvoyConfig(shippedEnvoyYaml(), {
      clusters: { ext_authz: recorder.address, backend: `127.0.0.1:${echoPort}` },
      accessLogPath: accessLog,
      mutate: (d) => {
        const hcm = d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
        Object.assign(hcm.access_log[0].typed_config.log_format.json_format, ACCESS_LOG_FIELDS);
        hcm.route_config.virtual_hosts[0].routes.unshift(...testRoutes());
      },
    });
    proxy = await startEnvoy(envoy!, doc, { dir, extraArgs: ['--file-flush-interval-msec', '20'] });
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await recorder?.close();
    await svc?.close();
    await new Promise((r) => echo?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const get = (path: string, headers: Record<string, string | string[]> = {}) =>
    http1(proxy.port, path, headers);
  const bearer = (jwt: string) => ({ authorization: `Bearer ${jwt}` });

  /** The CheckRequest Envoy sent for the request tagged with x-test-id. */
  const checkRequestFor = (id: string): any => {
    const found = recorder.requests.find((r) => r.attributes.request.http.headers['x-test-id'] === id);
    expect(found, `CheckRequest for ${id}`).toBeDefined();
    return found;
  };

  describe('decision outcomes as the client sees them (HTTP/1.1 and HTTP/2)', () => {
    for (const [name, send] of [
      ['HTTP/1.1', (p: string, h: Record<string, string>) => get(p, h)],
      ['HTTP/2', (p: string, h: Record<string, string>) => http2(proxy.port, p, h)],
    ] as const) {
      it(`${name}: allowed → 200; claim headers and a minted token arrive upstream, the original token does not`, async () => {
        const reply = await send('/api/items', {
          ...bearer(token({ scope: 'read', roles: ['reader', 'writer'] })),
        });
        const seen = echoOf(reply);
        expect(seen.path).toBe('/api/items');
        expect(seen.httpVersion).toBe('1.1'); // Envoy speaks HTTP/1.1 to the backend either way
        expect(seen.headers['x-user-id']).toBe('alice');
        expect(seen.headers['x-user-roles']).toBe('reader,writer');
        expect(seen.headers.authorization).toBeUndefined();
        expect(seen.headers['x-jwt-assertion']).toMatch(JWT_SHAPE);
        expect(decodeJwt(seen.headers['x-jwt-assertion']!)).toMatchObject({
          iss: 'https://authz.e2e.test',
          sub: 'alice',
          aud: 'backend',
          scope: 'read',
          roles: ['reader', 'writer'],
        });
      });

      it(`${name}: no token → 401 with a bare Bearer challenge and a JSON body`, async () => {
        const reply = await send('/api/items', {});
        expect(reply.status).toBe(401);
        expect(reply.headers['www-authenticate']).toBe(`Bearer realm="${REALM}"`);
        expect(reply.headers['content-type']).toBe('application/json');
        expect(JSON.parse(reply.body)).toEqual({ error: 'unauthorized' });
      });

      it(`${name}: invalid token → 401 error="invalid_token"`, async () => {
        const reply = await send('/api/items', bearer('not.a.jwt'));
        expect(reply.status).toBe(401);
        expect(String(reply.headers['www-authenticate'])).toMatch(
          new RegExp(`^Bearer realm="${REALM}", error="invalid_token", error_description="[^"]+"$`),
        );
        expect(reply.headers['content-type']).toBe('application/json');
        expect(JSON.parse(reply.body)).toMatchObject({ error: 'invalid_token' });
      });

      it(`${name}: insufficient scope → 403 with scope=`, async () => {
        const reply = await send('/admin/panel', bearer(token({ scope: 'read' })));
        expect(reply.status).toBe(403);
        expect(String(reply.headers['www-authenticate'])).toMatch(
          /^Bearer realm="e2e-realm", error="insufficient_scope"/,
        );
        expect(String(reply.headers['www-authenticate'])).toContain('scope="admin"');
        expect(reply.headers['content-type']).toBe('application/json');
        expect(JSON.parse(reply.body)).toMatchObject({ error: 'insufficient_scope' });
      });

      it(`${name}: deny rule → 403 forbidden without a challenge`, async () => {
        const reply = await send('/internal/metrics', bearer(token({ scope: 'read' })));
        expect(reply.status).toBe(403);
        expect(reply.headers['www-authenticate']).toBeUndefined();
        expect(reply.headers['content-type']).toBe('application/json');
        expect(JSON.parse(reply.body)).toEqual({ error: 'forbidden' });
      });

      it(`${name}: issuer keys unavailable → 503 temporarily_unavailable`, async () => {
        const reply = await send('/api/items', bearer(token({ scope: 'read' }, { iss: DOWN_ISSUER })));
        expect(reply.status).toBe(503);
        expect(reply.headers['www-authenticate']).toBeUndefined();
        expect(reply.headers['content-type']).toBe('application/json');
        expect(JSON.parse(reply.body)).toEqual({ error: 'temporarily_unavailable' });
      });
    }
  });
});
