import type { FastifyInstance } from 'fastify';
import { explainCheck } from '../check/explain.js';
import { systemClock, type Clock } from '../core/time.js';
import { buildCheckRequest } from '../envoy/check-request.js';
import type { DecodedCheckRequest } from '../envoy/messages.js';
import { toAuthRequest } from '../envoy/auth-request.js';
import { isLoopbackHost } from '../net/safe-fetch.js';
import type { Runtime } from './runtime.js';

// POST /debug/explain: a CheckRequest-shaped JSON body → the decision with its trail.
// Off (404) unless debug.explain; on a listener that is not loopback it also needs
// debug.explain_public (a config error otherwise). Read per request: a reload applies.

const stringMap = {
  type: 'object',
  maxProperties: 128,
  additionalProperties: { type: 'string', maxLength: 65536 },
} as const;

const bodySchema = {
  type: 'object',
  required: ['path'],
  additionalProperties: false,
  properties: {
    method: { type: 'string', minLength: 1, maxLength: 32 },
    path: { type: 'string', minLength: 1, maxLength: 8192 },
    host: { type: 'string', maxLength: 1024 },
    headers: stringMap,
    context_extensions: stringMap,
  },
} as const;

interface ExplainBody {
  method?: string;
  path: string;
  host?: string;
  headers?: Record<string, string>;
  context_extensions?: Record<string, string>;
}

/** A CheckRequest (as Envoy sends it) → its decision with the trail, under this runtime's config. */
export async function explainCheckRequest(
  rt: Runtime,
  checkRequest: DecodedCheckRequest,
): Promise<Record<string, unknown>> {
  const req = toAuthRequest(checkRequest);
  if (!req) return { decision: 'deny', reason: 'request_invalid', description: 'no HTTP attributes' };
  return explainCheck(rt.pipeline, req, {
    redactClaims: rt.config.debug.redact_claims ?? [],
    rateLimits: rt.config.rate_limits,
  });
}

export function registerExplainRoute(
  app: FastifyInstance,
  runtime: () => Runtime,
  clock: Clock = systemClock,
): void {
  app.post<{ Body: ExplainBody }>(
    '/debug/explain',
    {
      // Checked before the body is read or validated: off means not there.
      onRequest: (req, reply, done) => {
        const debug = runtime().config.debug;
        // The config check names the field; this one holds whatever the listener is bound to.
        if (
          !debug.explain ||
          (!debug.explain_public && !isLoopbackHost((req.socket.localAddress ?? '').replace(/^::ffff:/i, '')))
        )
          void reply.callNotFound();
        done();
      },
      schema: { body: bodySchema },
    },
    async (req, reply) => {
      const body = req.body;
      const request = buildCheckRequest({
        method: body.method ?? 'GET',
        path: body.path,
        host: body.host ?? 'localhost',
        headers: Object.entries(body.headers ?? {}),
        context: Object.entries(body.context_extensions ?? {}),
        requestId: `explain-${clock.nowMs()}`,
      });
      const out = await explainCheckRequest(runtime(), request);
      return reply.header('cache-control', 'no-store').send(out);
    },
  );
}
