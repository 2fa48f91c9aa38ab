// The HTTP listener against slow and piled-up clients, over real sockets: request headers
// must be complete in time, connections are capped, and a discovery document built from
// the request's Host is never cached for others.
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Service, type ServiceOptions } from '../../src/server/app.js';
import { loadConfigObject } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { Metrics } from '../../src/observability/metrics.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { captureLogger } from '../helpers/logger.js';

const running: { close(): Promise<void> }[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const r of running.splice(0)) await r.close();
});

async function start(
  config: Record<string, unknown> = {},
  opts: Partial<ServiceOptions> = {},
): Promise<Service> {
  const service = await Service.start(loadConfigObject(config, process.cwd(), {}), {
    logger: captureLogger('warn').logger,
    metrics: new Metrics({ processMetrics: false }),
    grpcAddress: '127.0.0.1:0',
    httpAddress: '127.0.0.1:0',
    ...opts,
  });
  running.push({ close: () => service.shutdown(0) });
  return service;
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    sockets.push(s);
    s.once('error', reject);
  });
}

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

describe('HTTP listener limits', () => {
  it('by default: headers within 10 s, a whole request within 30 s, checked every second, 1024 connections', async () => {
    const service = await start();
    const server = service.http.server as import('node:http').Server & {
      connectionsCheckingInterval: number;
    };
    expect(server.headersTimeout).toBe(10_000);
    expect(server.requestTimeout).toBe(30_000);
    expect(server.connectionsCheckingInterval).toBeLessThanOrEqual(1_000);
    expect(server.maxConnections).toBe(1024);
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

  it('server.http_max_connections: 2 closes a third concurrent connection; a freed slot is usable again', async () => {
    const service = await start({ server: { http_max_connections: 2 } });
    const port = service.httpPort;
    const first = await open(port);
    await open(port);
    await sleep(100); // real time: the real listener must have accepted both sockets first
    const third = await open(port);
    const got: Buffer[] = [];
    third.on('data', (d: Buffer) => got.push(d));
    third.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await closedAfter(third, Date.now(), 2_000);
    expect(Buffer.concat(got).length).toBe(0);

    first.destroy();
    await sleep(200); // real time: the real listener must see the freed socket close
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { connection: 'close' } });
    expect(res.status).toBe(200);
  });

  it('server.http_max_connections must be at least 1', () => {
    let problems: string[] = [];
    try {
      loadConfigObject({ server: { http_max_connections: 0 } }, process.cwd(), {});
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      problems = (err as ConfigError).problems;
    }
    expect(problems.some((p) => /^server\.http_max_connections: must be >= 1, got 0/.test(p))).toBe(true);
    const ok = loadConfigObject({ server: { http_max_connections: 5 } }, process.cwd(), {});
    expect(ok.config.server.http_max_connections).toBe(5);
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
