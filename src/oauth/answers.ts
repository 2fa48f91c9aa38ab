// OAuth 2.0 error and success responses (RFC 6749 §5.1, §5.2) in the three formats
// of the Axway JWT flow: json (default), urlencoded and xml.

import { AuthzError } from '../core/errors.js';

export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'unsupported_token_type'
  | 'invalid_dpop_proof'
  | 'temporarily_unavailable'
  | 'rate_limited'
  | 'server_error';

const STATUS: Record<OAuthErrorCode, number> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  // Token exchange: an audience or resource the client may not ask for.
  invalid_target: 400,
  unsupported_token_type: 400,
  invalid_dpop_proof: 400,
  temporarily_unavailable: 503,
  // Not an RFC 6749 code (it has none for this): see docs/policies.md "Quotas (rate limits)".
  rate_limited: 429,
  server_error: 500,
};

/** An OAuth error answer. `description` is sent to the client: plain words, never a token or secret. */
/** `code` is the OAuth `error` value of the answer (RFC 6749 §5.2): `invalid_grant`, … */
export class OAuthError extends AuthzError {
  readonly status: number;
  constructor(
    readonly code: OAuthErrorCode,
    readonly description?: string,
    opts: { status?: number; logDetail?: string; retryAfterSeconds?: number } = {},
  ) {
    super(description ?? code);
    this.name = 'OAuthError';
    this.status = opts.status ?? STATUS[code];
    this.logDetail = opts.logDetail;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
  readonly logDetail: string | undefined;
  /** Sent as Retry-After (rate_limited). */
  readonly retryAfterSeconds: number | undefined;
}

export type ResponseFormat = 'json' | 'urlencoded' | 'xml';

/** What a route sends: status, headers and an already serialised body. */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;

const CONTENT_TYPE: Record<ResponseFormat, string> = {
  json: 'application/json; charset=utf-8',
  urlencoded: 'application/x-www-form-urlencoded; charset=utf-8',
  xml: 'application/xml; charset=utf-8',
};

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&apos;',
  );
}

// Characters XML 1.0 cannot carry at all, even escaped.
// eslint-disable-next-line no-control-regex
const XML_INVALID = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

/** Serialises a flat object of fields. Nested values (none in our answers) are sent as JSON text. */
export function serialize(fields: Record<string, unknown>, format: ResponseFormat, xmlRoot: string): string {
  const entries = Object.entries(fields).filter(([, v]) => v !== undefined);
  const text = (v: unknown) =>
    typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  switch (format) {
    case 'json':
      return JSON.stringify(Object.fromEntries(entries));
    case 'urlencoded':
      return new URLSearchParams(entries.map(([k, v]): [string, string] => [k, text(v)])).toString();
    case 'xml': {
      const children = entries
        .filter(([k]) => /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k))
        .map(([k, v]) => `<${k}>${xmlEscape(text(v).replace(XML_INVALID, ''))}</${k}>`)
        .join('');
      return `<?xml version="1.0" encoding="UTF-8"?><${xmlRoot}>${children}</${xmlRoot}>`;
    }
  }
}

export function tokenAnswer(fields: Record<string, unknown>, format: ResponseFormat): HttpAnswer {
  return {
    status: 200,
    headers: { 'content-type': CONTENT_TYPE[format], ...NO_STORE },
    body: serialize(fields, format, 'token_response'),
  };
}

export function errorAnswer(err: OAuthError, format: ResponseFormat, realm: string): HttpAnswer {
  const headers: Record<string, string> = { 'content-type': CONTENT_TYPE[format], ...NO_STORE };
  if (err.code === 'invalid_client')
    headers['www-authenticate'] = `Basic realm="${realm.replace(/["\\]/g, '')}"`;
  if (err.code === 'temporarily_unavailable') headers['retry-after'] = '1';
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
  const fields: Record<string, unknown> = { error: err.code };
  if (err.description) fields.error_description = err.description;
  return { status: err.status, headers, body: serialize(fields, format, 'error_response') };
}

export function jsonAnswer(status: number, fields: Record<string, unknown>): HttpAnswer {
  return {
    status,
    headers: { 'content-type': CONTENT_TYPE.json, ...NO_STORE },
    body: JSON.stringify(fields),
  };
}
