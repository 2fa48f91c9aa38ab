// A CheckRequest built as Envoy builds one (lower-case keys, pseudo-headers, repeated
// headers joined with ','): used by the `check` command and the explain endpoint.

import { systemClock, type Clock } from '../core/time.js';
import type { DecodedPeer } from './messages.js';

export interface CheckRequestParts {
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly token?: string | undefined;
  readonly headers: readonly (readonly [string, string])[];
  readonly context: readonly (readonly [string, string])[];
  /** x-request-id when the headers carry none. */
  readonly requestId?: string;
}

/** The CheckRequest the `check` command and the explain endpoint send. */
export interface CheckRequestMessage {
  attributes: {
    source?: DecodedPeer;
    destination?: DecodedPeer;
    request: {
      http: {
        method: string;
        path: string;
        host: string;
        scheme: string;
        protocol: string;
        headers: Record<string, string>;
        query: string;
      };
    };
    context_extensions: Record<string, string>;
  };
}

export function buildCheckRequest(opts: CheckRequestParts, clock: Clock = systemClock): CheckRequestMessage {
  const headers: Record<string, string> = Object.create(null);
  headers[':authority'] = opts.host;
  headers[':path'] = opts.path;
  headers[':method'] = opts.method.toUpperCase();
  headers[':scheme'] = 'http';
  // Envoy sets one x-request-id at the edge; a caller's own value takes its place.
  if (!opts.headers.some(([k]) => k.toLowerCase() === 'x-request-id'))
    headers['x-request-id'] = opts.requestId ?? `check-cli-${clock.nowMs()}`;
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  for (const [k, v] of opts.headers) {
    const key = k.toLowerCase();
    // Envoy joins repeated headers with ',', but cookies with '; ' (as HTTP/2 crumbs).
    headers[key] =
      key in headers && !key.startsWith(':') ? `${headers[key]}${key === 'cookie' ? '; ' : ','}${v}` : v;
  }
  const q = opts.path.indexOf('?');
  const context: Record<string, string> = Object.create(null);
  for (const [k, v] of opts.context) context[k] = v;
  return {
    attributes: {
      request: {
        http: {
          method: opts.method.toUpperCase(),
          path: opts.path,
          host: opts.host,
          scheme: 'http',
          protocol: 'HTTP/1.1',
          headers: { ...headers },
          query: q >= 0 ? opts.path.slice(q + 1) : '',
        },
      },
      context_extensions: { ...context },
    },
  };
}
