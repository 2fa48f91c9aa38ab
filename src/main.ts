#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { exportJWK, calculateJwkThumbprint, type JWK } from 'jose';
import { createPublicKey } from 'node:crypto';
import { Service } from './server/app.js';
import { loadConfigFile, loadConfigObject } from './config/load.js';
import { ConfigError } from './core/errors.js';
import type { LoadedConfig } from './config/types.js';
import { JWS_ALGORITHMS } from './config/schema.js';
import { createLogger } from './observability/logger.js';
import { Runtime } from './server/runtime.js';
import { Metrics } from './observability/metrics.js';
import { demoSetup } from './cli/demo.js';
import { runCheck, UsageError } from './cli/check.js';
import { isClusterWorker, runPrimary, shareRegistryWithPrimary } from './server/cluster.js';
import { generateSigningKeyObject, loadSigningKeys, signJws } from './crypto/signing-keys.js';

const USAGE = `usage: envoy-jwt-authz <command> [options]

commands:
  serve [--config FILE]            run the ext_authz gRPC server (default command; no config = demo mode)
  check-config --config FILE       validate a config, print a summary; exit 1 listing every problem
  keygen --alg ALG [--kid K]       print a private JWK and its public JWK
  mint --key FILE --claims JSON [--ttl 300] [--alg ALG] [--typ T]
                                   sign a token (for testing)
  check --address HOST:PORT [--token T] [--method GET] [--path /x] [--host H]
        [--header k=v]... [--context k=v]...
                                   send one Envoy-shaped CheckRequest, print the decision as JSON

options: --debug (stack traces on errors), --help
env: AUTHZ_CONFIG (config file), AUTHZ_GRPC_ADDRESS, AUTHZ_HTTP_ADDRESS, AUTHZ_LOG_LEVEL`;

const EXIT_CONFIG = 1;
const EXIT_USAGE = 2;

type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

function parse(
  args: string[],
  options: OptionSpec,
): { values: Record<string, string | boolean | string[] | undefined> } {
  // A value that starts with "-" (a base64url token can) must not be read as an option:
  // join `--name value` into `--name=value` for every string option.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i]!.startsWith('--') ? args[i]!.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && i + 1 < args.length) {
      joined.push(`--${name}=${args[++i]}`);
    } else joined.push(args[i]!);
  }
  args = joined;
  try {
    const { values } = parseArgs({
      args,
      options: { ...options, debug: { type: 'boolean' }, help: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    });
    return { values: values as Record<string, string | boolean | string[] | undefined> };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function serve(args: string[]): Promise<void> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' } });
  const file = (values.config as string | undefined) ?? process.env.AUTHZ_CONFIG;
  let loaded: LoadedConfig;
  let demoToken: string | undefined;
  if (file) {
    loaded = loadConfigFile(file);
  } else {
    const demo = await demoSetup();
    loaded = loadConfigObject(demo.config, process.cwd());
    demoToken = demo.token;
  }
  const logger = createLogger(loaded.config.log.level);
  const workers = loaded.config.server.workers;
  if (workers > 1 && !isClusterWorker()) {
    await runPrimary(workers, logger.child({ role: 'primary' }), loaded.config.server.shutdown_grace_seconds);
    return;
  }
  const metrics = new Metrics();
  shareRegistryWithPrimary(metrics.registry);
  const service = await Service.start(loaded, {
    logger: isClusterWorker() ? logger.child({ worker: process.pid }) : logger,
    metrics,
  });
  if (demoToken) {
    const address = `127.0.0.1:${service.grpcPort}`;
    const cmd = `node dist/main.js check --address ${address} --path /api/orders --token ${demoToken}`;
    logger.warn(
      { demo_token: demoToken, try: cmd },
      'DEMO MODE: no --config given; an in-memory issuer with a fresh key is trusted. Do not use in production.',
    );
    process.stderr.write(
      `\nDemo mode. A ready token (valid 1 hour, scope "read write"):\n\n  ${demoToken}\n\nTry it:\n\n  ${cmd}\n  ${cmd.replace('/api/orders', '/admin')}   # 403 insufficient_scope\n  node dist/main.js check --address ${address} --path /api/orders              # 401 no token\n\n`,
    );
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining in-flight checks');
    service
      .shutdown()
      .then(() => {
        logger.info('stopped');
        logger.flush();
        process.exit(0);
      })
      .catch((err: Error) => {
        logger.error({ err: { message: err.message } }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (!file) {
      logger.warn('SIGHUP: demo mode has no config file to reload');
      return;
    }
    let next: LoadedConfig;
    try {
      next = loadConfigFile(file);
    } catch (err) {
      logger.error(
        { problems: (err as ConfigError).problems ?? [(err as Error).message] },
        'reload rejected: the old configuration keeps serving',
      );
      return;
    }
    service.reload(next).catch((err: Error) => {
      logger.error(
        { problems: (err as ConfigError).problems ?? [err.message] },
        'reload rejected: the old configuration keeps serving',
      );
    });
  });
}

async function checkConfig(args: string[]): Promise<void> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' } });
  const file = (values.config as string | undefined) ?? process.env.AUTHZ_CONFIG;
  if (!file) throw new UsageError('check-config needs --config FILE');
  const loaded = loadConfigFile(file);
  // Compile everything (rules, keys, minter) as serve would, without listening or fetching.
  const rt = await Runtime.build(loaded, {
    logger: createLogger('silent'),
    metrics: new Metrics({ processMetrics: false }),
  });
  const c = loaded.config;
  const summary = {
    config: loaded.source,
    issuers: c.issuers.map((i) => ({
      name: i.name,
      issuer: i.issuer,
      audiences: i.audiences,
      algorithms: i.algorithms,
      keys: i.jwks_uri
        ? `jwks_uri ${i.jwks_uri}`
        : i.discovery_uri
          ? `discovery ${i.discovery_uri}`
          : i.jwks_file
            ? `jwks_file ${i.jwks_file}`
            : i.jwks
              ? 'inline jwks'
              : i.truststore
                ? `truststore ${i.truststore.path}`
                : 'secret_file',
    })),
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
}

async function keygen(args: string[]): Promise<void> {
  const { values } = parse(args, { alg: { type: 'string' }, kid: { type: 'string' } });
  const alg = (values.alg as string | undefined) ?? 'ES256';
  if (!(JWS_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new UsageError(`--alg must be one of ${JWS_ALGORITHMS.join(', ')}`);
  }
  const key = generateSigningKeyObject(alg);
  const priv = (await exportJWK(key)) as JWK;
  const pub: JWK | undefined =
    key.type === 'private' ? ((await exportJWK(createPublicKey(key))) as JWK) : undefined;
  const kid = (values.kid as string | undefined) ?? (await calculateJwkThumbprint(pub ?? priv));
  const meta = { kid, alg, use: 'sig' };
  process.stdout.write(
    `${JSON.stringify({ private: { ...priv, ...meta }, public: pub ? { ...pub, ...meta } : undefined }, null, 2)}\n`,
  );
}

async function mint(args: string[]): Promise<void> {
  const { values } = parse(args, {
    key: { type: 'string' },
    claims: { type: 'string' },
    ttl: { type: 'string' },
    alg: { type: 'string' },
    typ: { type: 'string' },
  });
  const keyFile = values.key as string | undefined;
  if (!keyFile) throw new UsageError('mint needs --key FILE (a private JWK or PKCS#8 PEM)');
  let claims: Record<string, unknown> = {};
  if (values.claims !== undefined) {
    try {
      claims = JSON.parse(values.claims as string);
    } catch {
      throw new UsageError('--claims must be a JSON object');
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims))
      throw new UsageError('--claims must be a JSON object');
  }
  const ttl = values.ttl === undefined ? 300 : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0)
    throw new UsageError('--ttl must be a positive whole number of seconds');
  let alg = values.alg as string | undefined;
  if (!alg) {
    try {
      alg = (JSON.parse(readFileSync(keyFile, 'utf8')) as JWK).alg;
    } catch {
      /* PEM */
    }
  }
  if (!alg) throw new UsageError('--alg is required when the key file does not name one');
  const keys = await loadSigningKeys({ alg, key_file: keyFile, previous_key_files: [] }, 'mint', {
    baseDir: process.cwd(),
    logger: createLogger('silent'),
  }).catch((err: unknown) => {
    // Problems are worded for config paths ("mint.key_file: …"); here the field is --key.
    if (err instanceof ConfigError)
      throw new ConfigError(err.problems.map((p) => p.replace(/^mint\.key_file/, '--key')));
    throw err;
  });
  const now = Math.floor(Date.now() / 1000);
  const header: Record<string, unknown> = {
    alg,
    kid: keys.current.kid,
    typ: (values.typ as string | undefined) ?? 'JWT',
  };
  process.stdout.write(`${signJws(keys.current, header, { iat: now, exp: now + ttl, ...claims })}\n`);
}

async function check(args: string[]): Promise<void> {
  const { values } = parse(args, {
    address: { type: 'string' },
    token: { type: 'string' },
    method: { type: 'string' },
    path: { type: 'string' },
    host: { type: 'string' },
    header: { type: 'string', multiple: true },
    context: { type: 'string', multiple: true },
    timeout: { type: 'string' },
  });
  const result = await runCheck({
    address: (values.address as string | undefined) ?? '127.0.0.1:9001',
    token: values.token as string | undefined,
    method: (values.method as string | undefined) ?? 'GET',
    path: (values.path as string | undefined) ?? '/',
    host: (values.host as string | undefined) ?? 'localhost',
    headers: (values.header as string[] | undefined) ?? [],
    context: (values.context as string[] | undefined) ?? [],
    timeoutMs: values.timeout === undefined ? 5000 : Number(values.timeout),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  serve,
  'check-config': checkConfig,
  keygen,
  mint,
  check,
};

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  let [command, ...rest] = argv;
  if (command === undefined || command.startsWith('-')) {
    if (command === '--help' || command === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    rest = argv;
    command = 'serve';
  }
  const run = COMMANDS[command];
  try {
    if (!run) throw new UsageError(`unknown command "${command}"`);
    if (rest.includes('--help')) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    await run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n\n${USAGE}\n`);
      process.exit(EXIT_USAGE);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`error: ${e.message}${debug && e.stack ? `\n${e.stack}` : ''}\n`);
    process.exit(EXIT_CONFIG);
  }
}

void main(process.argv.slice(2));
