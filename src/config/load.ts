import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import convict from 'convict';
import YAML from 'yaml';
import {
  DEFAULT_CLIENT_GRANT_TYPES,
  GRANT_TYPE_TOKEN_EXCHANGE,
  issuerFields,
  ruleFields,
  storeFields,
  tokenEndpointFields,
  tokenProfileFields,
  tokenSourceFields,
  tracingFields,
  upstreamFields,
  verifiedTokenCacheFields,
  ASYMMETRIC_DEFAULT_ALGORITHMS,
  DEFAULT_REDIS_URL,
  HMAC_ALGORITHMS,
  JWS_ALGORITHMS,
  TOKEN_ENDPOINT_RESERVED_CLAIMS,
  rateLimitFields,
} from './schema.js';
import { ConfigError } from '../core/errors.js';
import { isLoopbackHost } from '../net/safe-fetch.js';
import { isPlainObject } from '../core/objects.js';
import { defaultRequiredClaims, ISSUER_KEY_SOURCES, issuerKeySources } from './key-sources.js';
import { validateField, validateObject, type FieldSpec, type Problems } from './shape.js';
import { addressProblem, checkConfigFiles, LISTEN_ADDRESSES } from './preflight.js';
import { tlsEnabled } from '../net/tls-files.js';
import type { AppConfig, IssuerConfig, LoadedConfig, TokenEndpointConfig } from './types.js';
import { resolveTracingSettings, type TracingSection } from '../observability/tracing.js';

function tlsSchema(listener: string) {
  return {
    cert_file: { doc: `${listener} listener certificate (PEM, chain allowed)`, format: String, default: '' },
    key_file: { doc: `${listener} listener private key (PEM)`, format: String, default: '' },
    client_ca_file: { doc: 'CA bundle for client certificates (mTLS)', format: String, default: '' },
    require_client_cert: {
      doc: 'refuse clients without a certificate (default: true when client_ca_file is set)',
      format: (v: unknown) => {
        if (v !== null && typeof v !== 'boolean') throw new Error('must be true or false');
      },
      default: null as boolean | null,
    },
  };
}

function schema() {
  return {
    server: {
      grpc_address: {
        doc: 'gRPC listen address',
        format: String,
        default: '0.0.0.0:9001',
        env: 'AUTHZ_GRPC_ADDRESS',
      },
      http_address: {
        doc: 'HTTP listen address',
        format: String,
        default: '0.0.0.0:9002',
        env: 'AUTHZ_HTTP_ADDRESS',
      },
      shutdown_grace_seconds: { format: 'nat', default: 10 },
      http_max_connections: {
        doc: 'concurrent connections the HTTP listener accepts (per process)',
        format: 'nat',
        default: 1024,
      },
      http_max_connections_per_client: {
        doc: 'concurrent HTTP connections one client address may hold (per process)',
        format: 'nat',
        default: 64,
      },
      workers: { doc: 'processes serving checks (node:cluster); 1 = no cluster', format: 'int', default: 1 },
      grpc_max_message_bytes: {
        doc: 'largest CheckRequest accepted (bytes); larger ones get RESOURCE_EXHAUSTED',
        format: 'nat',
        default: 4 * 1024 * 1024,
      },
      grpc_tls: tlsSchema('gRPC'),
      http_tls: tlsSchema('HTTP'),
    },
    log: {
      level: {
        format: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
        default: 'info',
        env: 'AUTHZ_LOG_LEVEL',
      },
      denials_per_second: {
        doc: 'per denial reason, "check denied" lines written per second (the rest are counted); 0 = every one',
        format: 'nat',
        default: 20,
      },
    },
    realm: { format: String, default: 'envoy-jwt-authz' },
    public_base_url: { format: String, default: '' },
    max_token_bytes: { format: 'nat', default: 16384 },
    default_action: { format: ['allow', 'deny', 'authenticate', 'optional'], default: 'authenticate' },
  };
}

const sections: Record<string, FieldSpec> = {
  issuers: { type: 'array', default: [], items: issuerFields },
  token_sources: { type: 'array', items: tokenSourceFields },
  scope_claims: { type: 'string[]', default: ['scope', 'scp'], nonEmpty: true },
  rules: { type: 'array', default: [], items: ruleFields },
  // Here rather than in convict, whose Boolean format reads any string but "false" as true.
  reject_ambiguous_paths: { type: 'boolean', default: true },
  upstream: { type: 'object', fields: upstreamFields },
  token_endpoint: { type: 'object', fields: tokenEndpointFields },
  store: { type: 'object', fields: storeFields },
  rate_limits: { type: 'array', default: [], items: rateLimitFields },
  rate_limits_fail: { type: 'string', default: 'closed', enum: ['closed', 'open'] },
  verified_token_cache: { type: 'object', fields: verifiedTokenCacheFields },
  tracing: { type: 'object', optional: true, fields: tracingFields },
};

function tidyConvictMessage(line: string): string {
  const undeclared = /^configuration param '([^']+)' not declared in the schema$/.exec(line);
  if (undeclared) return `${undeclared[1]}: unknown key`;
  return line.replace(/: value was .*$/, '');
}

/** Parse the text of a YAML or JSON config file (JSON is valid YAML 1.2). */
export function parseConfigText(text: string, source: string): unknown {
  try {
    const doc = YAML.parse(text, { prettyErrors: true, uniqueKeys: true });
    return doc ?? {};
  } catch (err) {
    throw new ConfigError([`${source}: cannot parse: ${(err as Error).message.split('\n')[0]}`]);
  }
}

/** Validate a parsed config object; throws ConfigError listing every problem with its path. */
export function validateConfig(input: unknown, env: NodeJS.ProcessEnv = process.env): AppConfig {
  const { config, problems } = collectConfigProblems(input, env);
  if (problems.length > 0 || !config) throw new ConfigError(problems);
  return config;
}

/**
 * Validates like validateConfig but returns the problems. `config` is set whenever the
 * structure is sound (even if cross-field checks failed), so callers can run further
 * checks on it and report everything at once.
 */
export function collectConfigProblems(
  input: unknown,
  env: NodeJS.ProcessEnv = process.env,
): { config?: AppConfig; problems: string[] } {
  if (!isPlainObject(input)) return { problems: ['(root): the configuration must be a map of keys'] };
  const problems: Problems = [];
  const conf = convict(schema(), { env, args: [] });
  try {
    // Sections are validated by shape.ts below; convict sees only the keys it owns
    // (it cannot describe lists of objects or free-form maps).
    const own: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(input)) if (!(k in sections)) own[k] = v;
    conf.load(own);
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    for (const line of (err as Error).message.split('\n'))
      if (line.trim()) problems.push(tidyConvictMessage(line));
  }
  const base = conf.getProperties() as Record<string, unknown>;
  const out: Record<string, unknown> = { ...base };
  for (const [key, spec] of Object.entries(sections)) {
    out[key] = validateField(input[key], spec, key, problems);
  }
  if (out.token_sources === undefined) out.token_sources = [{ header: 'authorization', prefix: 'Bearer ' }];
  // What runs is the section merged with the OTEL_* environment (undefined: tracing off).
  out.tracing = resolveTracingSettings(out.tracing as TracingSection | undefined, env, problems);
  const config = out as unknown as AppConfig;
  if (problems.length > 0) return { problems };
  crossCheck(config, problems);
  return { config, problems };
}

// Rules that relate several fields to each other.
function crossCheck(config: AppConfig, problems: Problems): void {
  for (const { field, key, allowUnix } of LISTEN_ADDRESSES) {
    const problem = addressProblem(config.server[key], allowUnix);
    if (problem) problems.push(`${field}: ${problem}`);
  }
  const { grpc_address: grpc, http_address: http } = config.server;
  if (grpc === http && !/:0$/.test(grpc))
    problems.push(`server.http_address: "${http}" is also server.grpc_address; give each its own port`);
  if (config.server.workers < 1 || config.server.workers > 64) {
    problems.push(`server.workers: must be between 1 and 64, got ${config.server.workers}`);
  }
  for (const key of ['grpc_tls', 'http_tls'] as const) {
    const tls = config.server[key];
    if (!tlsEnabled(tls)) continue;
    if (tls.cert_file === '') problems.push(`server.${key}.cert_file: required when server.${key} is set`);
    if (tls.key_file === '') problems.push(`server.${key}.key_file: required when server.${key} is set`);
    if (tls.require_client_cert === true && tls.client_ca_file === '')
      problems.push(
        `server.${key}.require_client_cert: needs client_ca_file to check client certificates against`,
      );
  }
  if (
    config.server.grpc_tls &&
    tlsEnabled(config.server.grpc_tls) &&
    config.server.grpc_address.startsWith('unix:')
  )
    problems.push('server.grpc_tls: not used on a unix socket (server.grpc_address); remove one of them');
  if (config.server.grpc_max_message_bytes < 1024)
    problems.push(
      `server.grpc_max_message_bytes: must be at least 1024, got ${config.server.grpc_max_message_bytes}`,
    );
  for (const key of ['http_max_connections', 'http_max_connections_per_client'] as const)
    if (config.server[key] < 1) problems.push(`server.${key}: must be at least 1, got ${config.server[key]}`);
  const names = new Set<string>();
  const issuerUrls = new Set<string>();
  config.issuers.forEach((iss: IssuerConfig, i) => {
    const p = `issuers[${i}]`;
    if (iss.name === 'self')
      problems.push(`${p}.name: "self" is reserved for this service's own token endpoint`);
    if (names.has(iss.name)) problems.push(`${p}.name: duplicate issuer name "${iss.name}"`);
    names.add(iss.name);
    if (issuerUrls.has(iss.issuer)) problems.push(`${p}.issuer: another issuer already uses "${iss.issuer}"`);
    issuerUrls.add(iss.issuer);
    if (config.token_endpoint.enabled && iss.issuer === config.token_endpoint.issuer) {
      problems.push(
        `${p}.issuer: "${iss.issuer}" is this service's own token endpoint issuer (token_endpoint.issuer)`,
      );
    }
    const sources = issuerKeySources(iss);
    if (sources.length !== 1) {
      problems.push(
        `${p}: exactly one key source is required (${ISSUER_KEY_SOURCES.join(', ')}), got ${sources.length === 0 ? 'none' : sources.join(', ')}`,
      );
    }
    iss.required_claims ??= defaultRequiredClaims(iss);
    const algs =
      iss.algorithms ?? (iss.secret_file ? [...HMAC_ALGORITHMS] : [...ASYMMETRIC_DEFAULT_ALGORITHMS]);
    iss.algorithms = algs;
    if (algs.length === 0) problems.push(`${p}.algorithms: must not be empty`);
    algs.forEach((alg, j) => {
      if (!(JWS_ALGORITHMS as readonly string[]).includes(alg)) {
        problems.push(
          `${p}.algorithms[${j}]: unsupported algorithm "${alg}" (allowed: ${JWS_ALGORITHMS.join(', ')}; "none" is never accepted)`,
        );
      } else if (alg.startsWith('HS') && !iss.secret_file) {
        problems.push(
          `${p}.algorithms[${j}]: ${alg} needs secret_file (HMAC is never used with public keys)`,
        );
      } else if (!alg.startsWith('HS') && iss.secret_file) {
        problems.push(`${p}.algorithms[${j}]: ${alg} cannot be used with secret_file (only HS256/384/512)`);
      }
    });
    const uris = [
      ['jwks_uri', iss.jwks_uri],
      ['discovery_uri', iss.discovery_uri],
      ['introspection.endpoint', iss.introspection?.endpoint],
    ] as const;
    for (const [uriKey, uri] of uris) {
      if (uri === undefined) continue;
      let url: URL;
      try {
        url = new URL(uri);
      } catch {
        problems.push(`${p}.${uriKey}: not a valid URL`);
        continue;
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        problems.push(`${p}.${uriKey}: must be https://`);
      if (url.protocol === 'http:' && !iss.insecure_http && !isLoopbackHost(url.hostname)) {
        problems.push(
          `${p}.${uriKey}: http:// is only allowed for loopback hosts; use https:// or set insecure_http: true`,
        );
      }
    }
    if (iss.jwks !== undefined && !(isPlainObject(iss.jwks) && Array.isArray(iss.jwks.keys))) {
      problems.push(`${p}.jwks: must be a JWKS object with a "keys" list`);
    }
  });
  checkStore(config, problems);
  const limitNames = new Map<string, number>();
  config.rate_limits.forEach((l, i) => {
    const seen = limitNames.get(l.name);
    if (seen !== undefined)
      problems.push(
        `rate_limits[${i}].name: duplicate rate limit name "${l.name}" (also rate_limits[${seen}])`,
      );
    else limitNames.set(l.name, i);
  });
  if (config.server.workers > 1 && config.token_endpoint.enabled && config.store.type === 'memory') {
    problems.push(
      'store.type: with server.workers > 1 the token endpoint needs a shared store (type: redis); ' +
        'each worker would otherwise keep its own revocations, refresh tokens and used assertion jtis',
    );
  }
  config.rules.forEach((rule, i) => {
    if (rule.require !== undefined && rule.action !== 'authenticate' && rule.action !== 'optional') {
      problems.push(
        `rules[${i}].require: only applies to action "authenticate" or "optional" (this rule's action "${rule.action}" ignores it)`,
      );
    }
    if (rule.token !== undefined && rule.action !== 'authenticate' && rule.action !== 'optional') {
      problems.push(
        `rules[${i}].token: only applies to action "authenticate" or "optional" (this rule's action "${rule.action}" mints no token)`,
      );
    }
    if (rule.deny_response !== undefined && rule.action === 'allow') {
      problems.push(`rules[${i}].deny_response: an "allow" rule never denies`);
    }
    if (rule.token !== undefined && rule.token !== false) {
      if (!isPlainObject(rule.token)) {
        problems.push(`rules[${i}].token: must be false or an object`);
      } else {
        rule.token = validateObject(rule.token, tokenProfileFields, `rules[${i}].token`, problems);
        if (!config.upstream.token)
          problems.push(`rules[${i}].token: needs upstream.token (the profile overrides its fields)`);
      }
    }
  });
  config.token_sources.forEach((src, i) => {
    const kinds = ['header', 'query', 'cookie'].filter(
      (k) => (src as Record<string, unknown>)[k] !== undefined,
    );
    if (kinds.length !== 1)
      problems.push(`token_sources[${i}]: exactly one of header, query, cookie is required`);
    if (src.prefix !== undefined && src.header === undefined)
      problems.push(`token_sources[${i}].prefix: only valid with header`);
    // The name is matched as it appears in the raw query (that is what Envoy strips),
    // so it must be a name a client sends unencoded.
    if (src.query !== undefined && !/^[A-Za-z0-9\-._~!$'()*,:@/]+$/.test(src.query))
      problems.push(
        `token_sources[${i}].query: "${src.query}" must be a plain parameter name ` +
          `(letters, digits and - . _ ~ ! $ ' ( ) * , : @ /; no percent-encoding)`,
      );
  });
  if (config.token_sources.length === 0) problems.push('token_sources: must not be empty');
  const granted = new Set<string>();
  for (const [j, g] of config.token_endpoint.grant_issuers.entries()) {
    const p = `token_endpoint.grant_issuers[${j}]`;
    if (!names.has(g.issuer)) problems.push(`${p}.issuer: no issuer named "${g.issuer}"`);
    else if (granted.has(g.issuer)) problems.push(`${p}.issuer: "${g.issuer}" is listed twice`);
    granted.add(g.issuer);
    g.copy_claims.forEach((claim, k) => {
      if (TOKEN_ENDPOINT_RESERVED_CLAIMS.includes(claim))
        problems.push(`${p}.copy_claims[${k}]: "${claim}" is set by the service itself and cannot be copied`);
    });
  }
  checkTokenEndpointGrants(config.token_endpoint, names, problems);
}

/** A path of the token endpoint: absolute, plain segments, no query, fragment or percent-encoding. */
const TOKEN_PATH_SHAPE = /^(?:\/[A-Za-z0-9\-._~!$&'()*+,;=:@]+)+$/;
const OTHER_OAUTH_PATHS = ['/oauth2/revoke', '/oauth2/introspect'];

/** Token exchange, client authentication methods and grant types, and the token path. */
function checkTokenEndpointGrants(te: TokenEndpointConfig, names: Set<string>, problems: Problems): void {
  if (
    !TOKEN_PATH_SHAPE.test(te.path) ||
    te.path.split('/').some((seg) => seg === '.' || seg === '..') ||
    OTHER_OAUTH_PATHS.includes(te.path)
  ) {
    problems.push(
      `token_endpoint.path: "${te.path}" must be an absolute path such as /oauth2/token (plain segments, ` +
        `no query, fragment, percent-encoding or trailing slash, not /oauth2/revoke or /oauth2/introspect)`,
    );
  }
  const ex = te.exchange;
  if (ex) {
    for (const key of ['subject_issuers', 'actor_issuers'] as const) {
      (ex[key] ?? []).forEach((name, k) => {
        if (!names.has(name))
          problems.push(`token_endpoint.exchange.${key}[${k}]: no issuer named "${name}"`);
      });
    }
  }
  // Exchanged tokens must pass our own Check: their audience must be one it accepts.
  const accepted = te.access_token.audiences.length > 0 ? te.access_token.audiences : [te.issuer ?? ''];
  te.clients.forEach((c, i) => {
    const p = `token_endpoint.clients[${i}]`;
    const grants = c.grant_types ?? DEFAULT_CLIENT_GRANT_TYPES;
    if (c.grant_types?.includes(GRANT_TYPE_TOKEN_EXCHANGE) && !ex)
      problems.push(`${p}.grant_types: token exchange needs token_endpoint.exchange (subject_issuers)`);
    if (c.exchange_audiences.length > 0 && !grants.includes(GRANT_TYPE_TOKEN_EXCHANGE))
      problems.push(`${p}.exchange_audiences: the client may not use token exchange (add it to grant_types)`);
    c.exchange_audiences.forEach((aud, k) => {
      if (!accepted.includes(aud))
        problems.push(
          `${p}.exchange_audiences[${k}]: "${aud}" is not an audience of this service's tokens ` +
            `(token_endpoint.access_token.audiences, default token_endpoint.issuer)`,
        );
    });
    const method = c.token_endpoint_auth_method;
    if (method === undefined) return;
    const hasKeys = c.certificate_file !== undefined || c.jwks_file !== undefined;
    if (method === 'private_key_jwt' ? !hasKeys : c.client_secret_file === undefined)
      problems.push(
        `${p}.token_endpoint_auth_method: ${method} needs ${method === 'private_key_jwt' ? 'a certificate_file or jwks_file' : 'a client_secret_file'}`,
      );
  });
}

/** "host:port" (IPv6 as "[::1]:6379"); undefined when malformed. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

function checkStore(config: AppConfig, problems: Problems): void {
  const store = config.store;
  const redis = store.redis;
  const topologies = [
    store.redis_url !== undefined ? 'redis_url' : undefined,
    redis?.cluster !== undefined ? 'redis.cluster' : undefined,
    redis?.sentinels !== undefined ? 'redis.sentinels' : undefined,
  ].filter((t): t is string => t !== undefined);
  if (topologies.length > 1) {
    problems.push(
      `store.${topologies[1]}: only one of redis_url, redis.cluster, redis.sentinels may be set, got ${topologies.join(', ')}`,
    );
  }
  if (topologies.length === 0) store.redis_url = DEFAULT_REDIS_URL;
  if (!redis) return;
  for (const list of ['cluster', 'sentinels'] as const) {
    redis[list]?.forEach((node, i) => {
      if (!parseHostPort(node))
        problems.push(`store.redis.${list}[${i}]: must be host:port, got ${JSON.stringify(node)}`);
    });
  }
  if (redis.sentinels !== undefined && redis.name === undefined)
    problems.push('store.redis.name: required with redis.sentinels (the name of the monitored master)');
  if (redis.name !== undefined && redis.sentinels === undefined)
    problems.push('store.redis.name: only applies with redis.sentinels');
  if (redis.sentinel_password_file !== undefined && redis.sentinels === undefined)
    problems.push('store.redis.sentinel_password_file: only applies with redis.sentinels');
  if (redis.cluster !== undefined && /[{}]/.test(store.key_prefix)) {
    // The store puts its own hash tag in every key so that the keys of one operation share
    // a slot; a brace in the prefix would make Redis hash on the wrong part of the key.
    problems.push('store.key_prefix: must not contain "{" or "}" with redis.cluster');
  }
}

/** Store credential files are read when the store is created, relative to the config's folder. */
function resolveStorePaths(config: AppConfig, baseDir: string): AppConfig {
  const redis = config.store.redis;
  if (redis?.password_file !== undefined) redis.password_file = resolve(baseDir, redis.password_file);
  if (redis?.sentinel_password_file !== undefined)
    redis.sentinel_password_file = resolve(baseDir, redis.sentinel_password_file);
  return config;
}

/** Read, parse and validate a config file. Paths in it are resolved against its folder. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const { loaded, problems } = inspectConfigFile(file, env, { readFiles: false });
  if (problems.length > 0 || !loaded) throw new ConfigError(problems);
  return loaded;
}

/**
 * Reads, parses and validates a config file without throwing on its problems; with
 * readFiles every file and folder it names is read too. `loaded` is set when the
 * structure is sound, so more checks can run on it and every problem is listed at once.
 */
export function inspectConfigFile(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: { readFiles: boolean } = { readFiles: true },
): { loaded?: LoadedConfig; problems: string[] } {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return {
      problems: [`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`],
    };
  }
  const { config: valid, problems } = collectConfigProblems(parseConfigText(text, file), env);
  if (!valid) return { problems };
  const config = resolveStorePaths(valid, dirname(path));
  const loaded = { config, baseDir: dirname(path), source: path };
  if (opts.readFiles) problems.push(...checkConfigFiles(config, loaded.baseDir));
  return { loaded, problems };
}

/** A config built in code (demo mode, tests), validated the same way. */
export function loadConfigObject(
  input: unknown,
  baseDir: string,
  env: NodeJS.ProcessEnv = process.env,
): LoadedConfig {
  return { config: resolveStorePaths(validateConfig(input, env), baseDir), baseDir, source: '(inline)' };
}
