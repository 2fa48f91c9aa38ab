import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  checkFetchUrl,
  fetchJson,
  FetchError,
  isLoopbackHost,
  MAX_BODY_BYTES,
} from '../../../src/net/safe-fetch.js';
import { startJwksServer, type JwksServer } from '../../helpers/jwks-server.js';
import { generateRsaKeyPair, makeJwks } from '../../helpers/keys.js';

const jwks = makeJwks(generateRsaKeyPair({ kid: 'k1' }));
let server: JwksServer;

beforeAll(async () => {
  server = await startJwksServer({ jwks });
});
afterAll(() => server.close());
afterEach(() => {
  server.setMode('ok');
  server.setJwks(jwks);
  server.resetCounts();
});

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FetchError);
    return (err as FetchError).reason;
  }
  throw new Error('expected a FetchError');
}

describe('fetchJson', () => {
  it('GETs the JSON object with accept: application/json', async () => {
    const body = await fetchJson(server.url, { timeoutMs: 2000 });
    expect(body).toEqual(jwks);
    expect(server.requests).toBe(1);
    expect(server.log[0]!.method).toBe('GET');
    expect(server.log[0]!.headers.accept).toBe('application/json');
  });

  it('POSTs a form with its headers and exact content-length when asked', async () => {
    let seen: { method?: string; headers: http.IncomingHttpHeaders; body: string } | undefined;
    const srv = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        seen = { method: req.method, headers: req.headers, body };
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":false}');
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/introspect`;
      const form = 'token=%C3%A9t%C3%A9&token_type_hint=access_token';
      const body = await fetchJson(url, {
        timeoutMs: 2000,
        post: { form, headers: { authorization: 'Basic eDp5' } },
      });
      expect(body).toEqual({ active: false });
      expect(seen?.method).toBe('POST');
      expect(seen?.body).toBe(form);
      expect(seen?.headers['content-type']).toBe('application/x-www-form-urlencoded');
      expect(seen?.headers['content-length']).toBe(String(form.length));
      expect(seen?.headers.authorization).toBe('Basic eDp5');
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  it('status 500 is an error', async () => {
    server.setMode('status500');
    expect(await reasonOf(fetchJson(server.url, { timeoutMs: 2000 }))).toBe('status 500');
  });

  it('non-200 success statuses are errors too', async () => {
    server.route('/204', (_req, res) => {
      res.writeHead(204);
      res.end();
    });
    expect(await reasonOf(fetchJson(`${server.baseUrl}/204`, { timeoutMs: 2000 }))).toBe('status 204');
  });

  it('invalid JSON is an error', async () => {
    server.setMode('invalidJson');
    expect(await reasonOf(fetchJson(server.url, { timeoutMs: 2000 }))).toBe('invalid json');
  });

  it('JSON that is not an object is an error', async () => {
    for (const body of ['[1,2]', '"keys"', 'null', '42']) {
      server.route('/scalar', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      });
      expect(await reasonOf(fetchJson(`${server.baseUrl}/scalar`, { timeoutMs: 2000 }))).toBe(
        'not a JSON object',
      );
    }
  });

  it('never follows a redirect: the target receives no request', async () => {
    server.setMode('redirect');
    expect(await reasonOf(fetchJson(server.url, { timeoutMs: 2000 }))).toBe('redirect refused');
    // Real time: a redirect target on a real socket must stay unrequested, not just unawaited.
    await new Promise((r) => setTimeout(r, 100));
    expect(server.requests).toBe(1);
    expect(server.redirectTargetRequests).toBe(0);
  });

  it('refuses a 5 MB body (streamed, no content-length) and aborts the download', async () => {
    server.setMode('huge');
    const started = Date.now();
    expect(await reasonOf(fetchJson(server.url, { timeoutMs: 5000 }))).toBe('body too large');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('refuses a body above the cap announced by content-length', async () => {
    server.route('/big', (_req, res) => {
      res.writeHead(200, { 'content-length': MAX_BODY_BYTES + 1 });
      res.end(Buffer.alloc(MAX_BODY_BYTES + 1, 0x20));
    });
    expect(await reasonOf(fetchJson(`${server.baseUrl}/big`, { timeoutMs: 5000 }))).toBe('body too large');
    expect(await reasonOf(fetchJson(server.url, { timeoutMs: 5000, maxBytes: 10 }))).toBe('body too large');
  });

  it('honours the timeout against a slow server', async () => {
    server.setMode('slow', { delayMs: 2000 });
    const started = Date.now();
    expect(await reasonOf(fetchJson(server.url, { timeoutMs: 200 }))).toBe('timeout');
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(700);
  });

  it('the timeout covers a body that trickles in after the headers', async () => {
    server.route('/trickle', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":[');
      const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(' ')), 50);
      res.on('close', () => clearInterval(t));
    });
    const started = Date.now();
    expect(await reasonOf(fetchJson(`${server.baseUrl}/trickle`, { timeoutMs: 300 }))).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(800);
  });

  it('honours the timeout against a server that never answers', async () => {
    server.setMode('hang');
    const started = Date.now();
    expect(await reasonOf(fetchJson(server.url, { timeoutMs: 250 }))).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(750);
  });

  it('a connection refused is a network error', async () => {
    const s = http.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const { port } = s.address() as AddressInfo;
    await new Promise<void>((r) => s.close(() => r()));
    expect(await reasonOf(fetchJson(`http://127.0.0.1:${port}/jwks`, { timeoutMs: 1000 }))).toBe(
      'network error (ECONNREFUSED)',
    );
  });

  it('refuses http:// to a non-loopback host unless insecure_http, without connecting', async () => {
    expect(await reasonOf(fetchJson('http://idp.example.com/jwks', { timeoutMs: 1000 }))).toMatch(
      /http:\/\//,
    );
    expect(await reasonOf(fetchJson('ftp://127.0.0.1/jwks', { timeoutMs: 1000 }))).toMatch(/http/);
    expect(await reasonOf(fetchJson('not a url', { timeoutMs: 1000 }))).toBe('invalid url');
    expect(() => checkFetchUrl('http://10.0.0.1/jwks', true)).not.toThrow();
    expect(() => checkFetchUrl('https://idp.example.com/jwks')).not.toThrow();
  });
});

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.255.0.9', true],
    ['localhost', true],
    ['[::1]', true],
    ['::1', true],
    ['128.0.0.1', false],
    ['127.0.0.1.example.com', false],
    ['localhost.example.com', false],
    ['10.0.0.1', false],
  ])('%s → %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});
