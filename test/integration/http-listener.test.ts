// The HTTP listener against slow and piled-up clients, over real sockets: request headers
// and bodies must be complete in time, connections are capped (per client too), health
// probes keep a way in, and a discovery document built from the request's Host is never
// cached for others.
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { App, type AppOptions } from '../../src/server/app.js';
import { loadConfigObject } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { Metrics } from '../../src/observability/metrics.js';
import { HTTP_PROBE_HEADROOM } from '../../src/server/http.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { captureLogger } from '../helpers/logger.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';

const running: { close(): Promise<void> }[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const r of running.splice(0)) await r.close();
});

async function start(config: Record<string, unknown> = {}, opts: Partial<AppOptions> = {}): Promise<App> {
  const service = await App.start(loadConfigObject(config, process.cwd(), {}), {
    logger: captureLogger('warn').logger,
    metrics: new Metrics({ processMetrics: false }),
    grpcAddress: '127.0.0.1:0',
    httpAddress: '127.0.0.1:0',
    ...opts,
  });
  running.push({ close: () => service.shutdown(0) });
  return service;
}

/** A TCP connection from `from` (another loopback address is another client: Linux routes 127/8 to lo). */
function open(port: number, from = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: from }, () => resolve(s));
    sockets.push(s);
    s.once('error', reject);
  });
}

/** True while the peer has not closed `s` (after giving it `ms` to do so). */
async function stillOpen(s: Socket, ms = 0): Promise<boolean> {
  s.on('error', () => undefined);
  if (s.destroyed || s.readableEnded) return false;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(!s.destroyed && !s.readableEnded), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(false);
    });
    s.once('end', () => {
      clearTimeout(timer);
      resolve(false);
    });
    s.resume();
  });
}

/** One request on a fresh connection from 127.0.0.1: status and ms taken, or the failure. */
function probe(
  port: number,
  path: string,
  limitMs = 1_000,
): Promise<{ status: number; ms: number; connection?: string } | { error: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, agent: false, localAddress: '127.0.0.1', timeout: limitMs },
      (res) => {
        res.resume();
        res.once('end', () =>
          resolve({ status: res.statusCode ?? 0, ms: Date.now() - t0, connection: res.headers.connection }),
        );
      },
    );
    req.once('timeout', () => req.destroy(new Error(`no answer within ${limitMs} ms`)));
    req.once('error', (err) => resolve({ error: err.message, ms: Date.now() - t0 }));
    req.end();
  });
}

/** A probe that must answer `status` within `limitMs`; one retry absorbs a scheduling hiccup on a loaded machine. */
async function expectAnswer(port: number, path: string, status = 200, limitMs = 1_000) {
  let r = await probe(port, path, limitMs);
  if (!('status' in r) || r.status !== status) r = await probe(port, path, limitMs);
  expect(r, `${path}`).toMatchObject({ status });
  expect(r.ms).toBeLessThan(limitMs);
  return r as { status: number; ms: number; connection?: string };
}

/** The token endpoint on (an ephemeral signing key, no clients): it reads request bodies. */
const WITH_TOKEN_ENDPOINT = {
  token_endpoint: {
    enabled: true,
    issuer: 'https://authz.test',
    audience: 'https://authz.test/oauth2/token',
    clients: [],
  },
};

const slowTokenRequest = (length: number) =>
  'POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
  `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${length}\r\n\r\ng`;
/** The attack as reported: larger than the token endpoint takes (413 at once), then trickled. */
const SLOW_TOKEN_REQUEST = slowTokenRequest(100_000);

/** Resolves with the ms from `since` until the peer closes the socket (or rejects after `limitMs`). */
function closedAfter(s: Socket, since: number, limitMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still open after ${limitMs} ms`)), limitMs);
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - since);
    });
    s.resume();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** authz_http_refused_total by reason. */
async function refusals(metrics: Metrics): Promise<Record<string, number>> {
  const text = await metrics.registry.getSingleMetricAsString('authz_http_refused_total');
  return Object.fromEntries([...text.matchAll(/reason="(\w+)"\} (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

describe('HTTP listener limits', () => {
  it('by default: headers within 10 s, a body 10 s later, checked every second, 1024 connections plus probe headroom', async () => {
    const service = await start();
    const server = service.http.server as import('node:http').Server & {
      connectionsCheckingInterval: number;
    };
    expect(server.headersTimeout).toBe(10_000);
    // the backstop for the whole request: headers, then the body's own 10 s
    expect(server.requestTimeout).toBe(20_000);
    expect(server.connectionsCheckingInterval).toBeLessThanOrEqual(1_000);
    expect(server.maxConnections).toBe(1024 + HTTP_PROBE_HEADROOM);
    expect(service.current.config.server.http_max_connections_per_client).toBe(64);
  });

  it('a client that sends part of its headers and then nothing is disconnected at the headers timeout', async () => {
    const timeoutMs = 1_500;
    const service = await start({}, { httpHeadersTimeoutMs: timeoutMs });
    const s = await open(service.httpPort);
    const t0 = Date.now();
    s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const ms = await closedAfter(s, t0, timeoutMs + 1_500);
    expect(ms).toBeGreaterThanOrEqual(timeoutMs - 50);
  });

  it('trickling header bytes (each well within the idle timeout) does not keep the connection open', async () => {
    const timeoutMs = 1_500;
    const service = await start({}, { httpHeadersTimeoutMs: timeoutMs });
    const s = await open(service.httpPort);
    const t0 = Date.now();
    s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const trickle = setInterval(() => s.writable && s.write('X-Slow: 1\r\n'), 200);
    try {
      const ms = await closedAfter(s, t0, timeoutMs + 1_500);
      expect(ms).toBeGreaterThanOrEqual(timeoutMs - 50);
    } finally {
      clearInterval(trickle);
    }
  });

  it('a complete request within the timeout is answered', async () => {
    const service = await start({}, { httpHeadersTimeoutMs: 1_500 });
    const s = await open(service.httpPort);
    const data: Buffer[] = [];
    s.on('data', (d: Buffer) => data.push(d));
    s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    await closedAfter(s, Date.now(), 3_000);
    expect(Buffer.concat(data).toString()).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('server.http_max_connections: 2 keeps a third connection for probes only, closes those beyond the headroom on arrival; a freed slot is usable again', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const service = await start({ server: { http_max_connections: 2 } }, { metrics });
    const port = service.httpPort;
    const first = await open(port);
    await open(port);
    await sleep(100); // real time: the real listener must have accepted both sockets first
    // the third connection is in the probe headroom: anything but a probe is refused and closed
    const third = await open(port);
    const got: Buffer[] = [];
    third.on('data', (d: Buffer) => got.push(d));
    third.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await closedAfter(third, Date.now(), 2_000);
    expect(Buffer.concat(got).toString()).toMatch(/^HTTP\/1\.1 503 .*\r\nconnection: close\r\n/is);
    expect(await refusals(metrics)).toEqual({ probe_only: 1 });
    // cap + headroom open: the next connection is not even handed over
    const headroom = await Promise.all(Array.from({ length: HTTP_PROBE_HEADROOM }, () => open(port)));
    await sleep(100); // real time: the listener must have accepted them
    const beyond = await open(port);
    expect(await stillOpen(beyond, 300)).toBe(false);
    expect(await refusals(metrics)).toMatchObject({ connections: 1 });
    for (const s of headroom) s.destroy();

    first.destroy();
    await sleep(200); // real time: the real listener must see the freed socket close
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: 'close' } });
    expect(res.status).toBe(200);
  });

  it('with one client holding every slot it is allowed, /healthz and /readyz still answer another client within 1 s', async () => {
    const service = await start({ server: { http_max_connections: 3 } });
    const port = service.httpPort;
    const held = await Promise.all([1, 2, 3].map(() => open(port, '127.0.0.2')));
    for (const s of held) s.write(SLOW_TOKEN_REQUEST);
    await sleep(200); // real time: the real listener must have accepted them
    for (const s of held) expect(await stillOpen(s)).toBe(true);
    for (const path of ['/healthz', '/readyz', '/healthz']) {
      const r = await expectAnswer(port, path);
      expect(r.connection).toBe('close'); // a headroom connection serves one probe
    }
    // the headroom is for probes: the token endpoint and metrics stay closed to this client
    const other = await probe(port, '/metrics');
    expect(other).toMatchObject({ status: 503 });
    // a headroom connection that sends nothing does not keep its place
    const idle = await open(port);
    const t0 = Date.now();
    expect(await closedAfter(idle, t0, 4_000)).toBeLessThan(4_000);
  });

  it('server.http_max_connections_per_client: 3 closes a fourth connection from that client, not from others', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const service = await start({ server: { http_max_connections_per_client: 3 } }, { metrics });
    const port = service.httpPort;
    const mine = await Promise.all([1, 2, 3].map(() => open(port, '127.0.0.2')));
    await sleep(100); // real time: the real listener must have accepted them
    const fourth = await open(port, '127.0.0.2');
    const got: Buffer[] = [];
    fourth.on('data', (d: Buffer) => got.push(d));
    fourth.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await closedAfter(fourth, Date.now(), 2_000);
    expect(Buffer.concat(got).length).toBe(0);
    for (const s of mine) expect(await stillOpen(s)).toBe(true);
    expect(await refusals(metrics)).toEqual({ client_connections: 1 });
    // another client (127.0.0.1) is not affected: an ordinary request is served
    await expectAnswer(port, '/metrics', 200, 3_000);
    // a slot the client frees is its own again
    mine[0]!.destroy();
    await sleep(200); // real time: the listener must see the socket close
    const again = await open(port, '127.0.0.2');
    expect(await stillOpen(again, 300)).toBe(true);
  });

  it('server.http_max_connections_per_client: reloaded like http_max_connections', async () => {
    const service = await start({ server: { http_max_connections_per_client: 1 } });
    const port = service.httpPort;
    await open(port, '127.0.0.2');
    await sleep(100);
    expect(await stillOpen(await open(port, '127.0.0.2'), 300)).toBe(false);
    await service.reload(
      loadConfigObject({ server: { http_max_connections_per_client: 2 } }, process.cwd(), {}),
    );
    expect(await stillOpen(await open(port, '127.0.0.2'), 300)).toBe(true);
  });

  it('1,100 slow token requests from one client (127.0.0.2) leave /healthz and /readyz answering 127.0.0.1 within 1 s', async () => {
    const service = await start(WITH_TOKEN_ENDPOINT); // the defaults: 1024 connections, 64 per client
    const port = service.httpPort;
    const attack: Socket[] = [];
    for (let batch = 0; batch < 11; batch++) {
      const opened = await Promise.all(
        Array.from({ length: 100 }, () =>
          open(port, '127.0.0.2').then(
            (s) => s,
            () => undefined, // refused or reset on arrival: that is the point
          ),
        ),
      );
      for (const s of opened) {
        if (!s) continue;
        s.on('error', () => undefined);
        if (s.writable) s.write(SLOW_TOKEN_REQUEST);
        attack.push(s);
      }
    }
    // a byte every 4 s would keep each request alive for ever on an unprotected listener
    const trickle = setInterval(() => {
      for (const s of attack) if (s.writable) s.write('g');
    }, 4_000);
    try {
      await sleep(500); // real time: the listener must have sorted out every connection
      for (let round = 0; round < 3; round++) {
        await expectAnswer(port, '/healthz');
        await expectAnswer(port, '/readyz');
        await sleep(300);
      }
      const open64 = (await Promise.all(attack.map((s) => stillOpen(s)))).filter(Boolean).length;
      expect(open64).toBe(64);
    } finally {
      clearInterval(trickle);
    }
  }, 20_000);

  it('a request body that does not arrive in full within the body timeout gets 408 and the connection is closed', async () => {
    const bodyMs = 1_500;
    const metrics = new Metrics({ processMetrics: false });
    const service = await start(WITH_TOKEN_ENDPOINT, { httpBodyTimeoutMs: bodyMs, metrics });
    for (const [length, status] of [
      [1_000, 408], // a body the endpoint would read: no answer yet, so 408
      [100_000, 413], // too large: answered at once, but the trickle must not hold the connection
    ] as const) {
      const s = await open(service.httpPort);
      const got: Buffer[] = [];
      s.on('data', (d: Buffer) => got.push(d));
      const t0 = Date.now();
      s.write(slowTokenRequest(length));
      // each byte well within the idle timeout
      const trickle = setInterval(() => s.writable && s.write('g'), 200);
      try {
        const ms = await closedAfter(s, t0, bodyMs + 2_000);
        expect(ms).toBeGreaterThanOrEqual(bodyMs - 50);
      } finally {
        clearInterval(trickle);
      }
      expect(Buffer.concat(got).toString()).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    }
    expect(await refusals(metrics)).toEqual({ body_timeout: 2 });
  });

  it('a body that arrives in time is read and answered as usual', async () => {
    const service = await start(WITH_TOKEN_ENDPOINT, { httpBodyTimeoutMs: 1_500 });
    const s = await open(service.httpPort);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    const closed = closedAfter(s, Date.now(), 4_000);
    const body = 'grant_type=password&client_id=nobody';
    s.write(
      'POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n' +
        `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    await sleep(300);
    s.write(body);
    await closed;
    // the token endpoint read the body (its grant type), and answered: not a timeout
    expect(Buffer.concat(got).toString()).toMatch(/^HTTP\/1\.1 400 [\s\S]*"error":"unsupported_grant_type"/);
    // and the connection stays usable past the body timeout when a request completes
    const k = await open(service.httpPort);
    k.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await stillOpen(k, 2_000)).toBe(true);
  });

  for (const key of ['http_max_connections', 'http_max_connections_per_client']) {
    it(`server.${key} must be at least 1`, () => {
      let problems: string[] = [];
      try {
        loadConfigObject({ server: { [key]: 0 } }, process.cwd(), {});
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        problems = (err as ConfigError).problems;
      }
      expect(problems.some((p) => new RegExp(`^server\\.${key}: must be >= 1`).test(p))).toBe(true);
      const ok = loadConfigObject({ server: { [key]: 5 } }, process.cwd(), {});
      expect(ok.config.server[key as 'http_max_connections']).toBe(5);
    });
  }
});

describe('HTTPS listener: the same limits', () => {
  let pki: TestPki;
  let tls: { cert_file: string; key_file: string };
  beforeAll(() => {
    pki = createTestPki();
    const srv = pki.issue('srv-http');
    tls = { cert_file: srv.cert, key_file: srv.key };
  });
  afterAll(() => pki.cleanup());

  const get = (port: number, path: string) =>
    new Promise<{ status: number; connection?: string }>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          servername: 'localhost',
          port,
          path,
          agent: false,
          ca: readFileSync(pki.caCert),
        },
        (res) => {
          res.resume();
          res.once('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
        },
      );
      req.once('error', reject);
      req.end();
    });

  it('the per-client cap and the probe headroom work on TLS connections', async () => {
    const service = await start({
      server: { http_tls: tls, http_max_connections: 2, http_max_connections_per_client: 2 },
    });
    const port = service.httpPort;
    // TLS over a TCP connection from `from` (tls.connect takes no local address of its own)
    const handshake = async (from: string) => {
      const raw = await open(port, from);
      return new Promise<Socket>((resolve, reject) => {
        const s = tlsConnect({ socket: raw, servername: 'localhost', ca: readFileSync(pki.caCert) }, () =>
          resolve(s),
        );
        sockets.push(s);
        s.once('error', reject);
      });
    };
    const held = [await handshake('127.0.0.2'), await handshake('127.0.0.2')];
    await sleep(100); // real time: the listener must have counted both
    // a third from the same client is refused (reset during the handshake, or closed just after)
    const third = await handshake('127.0.0.2').then(
      (s) => stillOpen(s, 300),
      () => false,
    );
    expect(third).toBe(false);
    for (const s of held) expect(await stillOpen(s)).toBe(true);
    // every ordinary slot is taken: probes still answer, on a connection that then closes
    expect(await get(port, '/healthz')).toEqual({ status: 200, connection: 'close' });
    expect(await get(port, '/readyz')).toMatchObject({ status: 200, connection: 'close' });
    expect(await get(port, '/metrics')).toMatchObject({ status: 503 });
  });

  it('a TLS handshake trickled byte by byte is dropped at the headers timeout', async () => {
    const timeoutMs = 1_500;
    const service = await start({ server: { http_tls: tls } }, { httpHeadersTimeoutMs: timeoutMs });
    const s = await open(service.httpPort);
    const t0 = Date.now();
    s.write(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00])); // a handshake record of 16 KiB, announced
    const trickle = setInterval(() => s.writable && s.write(Buffer.from([0x01])), 200);
    try {
      const ms = await closedAfter(s, t0, timeoutMs + 2_000);
      expect(ms).toBeGreaterThanOrEqual(timeoutMs - 50);
    } finally {
      clearInterval(trickle);
    }
  });
});

describe('/.well-known/openid-configuration cache policy', () => {
  const config = (extra: Record<string, unknown> = {}) => ({
    upstream: {
      token: { issuer: 'https://authz.internal', audiences: ['backend'], signing: { alg: 'ES256' } },
    },
    ...extra,
  });
  const startSvc = async (extra?: Record<string, unknown>): Promise<TestService> => {
    const svc = await startTestService(config(extra), { logLevel: 'warn' });
    running.push(svc);
    return svc;
  };

  it('built from the Host header: no-store and Vary: Host', async () => {
    const svc = await startSvc();
    const res = await fetch(`${svc.httpUrl}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(
      res.headers
        .get('vary')
        ?.split(/,\s*/)
        .map((v) => v.toLowerCase()),
    ).toContain('host');
    expect(((await res.json()) as { jwks_uri: string }).jwks_uri).toBe(
      `${svc.httpUrl}/.well-known/jwks.json`,
    );
  });

  it('with public_base_url: the normal public cache lifetime', async () => {
    const svc = await startSvc({ public_base_url: 'https://authz.example.com' });
    const res = await fetch(`${svc.httpUrl}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
    expect(res.headers.get('vary') ?? '').not.toMatch(/host/i);
  });
});
