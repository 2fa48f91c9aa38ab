// End to end through the real Envoy (test/helpers/envoy.ts finds it; `npm run
// envoy:install` provisions it): HTTP/1.1 and HTTP/2 (h2c) clients → Envoy running the
// shipped envoy/envoy.yaml (rendered onto loopback ports, plus a few test routes) →
// ext_authz gRPC → this service (in-process) → echo upstream that returns what it got.
// Every test asserts what the client received and, when the request passed, what the
// upstream saw. A transparent gRPC hop (test/helpers/ext-authz-recorder.ts) between
// Envoy and the service keeps the CheckRequests Envoy really sent.
import { readFileSync } from 'node:fs';
import { connect, constants as h2 } from 'node:http2';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, freePort, type RunningEnvoy } from '../helpers/envoy.js';
import type { ExtAuthzRecorder } from '../helpers/ext-authz-recorder.js';
import type { TestService } from '../helpers/harness.js';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { generateEcKeyPair } from '../helpers/keys.js';
import {
  accessLogEntry,
  echoOf,
  httpGet as http1,
  inlineIssuer,
  startStack,
  type Reply,
  type Stack,
} from '../helpers/stack.js';
import { jwtMinter } from '../helpers/tokens.js';

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
      // named like the issuer that envoy/envoy.yaml's /reports route restricts to
      inlineIssuer(ISSUER, AUDIENCE, idpKey),
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
        // envoy/envoy.yaml's /orders route asks for orders-service
        allowed_audiences: ['backend', 'orders-service'],
        ttl_seconds: 120,
        copy_claims: ['scope', 'roles', 'blob'],
      },
    },
  };
}

const token = jwtMinter(idpKey, { iss: ISSUER, aud: AUDIENCE, sub: 'alice' });

/** HTTP/2 over cleartext with prior knowledge (Envoy's codec_type AUTO detects the preface). */
function http2(port: number, path: string, headers: Record<string, string | string[]> = {}): Promise<Reply> {
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
    // A route that tries to open what the service's `internal` deny rule closes.
    {
      name: 'ctx-open-internal',
      match: { path_separated_prefix: '/internal/open' },
      route: { cluster: 'backend' },
      typed_per_filter_config: ext({ action: 'allow' }),
    },
    // A route that asks for an audience outside upstream.token.allowed_audiences.
    {
      name: 'ctx-audience',
      match: { path_separated_prefix: '/ctx-audience' },
      route: { cluster: 'backend' },
      typed_per_filter_config: ext({ audience: 'payments-admin' }),
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
  let stack: Stack;
  let svc: TestService;
  let recorder: ExtAuthzRecorder;
  let proxy: RunningEnvoy;
  let accessLog: string;

  beforeAll(async () => {
    const closedPort = await freePort();
    stack = await startStack(envoy!, {
      config: serviceConfig(`http://127.0.0.1:${closedPort}/jwks.json`),
      recorder: true,
      dirPrefix: 'envoy-e2e-',
      envoy: {
        accessLogFields: ACCESS_LOG_FIELDS,
        mutate: (d) => {
          const hcm = d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
          hcm.route_config.virtual_hosts[0].routes.unshift(...testRoutes());
        },
      },
    });
    ({ service: svc, recorder, envoy: proxy } = stack);
    accessLog = join(stack.dir, 'access.log');
  }, 60_000);

  afterAll(() => stack?.stop());

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
        const reply = await send('/api/items', bearer(token({ scope: 'read', iss: DOWN_ISSUER })));
        expect(reply.status).toBe(503);
        expect(reply.headers['www-authenticate']).toBeUndefined();
        expect(reply.headers['content-type']).toBe('application/json');
        expect(JSON.parse(reply.body)).toEqual({ error: 'temporarily_unavailable' });
      });
    }
  });

  describe('injectable headers and the original token', () => {
    it('spoofed x-user-id / x-user-roles / x-jwt-assertion from the client never arrive upstream', async () => {
      const seen = echoOf(
        await get('/api/items', {
          ...bearer(token({ scope: 'read' })), // no roles claim: x-user-roles must be removed, not passed on
          'x-user-id': 'mallory',
          'x-user-roles': 'admin',
          'x-jwt-assertion': 'forged',
        }),
      );
      expect(seen.headers['x-user-id']).toBe('alice');
      expect(seen.headers['x-user-roles']).toBeUndefined();
      expect(seen.headers['x-jwt-assertion']).not.toBe('forged');
      expect(decodeJwt(seen.headers['x-jwt-assertion']!).sub).toBe('alice');
      // one value each: Envoy overwrote, it did not append
      expect(seen.rawHeaders.filter((h) => h.toLowerCase() === 'x-user-id')).toHaveLength(1);
      expect(seen.rawHeaders.filter((h) => h.toLowerCase() === 'x-jwt-assertion')).toHaveLength(1);
    });

    it('public route (context_extensions action: allow): spoofed headers removed without a token', async () => {
      const seen = echoOf(
        await get('/public/hello', {
          'x-user-id': 'mallory',
          'x-user-roles': 'admin',
          'x-jwt-assertion': 'forged',
        }),
      );
      expect(seen.headers['x-user-id']).toBeUndefined();
      expect(seen.headers['x-user-roles']).toBeUndefined();
      expect(seen.headers['x-jwt-assertion']).toBeUndefined();
    });

    it('/healthz (filter disabled): the route itself strips spoofed headers', async () => {
      const seen = echoOf(await get('/healthz', { 'x-user-id': 'mallory' }));
      expect(seen.headers['x-user-id']).toBeUndefined();
    });

    it('token in the query: the parameter is removed upstream, the others stay in order', async () => {
      const jwt = token({ scope: 'read' });
      const seen = echoOf(await get(`/api/items?a=1&access_token=${jwt}&b=2`));
      expect(seen.path).toBe('/api/items?a=1&b=2');
      expect(seen.headers['x-user-id']).toBe('alice');
    });

    // Envoy's query_parameters_to_remove matches raw (still percent-encoded) keys; the
    // service reads decoded ones, so it lists every raw spelling of the name it used.
    it('a percent-encoded query name (access%5Ftoken) is not read as the token; beside the real one it is a second credential, or removed when empty', async () => {
      const jwt = token({ scope: 'read' });
      // the same token first under its plain name, so a memoised decision would be reused
      expect(echoOf(await get(`/api/items?access_token=${jwt}&a=1`)).path).toBe('/api/items?a=1');
      // Envoy could not strip it by the configured name, so it never counts as the token
      const encodedOnly = await get(`/api/items?a=1&access%5Ftoken=${jwt}&b=2`);
      expect(encodedOnly.status).toBe(401);
      expect((await get(`/api/items?access_token=${jwt}&access%5ftoken=${jwt}`)).status).toBe(400);
      const empty = echoOf(await get(`/api/items?access_token=${jwt}&access%5ftoken=`));
      expect(empty.path).toBe('/api/items');
      // two values under the same name: two credentials
      expect((await get(`/api/items?access_token=${jwt}&x=1&access_token=other`)).status).toBe(400);
    });

    it('token in a cookie: that cookie is removed, the others arrive', async () => {
      const jwt = token({ scope: 'read' });
      const seen = echoOf(await get('/api/items', { cookie: `a=1; access_token=${jwt}; b=2` }));
      expect(seen.headers.cookie).toBe('a=1; b=2');
      expect(seen.headers['x-user-id']).toBe('alice');
    });

    it('token in the only cookie: the cookie header is gone', async () => {
      const jwt = token({ scope: 'read' });
      const seen = echoOf(await get('/api/items', { cookie: `access_token=${jwt}` }));
      expect(seen.headers.cookie).toBeUndefined();
    });
  });

  describe('per-route context_extensions from typed_per_filter_config', () => {
    it('/orders: scopes_any and audience → the minted token has aud orders-service', async () => {
      const seen = echoOf(await get('/orders/42', bearer(token({ scope: 'orders:write' }))));
      expect(decodeJwt(seen.headers['x-jwt-assertion']!).aud).toBe('orders-service');
      const denied = await get('/orders/42', bearer(token({ scope: 'read' })));
      expect(denied.status).toBe(403);
      expect(String(denied.headers['www-authenticate'])).toContain('scope="orders:read orders:write"');
    });

    it('/admin: scopes_all admin', async () => {
      const seen = echoOf(await get('/admin/panel', bearer(token({ scope: 'read admin' }))));
      expect(seen.headers['x-user-id']).toBe('alice');
    });

    it('/reports: rule api (scopes_any read) and issuers corp-idp', async () => {
      echoOf(await get('/reports/q1', bearer(token({ scope: 'read' }))));
      const noScope = await get('/reports/q1', bearer(token({ scope: 'write' })));
      expect(noScope.status).toBe(403);
      expect(String(noScope.headers['www-authenticate'])).toContain('scope="read"');
    });

    it('action: deny from the route → 403 forbidden even with a good token', async () => {
      const reply = await get('/ctx-deny/x', bearer(token({ scope: 'read admin' })));
      expect(reply.status).toBe(403);
      expect(JSON.parse(reply.body)).toEqual({ error: 'forbidden' });
    });

    it('the CheckRequest carries the route context_extensions as Envoy merged them', async () => {
      await get('/orders/1', { 'x-test-id': 'ctx-1' });
      expect(checkRequestFor('ctx-1').attributes.context_extensions).toEqual({
        scopes_any: 'orders:read orders:write',
        audience: 'orders-service',
      });
    });

    it('action: allow on a route the service denies (rule internal) → 403, logged at warn naming the rule', async () => {
      const before = svc.logs.lines.length;
      const reply = await get('/internal/open/x', bearer(token({ scope: 'read admin' })));
      expect(reply.status).toBe(403);
      expect(JSON.parse(reply.body)).toEqual({ error: 'forbidden' });
      const warned = svc.logs.lines
        .slice(before)
        .filter((l) => /cannot loosen the configured rule/.test(l.msg));
      expect(warned[0]).toMatchObject({ level: 'warn', rule: 'internal', extension_value: 'allow' });
    });

    it('audience outside upstream.token.allowed_audiences → 403, logged at error; nothing reaches the upstream', async () => {
      const before = svc.logs.lines.length;
      const reply = await get('/ctx-audience/x', bearer(token({ scope: 'read' })));
      expect(reply.status).toBe(403);
      expect(JSON.parse(reply.body)).toEqual({ error: 'forbidden' });
      const errors = svc.logs.lines.slice(before).filter((l) => /allowed_audiences/.test(l.msg));
      expect(errors[0]).toMatchObject({ level: 'error', audience: 'payments-admin' });
    });

    // An empty template variable in envoy.yaml must never unprotect a route.
    it('blank context_extensions value (scopes_all: "") reaches the service as an empty string and fails closed (403)', async () => {
      await get('/ctx-blank/x', { 'x-test-id': 'blank-1', ...bearer(token({ scope: 'read' })) });
      expect(checkRequestFor('blank-1').attributes.context_extensions).toEqual({ scopes_all: '' });
      const reply = await get('/ctx-blank/x', bearer(token({ scope: 'read' })));
      expect(reply.status).toBe(403);
      expect(JSON.parse(reply.body)).toEqual({ error: 'forbidden' });
    });
  });

  describe('what Envoy sends in the CheckRequest', () => {
    it('x-request-id (regenerated by Envoy at the edge) and traceparent reach the service; the decision log names the request id', async () => {
      const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const seen = echoOf(
        await get('/api/items', {
          ...bearer(token({ scope: 'read' })),
          'x-test-id': 'rid-1',
          'x-request-id': 'client-chosen',
          traceparent,
        }),
      );
      const headers = checkRequestFor('rid-1').attributes.request.http.headers;
      expect(headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(headers['x-request-id']).not.toBe('client-chosen'); // use_remote_address: true, external request
      expect(seen.headers['x-request-id']).toBe(headers['x-request-id']);
      expect(headers.traceparent).toBe(traceparent);
      expect(seen.headers.traceparent).toBe(traceparent);
      const line = svc.logs.lines.find((l: any) => l.request_id === headers['x-request-id']);
      expect(line).toMatchObject({ decision: 'allow' });
    });

    it('header names are lower-case, :path carries the query, repeated headers are joined with ","', async () => {
      await get('/api/items?q=1&r=2', {
        'x-test-id': 'shape-1',
        'X-Mixed-Case': 'v',
        'x-multi': ['one', 'two'],
        cookie: ['a=1', 'b=2'],
      });
      const http = checkRequestFor('shape-1').attributes.request.http;
      expect(http.path).toBe('/api/items?q=1&r=2');
      expect(http.headers[':path']).toBe('/api/items?q=1&r=2');
      expect(http.headers[':method']).toBe('GET');
      expect(http.headers[':authority']).toBe(`127.0.0.1:${proxy.port}`);
      expect(http.host).toBe(`127.0.0.1:${proxy.port}`);
      expect(http.headers.host).toBeUndefined(); // only as :authority
      expect(http.headers['x-mixed-case']).toBe('v');
      expect(Object.keys(http.headers).every((k) => k === k.toLowerCase())).toBe(true);
      expect(http.headers['x-multi']).toBe('one,two');
      expect(http.headers.cookie).toBe('a=1; b=2'); // cookies are joined with "; ", not ","
      expect(http.method).toBe('GET');
      expect(http.protocol).toBe('HTTP/1.1');
    });

    it('the simulated client (envoyCheckRequest, used by the CLI and the harness) builds the same headers and path', async () => {
      await get('/api/items?q=1', {
        'x-test-id': 'shape-3',
        'x-multi': ['one', 'two'],
        cookie: ['a=1', 'access_token=t'],
      });
      const real = checkRequestFor('shape-3').attributes.request.http;
      const simulated = envoyCheckRequest({
        method: 'GET',
        path: '/api/items?q=1',
        host: real.host,
        headers: ['x-test-id=shape-3', 'x-multi=one', 'x-multi=two', 'cookie=a=1', 'cookie=access_token=t'],
        context: [],
      }).attributes.request.http;
      // Envoy adds these at the edge; the simulated client has its own x-request-id
      const edge = /^(x-forwarded-|x-envoy-|x-request-id$)/;
      const strip = (h: Record<string, string>) =>
        Object.fromEntries(Object.entries(h).filter(([k]) => !edge.test(k)));
      expect(strip(simulated.headers)).toEqual(strip(real.headers));
      expect(simulated.path).toBe(real.path);
      expect(simulated.method).toBe(real.method);
    });

    it('HTTP/2: cookie crumbs arrive joined with "; " and the protocol is HTTP/2', async () => {
      await http2(proxy.port, '/api/items', { 'x-test-id': 'shape-2', cookie: ['a=1', 'b=2'] });
      const http = checkRequestFor('shape-2').attributes.request.http;
      expect(http.headers.cookie).toBe('a=1; b=2');
      expect(http.protocol).toBe('HTTP/2');
    });
  });

  const logEntry = (id: string) => accessLogEntry(accessLog, id);

  describe('dynamic_metadata in Envoy’s access log', () => {
    it('sub, scope and issuer from the CheckResponse are logged by Envoy', async () => {
      await get('/api/items', { ...bearer(token({ scope: 'read', sub: 'dora' })), 'x-test-id': 'log-1' });
      const entry = await logEntry('log-1');
      expect(entry).toMatchObject({
        authz_sub: 'dora',
        authz_scope: 'read',
        authz_issuer: 'corp-idp',
        status: 200,
      });
      expect(entry.authz).toMatchObject({ sub: 'dora' });
    });
  });

  describe('no token in Envoy’s access log file', () => {
    it('a token in ?access_token=… (allowed or denied), in Authorization or in a cookie never reaches the log', async () => {
      const allowed = token({ scope: 'read', sub: 'query-allowed' });
      const denied = token({ scope: 'none', sub: 'query-denied' }); // 403: Envoy forwards nothing, the path is untouched
      const header = token({ scope: 'read', sub: 'header' });
      const cookie = token({ scope: 'read', sub: 'cookie' });
      const sent: Array<[string, string, Record<string, string>, number]> = [
        ['q-allow', `/api/items?page=2&access_token=${allowed}`, {}, 200],
        ['q-deny', `/api/items?access_token=${denied}&page=2`, {}, 403],
        ['q-bad', '/api/items?access_token=not.a.valid-token', {}, 401],
        ['h-allow', '/api/items?page=2', bearer(header), 200],
        ['c-allow', '/api/items', { cookie: `access_token=${cookie}` }, 200],
      ];
      for (const [id, path, headers, status] of sent) {
        const reply = await get(path, { ...headers, 'x-test-id': id });
        expect(reply.status, id).toBe(status);
      }
      const entries: any[] = [];
      for (const [id] of sent) entries.push(await logEntry(id));
      const log = readFileSync(accessLog, 'utf8');
      for (const jwt of [allowed, denied, header, cookie]) {
        expect(log.includes(jwt.split('.')[2]!), 'a token (its signature) in the access log').toBe(false);
      }
      expect(log).not.toContain('not.a.valid-token');
      expect(log).not.toMatch(/access_token/);
      sent.forEach(([id], i) => {
        expect(entries[i], id).toBeDefined();
        expect(entries[i].path, id).toBe('/api/items'); // the path, never its query
      });
    });
  });

  describe('the service down or slow (failure_mode_allow: false, status_on_error 503, timeout 0.5s)', () => {
    it('gRPC error from the ext_authz cluster → 503 from Envoy, empty body, never forwarded', async () => {
      recorder.mode = { kind: 'error', code: grpc.status.UNAVAILABLE };
      try {
        const reply = await get('/public/x', { 'x-user-id': 'mallory' });
        expect(reply.status).toBe(503);
        expect(reply.body).toBe('');
        expect(reply.headers['www-authenticate']).toBeUndefined();
      } finally {
        recorder.mode = { kind: 'forward' };
      }
    });

    it('slower than the filter timeout → 503 after about 0.5 s', async () => {
      recorder.mode = { kind: 'delay', ms: 1500 };
      try {
        const started = performance.now();
        const reply = await get('/api/items', bearer(token({ scope: 'read' })));
        const ms = performance.now() - started;
        expect(reply.status).toBe(503);
        expect(ms).toBeGreaterThanOrEqual(450);
        expect(ms).toBeLessThan(1400);
      } finally {
        recorder.mode = { kind: 'forward' };
      }
    });
  });

  describe('header size limits', () => {
    const stat = async (name: string): Promise<number> => (await proxy.stats(`^${name}$`))[name] ?? 0;

    it('copy_claims making the minted token ~27 KiB: the enriched request stays under the limit and arrives', async () => {
      const blob = 'x'.repeat(20_000);
      const seen = echoOf(await get('/api/items', bearer(token({ scope: 'read', blob }))));
      expect(seen.headers['x-jwt-assertion']!.length).toBeGreaterThan(26_000);
      expect(decodeJwt(seen.headers['x-jwt-assertion']!).blob).toBe(blob);
    });

    // Envoy applies max_request_headers_kb to the request *after* the ext_authz header
    // mutations (ExtAuthz.enforce_response_header_limits, default true) and answers
    // 500 with an empty body when the injected headers push it over.
    it('client headers fit (~54 KiB) but with the ~54 KiB minted token they exceed 96 KiB → 500 from Envoy', async () => {
      const before = await stat('http.ingress_http.ext_authz.request_header_limits_reached');
      const reply = await get('/api/items', bearer(token({ scope: 'read', blob: 'x'.repeat(40_000) })));
      expect(reply.status).toBe(500);
      expect(reply.body).toBe('');
      expect(await stat('http.ingress_http.ext_authz.request_header_limits_reached')).toBe(before + 1);
    });

    it('client headers over max_request_headers_kb (96 in envoy.yaml) → 431 from Envoy, no check', async () => {
      const before = recorder.requests.length;
      const reply = await get('/api/items', {
        ...bearer(token({ scope: 'read', blob: 'y'.repeat(100_000) })),
      });
      expect(reply.status).toBe(431);
      expect(recorder.requests.length).toBe(before);
    });
  });

  describe('path normalisation (normalize_path, merge_slashes, escaped slashes REJECT_REQUEST) with our rules', () => {
    it('dot-segments cannot climb out of /public into /admin', async () => {
      const reply = await get('/public/../admin/panel', { 'x-test-id': 'norm-1' });
      expect(reply.status).toBe(401);
      expect(checkRequestFor('norm-1').attributes.request.http.path).toBe('/admin/panel');
    });

    it('%2e%2e is decoded and removed as a dot-segment', async () => {
      const reply = await get('/public/%2e%2e/internal/x', { 'x-test-id': 'norm-2' });
      expect(reply.status).toBe(403);
      expect(checkRequestFor('norm-2').attributes.request.http.path).toBe('/internal/x');
    });

    it('//admin///panel is merged to /admin/panel (admin route, scopes_all admin)', async () => {
      const reply = await get('//admin///panel', {
        ...bearer(token({ scope: 'read' })),
        'x-test-id': 'norm-3',
      });
      expect(reply.status).toBe(403);
      expect(checkRequestFor('norm-3').attributes.request.http.path).toBe('/admin/panel');
    });

    it('encoded slashes are rejected by Envoy before any check', async () => {
      const before = recorder.requests.length;
      const reply = await get('/public%2F..%2Fadmin/panel');
      expect(reply.status).toBe(400);
      expect(recorder.requests.length).toBe(before);
    });

    it('the upstream gets the same normalised path that was checked', async () => {
      const seen = echoOf(await get('/api/./v1/../items', bearer(token({ scope: 'read' }))));
      expect(seen.path).toBe('/api/items');
    });
  });

  // Without Envoy's path options the service still normalises for its own rules, but
  // Envoy's route choice (and so the route's context_extensions) and the path the
  // backend gets are no longer the checked path.
  describe('the same config without normalize_path / merge_slashes (escaped slashes kept)', () => {
    let raw: RunningEnvoy;
    beforeAll(async () => {
      raw = await stack.startEnvoy({
        mutate: (d) => {
          const hcm = d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
          hcm.normalize_path = false;
          hcm.merge_slashes = false;
          hcm.path_with_escaped_slashes_action = 'KEEP_UNCHANGED';
          delete hcm.access_log;
        },
      });
    }, 30_000);
    afterAll(() => raw?.stop());

    it('default route: the service normalises /api/../internal itself and the deny rule applies', async () => {
      const reply = await http1(raw.port, '/api/../internal/x', { 'x-test-id': 'raw-1' });
      expect(checkRequestFor('raw-1').attributes.request.http.path).toBe('/api/../internal/x');
      expect(reply.status).toBe(403);
      expect(JSON.parse(reply.body)).toEqual({ error: 'forbidden' });
    });

    it('encoded slashes reach the service unchanged and never satisfy a rule prefix', async () => {
      const reply = await http1(raw.port, '/api%2Fitems', {
        'x-test-id': 'raw-2',
        ...bearer(token({ scope: 'write' })),
      });
      expect(checkRequestFor('raw-2').attributes.request.http.path).toBe('/api%2Fitems');
      // not the /api rule (which would need scope read): default_action authenticate
      expect(reply.status).toBe(200);
    });

    // Envoy picks the /public route (action: allow from context_extensions) on the raw
    // path. A route-level action applies to whatever Envoy routed there, so with Envoy's
    // own normalisation switched off the backend receives the dot-segments: this is why
    // the shipped config keeps normalize_path and merge_slashes on (docs/deploy.md).
    it('/public/../admin on a route with action=allow and Envoy normalisation off is forwarded as is', async () => {
      const reply = await http1(raw.port, '/public/../admin/panel', { 'x-test-id': 'raw-3' });
      expect(checkRequestFor('raw-3').attributes.context_extensions).toEqual({ action: 'allow' });
      expect(reply.status).toBe(200);
      expect(echoOf(reply).path).toBe('/public/../admin/panel');
    });
  });

  // On an allow route the token is not read, so the credential nobody verified is removed.
  it('allow route: a client Authorization header does not reach the upstream', async () => {
    const seen = echoOf(await get('/public/x', { authorization: 'Bearer whatever' }));
    expect(seen.headers.authorization).toBeUndefined();
  });

  it('the service unreachable (nothing listens on the ext_authz endpoint) → 503, nothing forwarded', async () => {
    const nobody = await freePort();
    const down = await stack.startEnvoy({
      clusters: { ext_authz: `127.0.0.1:${nobody}` },
      mutate: (d) => {
        delete d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log;
      },
    });
    try {
      for (const path of ['/public/x', '/api/items']) {
        const reply = await http1(down.port, path, {
          'x-user-id': 'mallory',
          ...bearer(token({ scope: 'read' })),
        });
        expect(reply.status).toBe(503);
        expect(reply.body).toBe('');
      }
      const healthz = await http1(down.port, '/healthz', { 'x-user-id': 'mallory' });
      expect(echoOf(healthz).headers['x-user-id']).toBeUndefined(); // the unchecked route still strips
    } finally {
      await down.stop();
    }
  });
});
