import { Transform, type TransformCallback } from 'node:stream';
import formbody from '@fastify/formbody';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NO_STORE } from './answers.js';
import type { OAuthRequest, TokenService } from './token-service.js';
import type { HttpAnswer } from './answers.js';
import { tracer } from '../observability/tracing.js';
import { DEFAULT_TOKEN_PATH } from '../config/schema.js';

/** Upper bound of token_endpoint.max_body_bytes (the schema's max); the live limit is the service's. */
const ABSOLUTE_BODY_LIMIT = 1_048_576;

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', ...NO_STORE };

function oauthError(reply: FastifyReply, status: number, error: string, description?: string): FastifyReply {
  return reply
    .code(status)
    .headers(JSON_HEADERS)
    .send(JSON.stringify(description ? { error, error_description: description } : { error }));
}

function bodyTooLarge(): Error {
  return Object.assign(new Error('request body too large'), {
    statusCode: 413,
    code: 'OAUTH_BODY_TOO_LARGE',
  });
}

/** Counts bytes and fails the stream once they exceed the limit (bodies without content-length). */
class ByteLimit extends Transform {
  private seen = 0;
  receivedEncodedLength = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    this.receivedEncodedLength = this.seen;
    if (this.seen > this.limit) cb(bodyTooLarge());
    else cb(null, chunk);
  }
}

type Handler = (svc: TokenService, req: OAuthRequest) => Promise<HttpAnswer>;

/**
 * The URL as this request reached us: the connection's scheme (X-Forwarded-Proto is not
 * trusted), the Host header and the path. DPoP proofs are compared with it unless
 * public_base_url says what clients use.
 */
function receivedUrl(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}${pathOf(request.originalUrl)}`;
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q >= 0 ? url.slice(0, q) : url;
}

/** The route the token endpoint is registered at; token_endpoint.path is mapped onto it. */
export const TOKEN_ROUTE = DEFAULT_TOKEN_PATH;

/**
 * For the HTTP server's rewriteUrl: a POST to the configured token path (when it is
 * not the default) is routed to the token endpoint's route. The route itself then
 * refuses requests that did not come in at the configured path, so the default path
 * answers 404 once another is configured. Read per request: a reload may change it.
 */
export function rewriteTokenPath(
  method: string | undefined,
  url: string | undefined,
  tokenPath: string | undefined,
): string {
  const u = url ?? '/';
  if (method !== 'POST' || tokenPath === undefined || tokenPath === TOKEN_ROUTE) return u;
  const q = u.indexOf('?');
  const path = q >= 0 ? u.slice(0, q) : u;
  return path === tokenPath ? `${TOKEN_ROUTE}${q >= 0 ? u.slice(q) : ''}` : u;
}

const ROUTES: [string, Handler][] = [
  [TOKEN_ROUTE, (svc, req) => svc.handleToken(req)],
  ['/oauth2/revoke', (svc, req) => svc.handleRevoke(req)],
  ['/oauth2/introspect', (svc, req) => svc.handleIntrospect(req)],
];

/**
 * POST /oauth2/token (or token_endpoint.path), /oauth2/revoke and /oauth2/introspect. Form bodies only
 * (application/x-www-form-urlencoded; anything else is 415), capped at the service's
 * max_body_bytes. Every route answers 404 while getService() is undefined (endpoint
 * disabled), so a config reload can switch the endpoint on and off.
 */
export function registerOAuthRoutes(app: FastifyInstance, getService: () => TokenService | undefined): void {
  void app.register(async (scope) => {
    // Only form bodies in this scope: JSON or text bodies are answered 415.
    scope.removeAllContentTypeParsers();
    await scope.register(formbody, { bodyLimit: ABSOLUTE_BODY_LIMIT });

    scope.addHook('onRequest', async (_request, reply) => {
      if (!getService()) return oauthError(reply, 404, 'not_found', 'the token endpoint is not enabled');
      return undefined;
    });

    scope.addHook('preParsing', async (request, _reply, payload) => {
      const limit = getService()?.maxBodyBytes ?? ABSOLUTE_BODY_LIMIT;
      const declared = Number(request.headers['content-length']);
      if (Number.isFinite(declared) && declared > limit) throw bodyTooLarge();
      return payload.pipe(new ByteLimit(limit));
    });

    scope.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      const status = error.statusCode ?? 500;
      if (status === 413) return oauthError(reply, 413, 'invalid_request', 'the request body is too large');
      if (status === 415) {
        return oauthError(
          reply,
          415,
          'invalid_request',
          'the request body must be application/x-www-form-urlencoded',
        );
      }
      if (status >= 400 && status < 500)
        return oauthError(reply, 400, 'invalid_request', 'the request is malformed');
      request.log.error({ err: error.message }, 'token endpoint error');
      return oauthError(reply, 500, 'server_error', 'the request could not be processed');
    });

    for (const [path, handle] of ROUTES) {
      scope.post(path, { bodyLimit: ABSOLUTE_BODY_LIMIT }, async (request, reply) => {
        const svc = getService();
        if (!svc) return oauthError(reply, 404, 'not_found', 'the token endpoint is not enabled');
        // Served at token_endpoint.path only (rewriteTokenPath brings that path here).
        if (path === TOKEN_ROUTE && pathOf(request.originalUrl) !== svc.tokenPath)
          return oauthError(reply, 404, 'not_found', 'the token endpoint is not served at this path');
        const body = request.body;
        if (typeof body !== 'object' || body === null || Array.isArray(body)) {
          return oauthError(
            reply,
            400,
            'invalid_request',
            'the request body must be application/x-www-form-urlencoded',
          );
        }
        const auth = request.headers.authorization;
        const dpop = request.headers.dpop;
        const oauthRequest: OAuthRequest = {
          params: body as Record<string, unknown>,
          ...(typeof auth === 'string' ? { authorization: auth } : {}),
          ...(typeof dpop === 'string' ? { dpop } : {}),
          ...(request.host !== '' ? { url: receivedUrl(request) } : {}),
        };
        const t = tracer;
        const route = path === TOKEN_ROUTE ? svc.tokenPath : path;
        const answer = await (t
          ? t.traceHttp('POST', route, request.headers, () => handle(svc, oauthRequest))
          : handle(svc, oauthRequest));
        return reply.code(answer.status).headers(answer.headers).send(answer.body);
      });
    }
  });
}
