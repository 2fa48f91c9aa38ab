// A real local HTTP server (127.0.0.1, ephemeral port) that serves a JWKS, an OIDC
// discovery document and misbehaviours (500, invalid JSON, redirect, huge body, slow,
// hang), for tests across the project.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type JwksServerMode = 'ok' | 'status500' | 'invalidJson' | 'redirect' | 'huge' | 'slow' | 'hang';

export const JWKS_PATH = '/jwks.json';
export const DISCOVERY_PATH = '/.well-known/openid-configuration';
export const REDIRECT_TARGET_PATH = '/redirected/jwks.json';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
}

export interface JwksServer {
  /** Origin, e.g. http://127.0.0.1:41234 */
  readonly baseUrl: string;
  /** The JWKS URL (baseUrl + /jwks.json). */
  readonly url: string;
  /** The discovery URL (baseUrl + /.well-known/openid-configuration). */
  readonly discoveryUrl: string;
  /** Where `redirect` mode points (serves the JWKS too, so a followed redirect would succeed). */
  readonly redirectTargetUrl: string;
  /** Requests to the JWKS path. */
  readonly requests: number;
  /** Requests to the discovery path. */
  readonly discoveryRequests: number;
  /** Requests to the redirect target. */
  readonly redirectTargetRequests: number;
  /** Every request received, in order. */
  readonly log: readonly RecordedRequest[];
  setJwks(jwks: unknown): void;
  /** Mode of the JWKS path. `slow` answers after `delayMs` (default 500). */
  setMode(mode: JwksServerMode, opts?: { delayMs?: number }): void;
  /**
   * The discovery document. Default: `{ issuer: baseUrl, jwks_uri: url }`. `undefined` = 404.
   */
  setDiscovery(doc: unknown): void;
  /** Serve anything at another path (exact match, without query). */
  route(path: string, handler: (req: IncomingMessage, res: ServerResponse) => void): void;
  /** Resets the request counters and log. */
  resetCounts(): void;
  /** Closes the server, cutting hanging connections. */
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startJwksServer(
  opts: { jwks?: unknown; mode?: JwksServerMode } = {},
): Promise<JwksServer> {
  let jwks: unknown = opts.jwks ?? { keys: [] };
  let mode: JwksServerMode = opts.mode ?? 'ok';
  let delayMs = 500;
  let discovery: unknown = 'default';
  let requests = 0;
  let discoveryRequests = 0;
  let redirectTargetRequests = 0;
  const log: RecordedRequest[] = [];
  const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
  const timers = new Set<NodeJS.Timeout>();

  const serveJwks = (res: ServerResponse): void => {
    switch (mode) {
      case 'ok':
        sendJson(res, 200, jwks);
        return;
      case 'status500':
        sendJson(res, 500, { error: 'internal' });
        return;
      case 'invalidJson':
        sendJson(res, 200, '{"keys": [ this is not json');
        return;
      case 'redirect':
        res.writeHead(302, { location: REDIRECT_TARGET_PATH, 'content-length': 0 });
        res.end();
        return;
      case 'huge': {
        // 5 MB of valid JSON, streamed without content-length (chunked) so the client
        // has to count bytes itself.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.on('error', () => undefined);
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        let sent = 0;
        const total = 5 * 1024 * 1024;
        res.write('{"keys":[],"pad":"');
        const pump = (): void => {
          while (sent < total && !res.destroyed) {
            sent += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          if (!res.destroyed) res.end('"}');
        };
        pump();
        return;
      }
      case 'slow': {
        const t = setTimeout(() => {
          timers.delete(t);
          if (!res.destroyed) sendJson(res, 200, jwks);
        }, delayMs);
        timers.add(t);
        return;
      }
      case 'hang':
        return;
    }
  };

  const server = http.createServer((req, res) => {
    res.on('error', () => undefined);
    const path = (req.url ?? '/').split('?')[0]!;
    log.push({ method: req.method ?? 'GET', path, headers: req.headers });
    const custom = routes.get(path);
    if (custom) {
      custom(req, res);
      return;
    }
    if (path === JWKS_PATH) {
      requests++;
      serveJwks(res);
    } else if (path === REDIRECT_TARGET_PATH) {
      redirectTargetRequests++;
      sendJson(res, 200, jwks);
    } else if (path === DISCOVERY_PATH) {
      discoveryRequests++;
      if (discovery === undefined) sendJson(res, 404, { error: 'not found' });
      else
        sendJson(
          res,
          200,
          discovery === 'default' ? { issuer: baseUrl, jwks_uri: baseUrl + JWKS_PATH } : discovery,
        );
    } else {
      sendJson(res, 404, { error: 'not found' });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;

  return {
    baseUrl,
    url: baseUrl + JWKS_PATH,
    discoveryUrl: baseUrl + DISCOVERY_PATH,
    redirectTargetUrl: baseUrl + REDIRECT_TARGET_PATH,
    get requests() {
      return requests;
    },
    get discoveryRequests() {
      return discoveryRequests;
    },
    get redirectTargetRequests() {
      return redirectTargetRequests;
    },
    get log() {
      return log;
    },
    setJwks(value) {
      jwks = value;
    },
    setMode(value, o) {
      mode = value;
      if (o?.delayMs !== undefined) delayMs = o.delayMs;
    },
    setDiscovery(doc) {
      discovery = doc;
    },
    route(path, handler) {
      routes.set(path, handler);
    },
    resetCounts() {
      requests = 0;
      discoveryRequests = 0;
      redirectTargetRequests = 0;
      log.length = 0;
    },
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
