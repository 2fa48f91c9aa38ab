// OpenTelemetry tracing (docs/operations.md "Tracing") through the REAL service: gRPC Check and
// the HTTP token endpoint, with spans exported over OTLP to receivers started here
// (http/protobuf and gRPC) that decode every ExportTraceServiceRequest.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/harness.js';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { mintJwt, standardClaims } from '../helpers/tokens.js';
import {
  startGrpcOtlpReceiver,
  startHttpOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from '../helpers/otlp-receiver.js';
import { authorizationClientConstructor } from '../../src/envoy/protos.js';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { loadConfigObject } from '../../src/config/load.js';

const ISS = 'https://idp.tracing.test';
const AUD = 'api://orders';
// Claim values that must never appear in any exported span.
const SECRET_SUB = 'sub-never-exported-7f3a';
const SECRET_EMAIL = 'carol.never.exported@example.com';

const hex = (n: number): string => randomBytes(n).toString('hex');

const first = generateEcKeyPair({ kid: 'first' });
const rotated = generateEcKeyPair({ kid: 'rotated' });

const token = (key = first): string =>
  mintJwt(key, standardClaims(ISS, AUD, { sub: SECRET_SUB, email: SECRET_EMAIL, scope: 'orders:read' }));

function config(jwks: JwksServer, tracing: Record<string, unknown> | undefined): Record<string, unknown> {
  return {
    issuers: [
      {
        name: 'idp',
        issuer: ISS,
        audiences: [AUD],
        jwks_uri: jwks.url,
        jwks_cache: { cooldown_seconds: 0 },
      },
    ],
    rules: [
      { name: 'orders', match: { path_prefix: '/api/orders' }, require: { scopes_all: ['orders:read'] } },
    ],
    upstream: {
      claim_headers: { 'x-user-email': 'email' },
      token: { issuer: 'https://authz.internal', audiences: ['backend'] },
    },
    token_endpoint: {
      enabled: true,
      issuer: 'https://authz.tracing.test',
      audience: 'api://self',
      access_token: { format: 'opaque' },
    },
    ...(tracing ? { tracing } : {}),
  };
}

const byName = (spans: readonly ReceivedSpan[], name: string): ReceivedSpan[] =>
  spans.filter((s) => s.name === name);

describe('tracing over OTLP http/protobuf', () => {
  let receiver: OtlpReceiver;
  let jwks: JwksServer;
  let svc: TestService;
  const w3c = { traceId: hex(16), spanId: hex(8) };
  const b3single = { traceId: hex(16), spanId: hex(8) };
  const b3multi = { traceId: hex(16), spanId: hex(8) };
  const rotatedTrace = { traceId: hex(16), spanId: hex(8) };
  const denyTrace = { traceId: hex(16), spanId: hex(8) };
  const opaqueTrace = { traceId: hex(16), spanId: hex(8) };
  const tokenTrace = { traceId: hex(16), spanId: hex(8) };
  const tokens: string[] = [];
  const opaque = randomBytes(24).toString('base64url');
  let tokenStatus = 0;

  beforeAll(async () => {
    receiver = await startHttpOtlpReceiver();
    jwks = await startJwksServer({ jwks: makeJwks(first) });
    svc = await startTestService(
      config(jwks, { otlp_endpoint: receiver.endpoint, service_name: 'authz-under-test' }),
    );
    const t1 = await token();
    tokens.push(t1);
    const allow = await svc.check({
      token: t1,
      headers: { traceparent: `00-${w3c.traceId}-${w3c.spanId}-01` },
    });
    expect(allow.decision).toBe('allow');
    const t2 = await token();
    tokens.push(t2);
    expect(
      (await svc.check({ token: t2, headers: { b3: `${b3single.traceId}-${b3single.spanId}-1` } })).decision,
    ).toBe('allow');
    expect(
      (
        await svc.check({
          token: t2,
          headers: { 'x-b3-traceid': b3multi.traceId, 'x-b3-spanid': b3multi.spanId, 'x-b3-sampled': '1' },
        })
      ).decision,
    ).toBe('allow');
    // A key the service has not seen yet: the refetch for its kid belongs to this Check.
    jwks.setJwks(makeJwks(first, rotated));
    const t3 = await token(rotated);
    tokens.push(t3);
    expect(
      (
        await svc.check({
          token: t3,
          headers: { traceparent: `00-${rotatedTrace.traceId}-${rotatedTrace.spanId}-01` },
        })
      ).decision,
    ).toBe('allow');
    const denied = await svc.check({
      headers: { traceparent: `00-${denyTrace.traceId}-${denyTrace.spanId}-01` },
    });
    expect(denied.reason).toBe('token_missing');
    const inactive = await svc.check({
      token: opaque,
      headers: { traceparent: `00-${opaqueTrace.traceId}-${opaqueTrace.spanId}-01` },
    });
    expect(inactive.reason).toBe('token_inactive');
    const res = await fetch(`${svc.httpUrl}/oauth2/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        traceparent: `00-${tokenTrace.traceId}-${tokenTrace.spanId}-01`,
      },
      body: 'grant_type=client_credentials&client_id=nobody&client_secret=hunter2hunter2',
    });
    tokenStatus = res.status;
    await res.text();
    // Shutdown flushes the batch of spans to the receiver.
    await svc.close();
  }, 30_000);

  afterAll(async () => {
    await receiver?.close();
    await jwks?.close();
  });

  it('continues the trace of a W3C traceparent: the Check span is its child and records the decision', () => {
    const [check] = byName(receiver.spans, 'ext_authz.check').filter((s) => s.traceId === w3c.traceId);
    expect(check).toBeDefined();
    expect(check!.parentSpanId).toBe(w3c.spanId);
    expect(check!.kind).toBe(2);
    expect(check!.attributes).toMatchObject({
      'authz.decision': 'allow',
      'authz.reason': 'authenticated',
      'authz.issuer': 'idp',
      'authz.rule': 'orders',
    });
    expect(check!.resource['service.name']).toBe('authz-under-test');
  });

  it('has child spans for verification, the requirement and minting under the Check span', () => {
    const [check] = byName(receiver.spans, 'ext_authz.check').filter((s) => s.traceId === w3c.traceId);
    const children = receiver.spans.filter((s) => s.parentSpanId === check!.spanId);
    expect(children.map((s) => s.name).sort()).toEqual(['authz.require', 'jwt.verify', 'token.mint']);
    for (const c of children) expect(c.traceId).toBe(w3c.traceId);
    expect(children.find((s) => s.name === 'jwt.verify')!.attributes['authz.issuer']).toBe('idp');
  });

  it('continues B3 traces, single header and x-b3-* headers', () => {
    for (const ctx of [b3single, b3multi]) {
      const spans = byName(receiver.spans, 'ext_authz.check').filter((s) => s.traceId === ctx.traceId);
      expect(spans).toHaveLength(1);
      expect(spans[0]!.parentSpanId).toBe(ctx.spanId);
      expect(spans[0]!.attributes['authz.decision']).toBe('allow');
    }
  });

  it('traces the key fetch for an unknown kid inside the Check that asked, and the background fetch on its own', () => {
    const [check] = byName(receiver.spans, 'ext_authz.check').filter(
      (s) => s.traceId === rotatedTrace.traceId,
    );
    const fetches = byName(receiver.spans, 'jwks.fetch');
    const inCheck = fetches.filter((s) => s.parentSpanId === check!.spanId);
    expect(inCheck).toHaveLength(1);
    expect(inCheck[0]!.attributes).toMatchObject({
      'authz.issuer': 'idp',
      'jwks.cause': 'unknown-kid',
      'jwks.keys': 2,
    });
    const initial = fetches.find((s) => s.attributes['jwks.cause'] === 'initial');
    expect(initial?.parentSpanId).toBe('');
  });

  it('records denials with their reason', () => {
    const [check] = byName(receiver.spans, 'ext_authz.check').filter((s) => s.traceId === denyTrace.traceId);
    expect(check!.attributes).toMatchObject({
      'authz.decision': 'deny',
      'authz.reason': 'token_missing',
      'authz.rule': 'orders',
    });
    expect(check!.statusCode).not.toBe(2);
  });

  it('traces store calls of a Check (opaque token lookup)', () => {
    const [check] = byName(receiver.spans, 'ext_authz.check').filter(
      (s) => s.traceId === opaqueTrace.traceId,
    );
    expect(check!.attributes['authz.reason']).toBe('token_inactive');
    const store = receiver.spans.filter((s) => s.parentSpanId === check!.spanId);
    expect(store.map((s) => s.name)).toEqual(['store.get_access_token']);
    expect(store[0]!.attributes['store.type']).toBe('memory');
  });

  it('traces token endpoint requests as server spans', () => {
    const spans = receiver.spans.filter(
      (s) => s.traceId === tokenTrace.traceId && s.name === 'POST /oauth2/token',
    );
    expect(spans).toHaveLength(1);
    expect(spans[0]!.parentSpanId).toBe(tokenTrace.spanId);
    expect(spans[0]!.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/oauth2/token',
      'http.response.status_code': tokenStatus,
    });
    expect(tokenStatus).toBeGreaterThanOrEqual(400);
  });

  it('exports neither tokens nor claim values nor client secrets', () => {
    expect(receiver.bodies.length).toBeGreaterThan(0);
    const all = Buffer.concat(receiver.bodies).toString('latin1');
    for (const secret of [...tokens, opaque, SECRET_SUB, SECRET_EMAIL, 'hunter2hunter2']) {
      expect(all.includes(secret)).toBe(false);
      // Parts of a token (its signature) must not leak either.
      const sig = secret.split('.')[2];
      if (sig) expect(all.includes(sig)).toBe(false);
    }
  });
});

describe('sampling', () => {
  it('sample_ratio 0 exports nothing, even when the caller sampled the trace', async () => {
    const receiver = await startHttpOtlpReceiver();
    const jwks = await startJwksServer({ jwks: makeJwks(first) });
    try {
      const svc = await startTestService(config(jwks, { otlp_endpoint: receiver.endpoint, sample_ratio: 0 }));
      for (let i = 0; i < 5; i++) {
        const d = await svc.check({
          token: await token(),
          headers: { traceparent: `00-${hex(16)}-${hex(8)}-01` },
        });
        expect(d.decision).toBe('allow');
      }
      await svc.close();
      expect(receiver.spans).toEqual([]);
    } finally {
      await receiver.close();
      await jwks.close();
    }
  });

  it('a caller that did not sample is followed (flag 00): nothing exported', async () => {
    const receiver = await startHttpOtlpReceiver();
    const jwks = await startJwksServer({ jwks: makeJwks(first) });
    try {
      const svc = await startTestService(config(jwks, { otlp_endpoint: receiver.endpoint }));
      const traceId = hex(16);
      await svc.check({ token: await token(), headers: { traceparent: `00-${traceId}-${hex(8)}-00` } });
      const sampled = hex(16);
      await svc.check({ token: await token(), headers: { traceparent: `00-${sampled}-${hex(8)}-01` } });
      await svc.close();
      expect(receiver.spans.filter((s) => s.traceId === traceId)).toEqual([]);
      // Nor did its steps start traces of their own: besides the background key fetch,
      // every span belongs to the sampled Check.
      const others = receiver.spans.filter((s) => s.traceId !== sampled);
      expect(others.map((s) => [s.name, s.attributes['jwks.cause']])).toEqual([['jwks.fetch', 'initial']]);
      // The control: the sampled one arrived, with its children.
      expect(receiver.spans.filter((s) => s.traceId === sampled).length).toBeGreaterThanOrEqual(3);
    } finally {
      await receiver.close();
      await jwks.close();
    }
  });
});

describe('reload', () => {
  it('keeps tracing as it started and says that changed settings need a restart', async () => {
    const receiver = await startHttpOtlpReceiver();
    const jwks = await startJwksServer({ jwks: makeJwks(first) });
    try {
      const svc = await startTestService(config(jwks, { otlp_endpoint: receiver.endpoint }));
      await svc.service.reload(loadConfigObject(config(jwks, { otlp_endpoint: receiver.endpoint }), '.', {}));
      expect(svc.logs.text()).not.toContain('tracing settings changed');
      await svc.service.reload(
        loadConfigObject(config(jwks, { otlp_endpoint: receiver.endpoint, sample_ratio: 0 }), '.', {}),
      );
      expect(svc.logs.text()).toContain('tracing settings changed: they apply after a restart');
      const traceId = hex(16);
      await svc.check({ token: await token(), headers: { traceparent: `00-${traceId}-${hex(8)}-01` } });
      await svc.close();
      // Still sampled at the ratio it started with (1), not the reloaded 0.
      expect(byName(receiver.spans, 'ext_authz.check').filter((s) => s.traceId === traceId)).toHaveLength(1);
    } finally {
      await receiver.close();
      await jwks.close();
    }
  });
});

describe('tracing over OTLP gRPC', () => {
  it('exports the Check span to a gRPC collector', async () => {
    const receiver = await startGrpcOtlpReceiver();
    const jwks = await startJwksServer({ jwks: makeJwks(first) });
    try {
      const svc = await startTestService(
        config(jwks, { otlp_endpoint: receiver.endpoint, protocol: 'grpc' }),
      );
      const traceId = hex(16);
      const spanId = hex(8);
      await svc.check({ token: await token(), headers: { traceparent: `00-${traceId}-${spanId}-01` } });
      await svc.close();
      const [check] = byName(receiver.spans, 'ext_authz.check');
      expect(check).toMatchObject({ traceId, parentSpanId: spanId });
      expect(check!.attributes['authz.decision']).toBe('allow');
    } finally {
      await receiver.close();
      await jwks.close();
    }
  });
});

// The real CLI in a child process, with a module hook recording every @opentelemetry
// module the process loads.
describe('tracing off', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tracing-off-'));
    writeFileSync(
      join(dir, 'hooks.mjs'),
      `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.includes('/@opentelemetry/')) appendFileSync(process.env.OTEL_LOAD_LOG, r.url + '\\n');
  return r;
}
`,
    );
    writeFileSync(
      join(dir, 'register.mjs'),
      `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function serveAndCheck(
    tracing: Record<string, unknown> | undefined,
  ): Promise<{ loaded: string; received: number }> {
    const receiver = await startHttpOtlpReceiver();
    const jwks = await startJwksServer({ jwks: makeJwks(first) });
    const log = join(dir, `loaded-${hex(4)}.txt`);
    const cfg = join(dir, `config-${hex(4)}.json`);
    writeFileSync(
      cfg,
      JSON.stringify({
        ...config(jwks, tracing && { ...tracing, otlp_endpoint: receiver.endpoint }),
        server: { grpc_address: '127.0.0.1:0', http_address: '127.0.0.1:0', shutdown_grace_seconds: 1 },
      }),
    );
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, OTEL_LOAD_LOG: log };
    const child = spawn(
      process.execPath,
      ['--import', join(dir, 'register.mjs'), 'dist/main.js', 'serve', '--config', cfg],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stderr.on('data', (c: Buffer) => (out += c.toString()));
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const m = /"grpc_port":(\d+)/.exec(out);
          if (m && /"msg":"ready"/.test(out)) resolve(Number(m[1]));
        });
        child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
      });
      const Client = authorizationClientConstructor();
      const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as any;
      const request = envoyCheckRequest({
        method: 'GET',
        path: '/api/orders',
        host: 'api.example.com',
        token: await token(),
        headers: [`traceparent=00-${hex(16)}-${hex(8)}-01`],
        context: [],
      });
      const res: any = await new Promise((resolve, reject) =>
        client.Check(request, (err: Error | null, r: unknown) => (err ? reject(err) : resolve(r))),
      );
      client.close();
      expect(res.status.code).toBe(0);
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      return { loaded: existsSync(log) ? readFileSync(log, 'utf8') : '', received: receiver.spans.length };
    } finally {
      child.kill('SIGKILL');
      await receiver.close();
      await jwks.close();
    }
  }

  it('loads no OpenTelemetry module and exports nothing', async () => {
    const off = await serveAndCheck(undefined);
    expect(off.loaded).toBe('');
    expect(off.received).toBe(0);
    // The control: the same process with tracing on loads the SDK and exports.
    const on = await serveAndCheck({});
    expect(on.loaded).toContain('/@opentelemetry/sdk-trace-base/');
    expect(on.received).toBeGreaterThan(0);
  }, 90_000);
});
