import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JWK } from 'jose';
import { DPOP_ALGORITHMS } from '../authn/dpop.js';
import {
  ASYMMETRIC_DEFAULT_ALGORITHMS,
  DEFAULT_CLIENT_GRANT_TYPES,
  DEFAULT_TOKEN_PATH,
} from '../config/schema.js';

// GET /.well-known/jwks.json, /.well-known/openid-configuration and /.well-known/oauth-authorization-server (docs/operations.md "Operations" / docs/upstream.md "What upstream services receive").
//
// Cache-Control: public, max-age=300 (a discovery document built from the request's
// Host is no-store instead). Verifiers and CDNs may cache the JWKS, but
// only for five minutes: after a key rotation (new key current, old key moved to
// previous_key_files and still published) a verifier that does not refetch on an
// unknown kid picks up the new key within five minutes. Keep a retired key in
// previous_key_files for at least the longest token lifetime plus these 300 s.

export const JWKS_PATH = '/.well-known/jwks.json';
export const OPENID_CONFIGURATION_PATH = '/.well-known/openid-configuration';
/** RFC 8414 authorization server metadata: the same document. */
export const OAUTH_AUTHORIZATION_SERVER_PATH = '/.well-known/oauth-authorization-server';

/** What the token endpoint serves with its configuration. */
export interface TokenEndpointMetadata {
  /** token_endpoint.path */
  readonly path: string;
  /** Grant types some client may use. */
  readonly grantTypes: readonly string[];
  /** Client authentication methods some client may use. */
  readonly authMethods: readonly string[];
}
export const WELL_KNOWN_CACHE_CONTROL = 'public, max-age=300';

export interface WellKnownProvider {
  /** Public JWKs of every key this service signs with (current and previous). */
  publicJwks(): JWK[];
  /** Token endpoint issuer when enabled, else upstream.token.issuer; undefined when neither exists. */
  issuer(): string | undefined;
  tokenEndpointEnabled(): boolean;
  /** Path, grant types and authentication methods of the token endpoint (defaults when absent). */
  tokenEndpoint?(): TokenEndpointMetadata | undefined;
  /** `public_base_url` from the config, if set. */
  publicBaseUrl(): string | undefined;
}

/** The base of published URLs, and whether it came from the request's Host (not the config). */
function baseUrl(provider: WellKnownProvider, request: FastifyRequest): { base: string; fromHost: boolean } {
  // Without public_base_url the URLs follow the request's Host; behind a proxy or
  // CDN that can be spoofed or wrong, so production setups should set it.
  const configured = provider.publicBaseUrl();
  const fromHost = configured === undefined || configured === '';
  const base = fromHost ? `${request.protocol}://${request.host}` : configured;
  return { base: base.replace(/\/+$/, ''), fromHost };
}

function signingAlgorithms(keys: readonly JWK[]): string[] {
  const algs = new Set<string>();
  for (const k of keys) if (typeof k.alg === 'string') algs.add(k.alg);
  return [...algs];
}

export function registerWellKnownRoutes(app: FastifyInstance, provider: () => WellKnownProvider): void {
  app.get(JWKS_PATH, async (_request, reply) => {
    const keys = provider().publicJwks();
    return reply
      .header('cache-control', WELL_KNOWN_CACHE_CONTROL)
      .type('application/json; charset=utf-8')
      .send({ keys });
  });

  const metadata = async (request: FastifyRequest, reply: FastifyReply) => {
    const p = provider();
    const issuer = p.issuer();
    if (issuer === undefined) {
      return reply
        .code(404)
        .header('cache-control', 'no-store')
        .type('application/json; charset=utf-8')
        .send({ error: 'not_found', error_description: 'this service issues no tokens' });
    }
    const { base, fromHost } = baseUrl(p, request);
    const doc: Record<string, unknown> = { issuer, jwks_uri: `${base}${JWKS_PATH}` };
    // The algs of the published keys: what tokens from this issuer are signed with.
    const signingAlgs = signingAlgorithms(p.publicJwks());
    if (signingAlgs.length > 0) doc.id_token_signing_alg_values_supported = signingAlgs;
    if (p.tokenEndpointEnabled()) {
      const te = p.tokenEndpoint?.() ?? DEFAULT_TOKEN_ENDPOINT;
      const authMethods = [...te.authMethods];
      Object.assign(doc, {
        token_endpoint: `${base}${te.path}`,
        revocation_endpoint: `${base}/oauth2/revoke`,
        introspection_endpoint: `${base}/oauth2/introspect`,
        grant_types_supported: [...te.grantTypes],
        token_endpoint_auth_methods_supported: authMethods,
        ...(authMethods.includes('private_key_jwt')
          ? { token_endpoint_auth_signing_alg_values_supported: [...ASYMMETRIC_DEFAULT_ALGORITHMS] }
          : {}),
        revocation_endpoint_auth_methods_supported: authMethods,
        introspection_endpoint_auth_methods_supported: authMethods,
        dpop_signing_alg_values_supported: [...DPOP_ALGORITHMS],
      });
    }
    // A document built from one client's Host must not be cached and served to others
    // (a shared cache would hand everyone the endpoints a spoofed Host named).
    if (fromHost) reply.header('cache-control', 'no-store').header('vary', 'Host');
    else reply.header('cache-control', WELL_KNOWN_CACHE_CONTROL);
    return reply.type('application/json; charset=utf-8').send(doc);
  };
  app.get(OPENID_CONFIGURATION_PATH, metadata);
  app.get(OAUTH_AUTHORIZATION_SERVER_PATH, metadata);
}

const DEFAULT_TOKEN_ENDPOINT: TokenEndpointMetadata = {
  path: DEFAULT_TOKEN_PATH,
  grantTypes: [...DEFAULT_CLIENT_GRANT_TYPES],
  authMethods: ['client_secret_basic', 'private_key_jwt'],
};
