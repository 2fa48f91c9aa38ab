import { inspectConfigFile } from '../config/load.js';
import { issuerKeySource, keySourceField, REMOTE_KEY_SOURCES } from '../config/key-sources.js';
import { ConfigError } from '../core/errors.js';
import type { IssuerConfig, LoadedConfig } from '../config/types.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { Runtime } from '../server/runtime.js';
import { createKeySource, type KeySource } from '../authn/keys/index.js';
import { parseOptions, UsageError } from './args.js';
import { requireConfigFile } from './startup.js';
import { IntrospectionCheck } from '../authn/introspection.js';
import { readSecretFile } from '../crypto/key-files.js';
import type { Logger } from '../observability/logger.js';

/** The config path of the field that names an issuer's keys. */
function keyField(iss: IssuerConfig, i: number): string {
  return `issuers[${i}].${keySourceField(issuerKeySource(iss) ?? 'jwks')}`;
}

const fieldOf = (problem: string): string => problem.split(': ')[0]!;

/**
 * Everything `check-config` verifies, as one list of problems: the structure, the
 * addresses, every file the config names, what building the service from it reports
 * (rules, signing keys, client keys), and the first load of each issuer's keys. Remote
 * key sources are fetched only with `fetch`. Returns the built Runtime (to summarise
 * and close) when there is one.
 */
export async function inspectConfig(
  file: string,
  opts: { fetch: boolean },
): Promise<{ loaded?: LoadedConfig; rt?: Runtime; problems: string[] }> {
  const { loaded, problems } = inspectConfigFile(file);
  if (!loaded) return { problems };
  // A file already reported as unreadable is not reported again by the builder.
  const named = new Set(problems.map(fieldOf));
  const addNew = (list: readonly string[]) => {
    for (const p of list) if (!named.has(fieldOf(p))) problems.push(p);
  };
  const logger = createLogger('silent');
  const metrics = new Metrics({ processMetrics: false });
  // Each issuer's first key load, on sources of its own (the same code serve runs), so
  // it is reported even when building the rest of the service failed.
  await Promise.all(
    loaded.config.issuers.map(async (iss, i) => {
      const field = keyField(iss, i);
      const kind = issuerKeySource(iss);
      const remote = kind !== undefined && REMOTE_KEY_SOURCES.has(kind);
      if (named.has(field)) return;
      // An introspected issuer has no keys to load; with --fetch its endpoint is asked once.
      if (kind === 'introspection') {
        if (opts.fetch) addNew(await probeIntrospection(iss, i, loaded.baseDir, logger));
        return;
      }
      if (remote && !opts.fetch) return;
      let source: KeySource;
      try {
        source = createKeySource(iss, { baseDir: loaded.baseDir, logger, metrics });
      } catch {
        return; // an issuer without exactly one key source is already reported
      }
      try {
        await source.start();
        const status = source.status();
        if (status.state === 'error' || status.keys === 0)
          addNew([`${field}: ${status.lastError ?? 'no usable keys'}`]);
      } finally {
        source.close();
      }
    }),
  );
  let rt: Runtime | undefined;
  try {
    rt = await Runtime.build(loaded, { logger, metrics });
  } catch (err) {
    if (err instanceof ConfigError) addNew(err.problems);
    else if (problems.length === 0) throw err;
  }
  return { loaded, rt, problems };
}

/** One problem when the issuer's introspection endpoint does not answer as one should. */
async function probeIntrospection(
  iss: IssuerConfig,
  i: number,
  baseDir: string,
  logger: Logger,
): Promise<string[]> {
  const cfg = iss.introspection!;
  let secret: Buffer;
  try {
    secret = readSecretFile(
      cfg.client_secret_file,
      baseDir,
      `issuers[${i}].introspection.client_secret_file`,
    );
  } catch {
    return []; // reported with the other unreadable files
  }
  const problem = await new IntrospectionCheck({
    issuer: iss.name,
    endpoint: cfg.endpoint,
    clientId: cfg.client_id,
    clientSecret: secret.toString('utf8'),
    cacheSeconds: 0,
    timeoutMs: cfg.timeout_ms,
    insecureHttp: iss.insecure_http,
    claims: { audiences: 'any', clockSkewSeconds: 0, requiredClaims: [], maxLifetimeSeconds: 0 },
    logger,
  }).probe();
  if (problem === undefined) return [];
  const hint = problem === 'status 401' ? ' (the client_id / client secret were refused)' : '';
  return [`issuers[${i}].introspection.endpoint: ${problem}${hint}`];
}

/** How an issuer's keys are named, for the summary. */
function keysSummary(i: IssuerConfig): string {
  const kind = issuerKeySource(i);
  switch (kind) {
    case 'jwks_uri':
      return `jwks_uri ${i.jwks_uri}`;
    case 'discovery_uri':
      return `discovery ${i.discovery_uri}`;
    case 'jwks_file':
      return `jwks_file ${i.jwks_file}`;
    case 'jwks':
      return 'inline jwks';
    case 'truststore':
      return `truststore ${i.truststore!.path}`;
    case 'introspection':
      return `introspection ${i.introspection!.endpoint}`;
    case 'secret_file':
    case undefined:
      return 'secret_file';
    default: {
      const unhandled: never = kind;
      return String(unhandled);
    }
  }
}

/** The `check-config` command: exit 0 with a summary, or 1 listing every problem. */
export async function checkConfigCommand(args: string[]): Promise<void> {
  const { values } = parseOptions(args, {
    config: { type: 'string', short: 'c' },
    fetch: { type: 'boolean' },
  });
  const file = (values.config as string | undefined) ?? process.env.AUTHZ_CONFIG;
  if (!file) throw new UsageError('check-config needs --config FILE');
  requireConfigFile(file, values.config === undefined);
  const { loaded, rt, problems } = await inspectConfig(file, { fetch: values.fetch === true });
  if (problems.length > 0 || !loaded || !rt) {
    await rt?.close();
    throw new ConfigError(problems);
  }
  const c = loaded.config;
  const summary = {
    config: loaded.source,
    issuers: c.issuers.map((i) => ({
      name: i.name,
      issuer: i.issuer,
      audiences: i.audiences,
      algorithms: i.algorithms,
      keys: keysSummary(i),
    })),
    ...(c.api_keys.length > 0
      ? {
          api_keys: c.api_keys.map((k, i) => ({
            name: k.name,
            ...(k.header !== undefined ? { header: k.header } : { query: k.query }),
            keys_file: k.keys_file,
            keys: rt.apiKeyFiles[i]?.size ?? 0,
          })),
        }
      : {}),
    rules: rt.rules.summary,
    default_action: c.default_action,
    upstream: {
      claim_headers: c.upstream.claim_headers,
      token: c.upstream.token
        ? {
            header: c.upstream.token.header,
            alg: c.upstream.token.signing.alg,
            encrypted: !!c.upstream.token.encryption,
          }
        : undefined,
    },
    token_endpoint: c.token_endpoint.enabled
      ? { issuer: c.token_endpoint.issuer, clients: c.token_endpoint.clients.length }
      : undefined,
    store: c.store.type,
  };
  await rt.close();
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\nconfiguration OK\n`);
  // Remote key sources may hold sockets open a little longer; the verdict is final.
  process.exit(0);
}
