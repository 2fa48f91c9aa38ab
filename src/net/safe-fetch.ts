import http from 'node:http';
import https from 'node:https';
import { AuthzError } from '../core/errors.js';

/** Largest JWKS / discovery body accepted. */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * A fetch failed. `reason` is short, safe to log and to show in a status (never contains
 * the body, credentials or key material): `timeout`, `status 500`, `redirect refused`,
 * `body too large`, `invalid json`, `not a JSON object`, `network error (ECONNREFUSED)`,
 * `http:// refused for non-loopback host`, `invalid url`.
 */
export class FetchError extends AuthzError {
  readonly code = 'ERR_FETCH_FAILED';

  constructor(readonly reason: string) {
    super(reason);
    this.name = 'FetchError';
  }
}

export interface FetchJsonOptions {
  /** Whole request: connect + headers + body. */
  readonly timeoutMs: number;
  /** Allow http:// to non-loopback hosts. */
  readonly insecureHttp?: boolean;
  /** Default MAX_BODY_BYTES. */
  readonly maxBytes?: number;
  /** POST this form body (with these extra headers) instead of a GET. */
  readonly post?: { readonly form: string; readonly headers?: Readonly<Record<string, string>> };
}

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Parses and checks a key-source URL: https, or http for loopback hosts (or with insecureHttp). */
export function checkFetchUrl(raw: string, insecureHttp = false): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new FetchError('invalid url');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new FetchError('only http(s) urls are allowed');
  if (url.protocol === 'http:' && !insecureHttp && !isLoopbackHost(url.hostname)) {
    throw new FetchError('http:// refused for non-loopback host');
  }
  return url;
}

/** The URL without credentials, query or fragment: safe for log lines. */
export function urlForLog(raw: string): string {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

/**
 * GETs (or POSTs a form for) a JSON object with node:http(s). No redirects, body capped, one timeout for the
 * whole exchange, status must be 200, the body must parse to a JSON object.
 */
export function fetchJson(rawUrl: string, opts: FetchJsonOptions): Promise<Record<string, unknown>> {
  let url: URL;
  try {
    url = checkFetchUrl(rawUrl, opts.insecureHttp);
  } catch (err) {
    return Promise.reject(err);
  }
  const maxBytes = opts.maxBytes ?? MAX_BODY_BYTES;
  const lib = url.protocol === 'https:' ? https : http;

  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: FetchError | undefined, value?: Record<string, unknown>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else {
        resolve(value!);
      }
    };

    const post = opts.post;
    const headers: Record<string, string | number> = {
      accept: 'application/json',
      'user-agent': 'envoy-jwt-authz',
    };
    if (post) {
      Object.assign(headers, post.headers);
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(post.form);
    }
    const req = lib.request(url, { method: post ? 'POST' : 'GET', headers, agent: false });
    const timer = setTimeout(() => finish(new FetchError('timeout')), opts.timeoutMs);
    timer.unref?.();

    req.on('error', (err: NodeJS.ErrnoException) => {
      finish(new FetchError(`network error (${err.code ?? 'unknown'})`));
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        res.resume();
        finish(new FetchError('redirect refused'));
        return;
      }
      if (status !== 200) {
        res.resume();
        finish(new FetchError(`status ${status}`));
        return;
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        res.resume();
        finish(new FetchError('body too large'));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          finish(new FetchError('body too large'));
          res.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', () => finish(new FetchError('network error (body)')));
      res.on('aborted', () => finish(new FetchError('network error (aborted)')));
      res.on('end', () => {
        if (settled) return;
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          finish(new FetchError('invalid json'));
          return;
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          finish(new FetchError('not a JSON object'));
          return;
        }
        finish(undefined, parsed as Record<string, unknown>);
      });
    });
    req.end(post?.form);
  });
}

/** A short, safe reason for any error thrown while loading keys. */
export function errorReason(err: unknown): string {
  if (err instanceof FetchError) return err.reason;
  if (err instanceof Error && 'reason' in err && typeof err.reason === 'string') return err.reason;
  return 'unexpected error';
}
