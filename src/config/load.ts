import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import convict from 'convict';
import YAML from 'yaml';
import {
  issuerFields,
  ruleFields,
  storeFields,
  tokenEndpointFields,
  tokenSourceFields,
  tracingFields,
  upstreamFields,
  verifiedTokenCacheFields,
  ASYMMETRIC_DEFAULT_ALGORITHMS,
  JWS_ALGORITHMS,
} from './schema.js';
import { ConfigError } from '../core/errors.js';
import { isLoopbackHost } from '../net/safe-fetch.js';
import { isPlainObject, validateField, type FieldSpec, type Problems } from './shape.js';
import { addressProblem, checkConfigFiles, LISTEN_ADDRESSES } from './preflight.js';
import type { AppConfig, IssuerConfig, LoadedConfig } from './types.js';
import { resolveTracingSettings, type TracingSection } from '../observability/tracing.js';

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
      workers: { doc: 'processes serving checks (node:cluster); 1 = no cluster', format: 'int', default: 1 },
    },
    log: {
      level: {
        format: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
        default: 'info',
        env: 'AUTHZ_LOG_LEVEL',
      },
    },
    realm: { format: String, default: 'envoy-jwt-authz' },
    public_base_url: { format: String, default: '' },
    max_token_bytes: { format: 'nat', default: 16384 },
    default_action: { format: ['allow', 'deny', 'authenticate'], default: 'authenticate' },
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
    out[key] = validateField((input as Record<string, unknown>)[key], spec, key, problems);
  }
  if (out.token_sources === undefined) out.token_sources = [{ header: 'authorization', prefix: 'Bearer ' }];
  // What runs is the section merged with the OTEL_* environment (undefined: tracing off).
  out.tracing = resolveTracingSettings(out.tracing as TracingSection | undefined, env, problems);
  const config = out as unknown as AppConfig;
  if (problems.length > 0) return { problems };
  crossCheck(config, problems);
  return { config, problems };
}

const KEY_SOURCES = ['jwks_uri', 'discovery_uri', 'jwks', 'jwks_file', 'truststore', 'secret_file'] as const;

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
  if (config.server.http_max_connections < 1) {
    problems.push(
      `server.http_max_connections: must be at least 1, got ${config.server.http_max_connections}`,
    );
  }
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
    const sources = KEY_SOURCES.filter((k) => iss[k] !== undefined);
    if (sources.length !== 1) {
      problems.push(
        `${p}: exactly one key source is required (${KEY_SOURCES.join(', ')}), got ${sources.length === 0 ? 'none' : sources.join(', ')}`,
      );
    }
    const algs =
      iss.algorithms ?? (iss.secret_file ? ['HS256', 'HS384', 'HS512'] : [...ASYMMETRIC_DEFAULT_ALGORITHMS]);
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
    for (const uriKey of ['jwks_uri', 'discovery_uri'] as const) {
      const uri = iss[uriKey];
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
  if (config.server.workers > 1 && config.token_endpoint.enabled && config.store.type === 'memory') {
    problems.push(
      'store.type: with server.workers > 1 the token endpoint needs a shared store (type: redis); ' +
        'each worker would otherwise keep its own revocations, refresh tokens and used assertion jtis',
    );
  }
  config.rules.forEach((rule, i) => {
    if (rule.require !== undefined && rule.action !== 'authenticate') {
      problems.push(
        `rules[${i}].require: only applies to action "authenticate" (this rule's action "${rule.action}" ignores it)`,
      );
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
  for (const [j, name] of config.token_endpoint.grant_issuers.entries()) {
    if (!names.has(name)) problems.push(`token_endpoint.grant_issuers[${j}]: no issuer named "${name}"`);
  }
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
  const { config, problems } = collectConfigProblems(parseConfigText(text, file), env);
  if (!config) return { problems };
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
  return { config: validateConfig(input, env), baseDir, source: '(inline)' };
}
