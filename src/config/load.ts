import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import convict from 'convict';
import YAML from 'yaml';
import { ConfigError } from '../core/errors.js';
import { isPlainObject } from '../core/objects.js';
import { resolveTracingSettings } from '../observability/tracing.js';
import { checkConfigFiles } from './preflight.js';
import { ConfigSchema, CONVICT_KEYS, type ConfigDocument } from './schema.js';
import { checkApiKeys } from './sections/api-keys.js';
import { checkIssuers } from './sections/issuers.js';
import { checkRateLimits } from './sections/rate-limits.js';
import { checkDebug } from './sections/debug.js';
import { checkRules, checkTokenSources } from './sections/rules.js';
import { checkServer } from './sections/server.js';
import { checkStore } from './sections/store.js';
import { checkTokenEndpoint } from './sections/token-endpoint.js';
import { validateNode, type SchemaNode } from './validate.js';
import type { AppConfig, LoadedConfig } from './types.js';

export { parseHostPort } from './sections/store.js';

// Loading: parse the file, let convict lay the keys it owns over their defaults and
// environment overrides, validate the whole document against the schema (every problem
// with its path), then run each section's cross-field rules.

// An integer written as text (an environment value always is) becomes a number; any
// other text is left for the schema validation to name.
convict.addFormat({
  name: 'config-integer',
  validate: () => undefined,
  coerce: (v: string) => (/^\s*[+-]?\d+\s*$/.test(v) ? Number(v) : v),
});

/**
 * convict's schema for the keys it loads, made from the configuration schema: each leaf's
 * default, description and environment variable. Integers are read from text; any other
 * leaf is taken as it is, and the schema validation that follows checks every value.
 */
function convictSchema(node: SchemaNode): unknown {
  if (node.type === 'object' && node.properties) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node.properties as Record<string, SchemaNode>))
      out[k] = convictSchema(v);
    return out;
  }
  return {
    doc: node.description,
    format: node.type === 'integer' ? 'config-integer' : '*',
    default: node.default ?? null,
    ...(node['x-env'] ? { env: node['x-env'] } : {}),
  };
}

let convictTree: Record<string, unknown> | undefined;
function convictKeys(): Record<string, unknown> {
  if (!convictTree) {
    convictTree = {};
    for (const key of CONVICT_KEYS) convictTree[key] = convictSchema(ConfigSchema.properties[key]);
  }
  return convictTree;
}

/** Every environment variable that overrides a config key, with its key. */
export function environmentOverrides(): { variable: string; key: string }[] {
  const out: { variable: string; key: string }[] = [];
  const walk = (node: SchemaNode, path: string) => {
    if (node['x-env']) out.push({ variable: node['x-env'] as string, key: path });
    for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, SchemaNode>))
      walk(v, path ? `${path}.${k}` : k);
  };
  walk(ConfigSchema, '');
  return out;
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
  const problems: string[] = [];
  // convict lays the file's values of its keys over their defaults, then the environment
  // over both. A section that is not a map stays as written (convict could not lay the
  // environment into it) for the schema validation to name.
  const conf = convict(convictKeys() as convict.Schema<Record<string, unknown>>, { env, args: [] });
  const own: Record<string, unknown> = {};
  const asWritten: Record<string, unknown> = {};
  for (const key of CONVICT_KEYS) {
    const value = input[key];
    if (value === undefined || value === null) continue;
    if (ConfigSchema.properties[key].type === 'object' && !isPlainObject(value)) asWritten[key] = value;
    else own[key] = value;
  }
  conf.load(own);
  const merged = { ...input, ...conf.getProperties(), ...asWritten };
  const doc = validateNode(merged, ConfigSchema, '', problems) as ConfigDocument | undefined;
  // What runs is the section merged with the OTEL_* environment (undefined: tracing off).
  const tracing = resolveTracingSettings(doc?.tracing, env, problems);
  if (problems.length > 0 || !doc) return { problems };
  const config: AppConfig = { ...doc, tracing };
  crossCheck(config, problems);
  return { config, problems };
}

// Rules that relate fields to each other, section by section.
function crossCheck(config: AppConfig, problems: string[]): void {
  checkServer(config.server, problems);
  const te = config.token_endpoint;
  checkIssuers(config.issuers, te.enabled ? te.issuer : undefined, problems);
  checkStore(config.store, problems);
  checkRateLimits(config.rate_limits, problems);
  if (config.server.workers > 1 && te.enabled && config.store.type === 'memory') {
    problems.push(
      'store.type: with server.workers > 1 the token endpoint needs a shared store (type: redis); ' +
        'each worker would otherwise keep its own revocations, refresh tokens and used assertion jtis',
    );
  }
  checkRules(config.rules, config.upstream.token !== undefined, problems);
  checkTokenSources(config.token_sources, problems);
  checkApiKeys(
    config.api_keys,
    new Set(config.issuers.map((i) => i.name)),
    config.token_sources,
    [
      ...Object.keys(config.upstream.claim_headers),
      ...(config.upstream.token ? [config.upstream.token.header] : []),
    ],
    problems,
  );
  checkTokenEndpoint(te, new Set(config.issuers.map((i) => i.name)), problems);
  checkDebug(config.debug, config.server.http_address, problems);
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
