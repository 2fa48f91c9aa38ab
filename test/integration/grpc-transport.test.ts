// docs/operations.md "Running it": the gRPC listener speaks gRPC as Envoy does — length-prefixed
// messages, status in trailers (trailers-only for errors), grpc-timeout deadlines,
// gzip/deflate request messages, a message size limit, UNIMPLEMENTED for unknown
// methods, grpc.health.v1 Check and Watch, and GOAWAY drain on shutdown.
import * as http2 from 'node:http2';
import { deflateSync, gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { authorizationService } from '../../src/envoy/protos.js';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';

const ALLOW_ALL = { rules: [{ name: 'all', match: { path_prefix: '/' }, action: 'allow' }] };
const checkDef = authorizationService().Check!;
const requestBytes = (path = '/api'): Buffer =>
  checkDef.requestSerialize(envoyCheckRequest({ method: 'GET', path, host: 'h', headers: [], context: [] }));
const frame = (body: Buffer, compressed = false): Buffer => {
  const head = Buffer.alloc(5);
  head[0] = compressed ? 1 : 0;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
};

interface RawResult {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One call over a bare HTTP/2 client, to see the frames as Envoy does. */
function rawCall(
  port: number,
  path: string,
  body: Buffer,
  extra: Record<string, string> = {},
  session?: http2.ClientHttp2Session,
): Promise<RawResult> {
  const s = session ?? http2.connect(`http://127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    const req = s.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...extra,
    });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', reject);
    req.on('close', () => {
      if (!session) s.close();
      resolve({ headers, trailers, body: Buffer.concat(chunks) });
    });
    req.end(body);
  });
}

let svc: TestService | undefined;
let jwks: JwksServer | undefined;
afterEach(async () => {
  await svc?.close().catch(() => undefined);
  await jwks?.close();
  svc = jwks = undefined;
});
const portOf = (s: TestService) => s.service.grpcPort;

describe('gRPC framing', () => {
  it('answers a Check with headers, one length-prefixed CheckResponse and grpc-status 0 in trailers', async () => {
    svc = await startTestService(ALLOW_ALL);
    const r = await rawCall(portOf(svc), '/envoy.service.auth.v3.Authorization/Check', frame(requestBytes()));
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['content-type']).toBe('application/grpc');
    expect(r.headers['grpc-accept-encoding']).toContain('gzip');
    expect(r.headers['grpc-status']).toBeUndefined();
    // No date header: nothing in gRPC reads it, and Envoy would parse one per answer.
    expect(r.headers.date).toBeUndefined();
    expect(r.trailers['grpc-status']).toBe('0');
    expect(r.body[0]).toBe(0);
    expect(r.body.readUInt32BE(1)).toBe(r.body.length - 5);
    expect(checkDef.responseDeserialize(r.body.subarray(5))).toMatchObject({ status: { code: 0 } });
  });

  it('unknown method → UNIMPLEMENTED (12) as a trailers-only response', async () => {
    svc = await startTestService(ALLOW_ALL);
    const r = await rawCall(portOf(svc), '/envoy.service.auth.v3.Authorization/Nope', frame(Buffer.alloc(0)));
    expect(r.headers['grpc-status']).toBe('12');
    expect(r.headers.date).toBeUndefined();
    expect(r.body.length).toBe(0);
  });

  it('a message over the size limit → RESOURCE_EXHAUSTED (8), refused from its prefix', async () => {
    svc = await startTestService(ALLOW_ALL);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(4 * 1024 * 1024 + 1, 1);
    // Only the prefix is sent: the server must not wait for the 4 MiB.
    const r = await rawCall(portOf(svc), '/envoy.service.auth.v3.Authorization/Check', head);
    expect(r.headers['grpc-status']).toBe('8');
    expect(decodeURIComponent(String(r.headers['grpc-message']))).toMatch(/larger than max/);
  });

  it('an undecodable message → INTERNAL (13); a truncated frame → INTERNAL', async () => {
    svc = await startTestService(ALLOW_ALL);
    const path = '/envoy.service.auth.v3.Authorization/Check';
    const bad = await rawCall(portOf(svc), path, frame(Buffer.from([0x0a, 0x7f, 0x01])));
    expect(bad.headers['grpc-status']).toBe('13');
    const cut = await rawCall(portOf(svc), path, frame(requestBytes()).subarray(0, 9));
    expect(cut.headers['grpc-status']).toBe('13');
  });

  it('gzip and deflate request messages are decoded; an unknown grpc-encoding → UNIMPLEMENTED', async () => {
    svc = await startTestService(ALLOW_ALL);
    const path = '/envoy.service.auth.v3.Authorization/Check';
    const gz = await rawCall(portOf(svc), path, frame(gzipSync(requestBytes()), true), {
      'grpc-encoding': 'gzip',
    });
    expect(gz.trailers['grpc-status']).toBe('0');
    expect(checkDef.responseDeserialize(gz.body.subarray(5))).toMatchObject({ status: { code: 0 } });
    const df = await rawCall(portOf(svc), path, frame(deflateSync(requestBytes()), true), {
      'grpc-encoding': 'deflate',
    });
    expect(df.trailers['grpc-status']).toBe('0');
    const flagWithoutEncoding = await rawCall(portOf(svc), path, frame(gzipSync(requestBytes()), true));
    expect(flagWithoutEncoding.headers['grpc-status']).toBe('13');
    const zstd = await rawCall(portOf(svc), path, frame(requestBytes()), { 'grpc-encoding': 'zstd' });
    expect(zstd.headers['grpc-status']).toBe('12');
    // A gzip bomb is cut at the size limit.
    const bomb = gzipSync(Buffer.alloc(5 * 1024 * 1024));
    const big = await rawCall(portOf(svc), path, frame(bomb, true), { 'grpc-encoding': 'gzip' });
    expect(big.headers['grpc-status']).toBe('8');
  });

  it('grpc-js clients with gzip compression get their answer', async () => {
    svc = await startTestService(ALLOW_ALL);
    const Client = grpc.makeGenericClientConstructor(authorizationService(), 'Authorization');
    const client = new Client(svc.grpcAddress, grpc.credentials.createInsecure(), {
      'grpc.default_compression_algorithm': 2,
    }) as any;
    const res = await new Promise<any>((resolve, reject) =>
      client.Check(
        envoyCheckRequest({ method: 'GET', path: '/x', host: 'h', headers: [], context: [] }),
        (e: Error | null, r: any) => (e ? reject(e) : resolve(r)),
      ),
    );
    client.close();
    expect(res.status.code).toBe(0);
  });

  it('answers keep-alive PINGs on an idle connection, as Envoy sends them', async () => {
    svc = await startTestService(ALLOW_ALL);
    const session = http2.connect(`http://127.0.0.1:${portOf(svc)}`);
    await new Promise((resolve) => session.once('connect', resolve));
    const acked = await new Promise<boolean>((resolve) => session.ping((err) => resolve(!err)));
    session.close();
    expect(acked).toBe(true);
  });

  it('a non-gRPC request gets HTTP 415', async () => {
    svc = await startTestService(ALLOW_ALL);
    const r = await rawCall(portOf(svc), '/envoy.service.auth.v3.Authorization/Check', Buffer.alloc(0), {
      'content-type': 'application/json',
    });
    expect(r.headers[':status']).toBe(415);
  });
});

describe('deadlines', () => {
  it('a deadline already spent → DEADLINE_EXCEEDED; a slow check is answered at the deadline, not after the slow key fetch', async () => {
    const key = generateEcKeyPair({ kid: 'k1' });
    jwks = await startJwksServer({ jwks: makeJwks(key) });
    svc = await startTestService({
      issuers: [
        {
          name: 'corp',
          issuer: 'https://idp.example.com',
          audiences: ['api'],
          jwks_uri: jwks.url,
          jwks_cache: { max_age_seconds: 60, cooldown_seconds: 0, timeout_ms: 3000, max_stale_seconds: 600 },
        },
      ],
    });
    const path = '/envoy.service.auth.v3.Authorization/Check';
    const spent = await rawCall(portOf(svc), path, frame(requestBytes()), { 'grpc-timeout': '1n' });
    expect(spent.headers['grpc-status']).toBe('4');

    // An unknown kid waits for a JWKS refetch that takes longer than the deadline.
    const other = generateEcKeyPair({ kid: 'k-unknown' });
    const token = await new SignJWT({ sub: 'u' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k-unknown' })
      .setIssuer('https://idp.example.com')
      .setAudience('api')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(other.privateKey);
    jwks.setMode('slow', { delayMs: 2000 });
    const body = checkDef.requestSerialize(
      envoyCheckRequest({ method: 'GET', path: '/api', host: 'h', token, headers: [], context: [] }),
    );
    const session = http2.connect(`http://127.0.0.1:${portOf(svc)}`);
    await new Promise((resolve) => session.once('connect', resolve));
    const t0 = Date.now();
    const r = await rawCall(portOf(svc), path, frame(body), { 'grpc-timeout': '400m' }, session);
    const took = Date.now() - t0;
    session.close();
    // Answered at the deadline, not after the 2 s key fetch (slack for a loaded machine).
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(1000);
    expect(r.trailers['grpc-status']).toBe('0');
    // The pipeline's own answer at the deadline: a 503 deny, not a transport error.
    expect(checkDef.responseDeserialize(r.body.subarray(5))).toMatchObject({
      denied_response: { status: { code: 503 } },
    });
  });
});

describe('health and drain', () => {
  it('Health/Check for an unknown service → NOT_FOUND; Watch streams SERVING then NOT_SERVING at shutdown', async () => {
    svc = await startTestService(ALLOW_ALL);
    const Client = grpc.makeGenericClientConstructor(healthService, 'Health');
    const client = new Client(svc.grpcAddress, grpc.credentials.createInsecure()) as any;
    const err = await new Promise<any>((resolve) =>
      client.check({ service: 'nope' }, (e: any) => resolve(e)),
    );
    expect(err.code).toBe(grpc.status.NOT_FOUND);

    const seen: string[] = [];
    const call = client.watch({ service: 'envoy.service.auth.v3.Authorization' });
    const ended = new Promise<number>((resolve) => {
      call.on('data', (m: any) => seen.push(m.status));
      call.on('error', (e: any) => resolve(e.code));
      call.on('end', () => resolve(0));
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual(['SERVING']);
    const s = svc;
    svc = undefined;
    await s.service.shutdown(1);
    expect(await ended).toBe(grpc.status.UNAVAILABLE);
    expect(seen).toEqual(['SERVING', 'NOT_SERVING']);
    client.close();
  });

  it('shutdown sends GOAWAY: the open connection finishes its call, and the listener is closed', async () => {
    const s = await startTestService(ALLOW_ALL);
    const session = http2.connect(`http://127.0.0.1:${portOf(s)}`);
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    await rawCall(
      portOf(s),
      '/envoy.service.auth.v3.Authorization/Check',
      frame(requestBytes()),
      {},
      session,
    );
    await s.service.shutdown(1);
    await goaway;
    session.destroy();
    const refused = await new Promise<boolean>((resolve) => {
      const c = http2.connect(`http://127.0.0.1:${portOf(s)}`);
      c.once('error', () => resolve(true));
      c.once('connect', () => {
        c.destroy();
        resolve(false);
      });
    });
    expect(refused).toBe(true);
  });
});
