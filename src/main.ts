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
import { Metrics } from './observability/metrics.js';
import { demoSetup, printDemoInstructions } from './cli/demo.js';
import { runCheck, UsageError } from './cli/check.js';
import { inspectConfig } from './cli/check-config.js';
import { listenError, StartupError } from './cli/startup.js';
import { probeListenAddresses } from './config/preflight.js';
import { isClusterWorker, runPrimary, shareRegistryWithPrimary } from './server/cluster.js';
import { generateSigningKeyObject } from './crypto/key-import.js';
import { signJws } from './crypto/sign.js';
import { loadSigningKeys } from './crypto/signing-keys.js';

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

const COMMON_OPTIONS = `  --debug                  print stack traces on unexpected errors
  --help                   print this help`;

const COMMAND_HELP: Record<string, { summary: string; usage: string; options: string }> = {
  serve: {
    summary: 'run the ext_authz gRPC server (default command; no config = demo mode)',
    usage: 'serve [--config FILE]',
    options: `  -c, --config FILE        YAML or JSON config file (default: env AUTHZ_CONFIG; none = demo mode)`,
  },
  'check-config': {
    summary: 'validate a config, read every file it names, print a summary; exit 1 listing every problem',
    usage: 'check-config --config FILE [--fetch]',
    options: `  -c, --config FILE        YAML or JSON config file (default: env AUTHZ_CONFIG)
  --fetch                  also fetch every jwks_uri / discovery_uri once and report failures`,
  },
  keygen: {
    summary: 'print a private JWK and its public JWK',
    usage: 'keygen [--alg ALG] [--kid KID]',
    options: `  --alg ALG                signature algorithm (default ES256; one of ${JWS_ALGORITHMS.join(', ')})
  --kid KID                key id (default: the JWK thumbprint)`,
  },
  mint: {
    summary: 'sign a token (for testing)',
    usage: 'mint --key FILE [--claims JSON] [--ttl SECONDS] [--alg ALG] [--typ TYP]',
    options: `  --key FILE               private key: a JWK (JSON) or PKCS#8 PEM file
  --claims JSON            claims as a JSON object (iat and exp are added)
  --ttl SECONDS            lifetime in seconds (default 300)
  --alg ALG                signature algorithm (default: the JWK's "alg"; required for PEM)
  --typ TYP                "typ" header (default JWT)`,
  },
  check: {
    summary: 'send one Envoy-shaped CheckRequest, print the decision as JSON',
    usage:
      'check [--address HOST:PORT] [--token T] [--method M] [--path P] [--host H] [--header k=v]... [--context k=v]... [--timeout MS]',
    options: `  --address HOST:PORT      the server's gRPC address (default 127.0.0.1:9001)
  --token T                bearer token, sent as "authorization: Bearer T"
  --method M               HTTP method (default GET)
  --path P                 request path with optional query (default /)
  --host H                 :authority / Host (default localhost)
  --header k=v             a request header; repeat for more
  --context k=v            a context extension; repeat for more
  --timeout MS             deadline in milliseconds (default 5000)`,
  },
  help: {
    summary: "print the usage, or a command's own usage",
    usage: 'help [COMMAND]',
    options: '',
  },
};

const USAGE = `usage: envoy-jwt-authz <command> [options]

commands:
${Object.entries(COMMAND_HELP)
  .map(([name, h]) => `  ${name.padEnd(14)} ${h.summary}`)
  .join('\n')}

Run "envoy-jwt-authz help COMMAND" or "envoy-jwt-authz COMMAND --help" for a command's options.

options: --version (print the version), --help, --debug (stack traces on errors)
env: AUTHZ_CONFIG (config file), AUTHZ_GRPC_ADDRESS, AUTHZ_HTTP_ADDRESS, AUTHZ_LOG_LEVEL`;

function commandUsage(name: string): string {
  const h = COMMAND_HELP[name]!;
  const options = [h.options, name === 'help' ? '' : COMMON_OPTIONS].filter(Boolean).join('\n');
  return `usage: envoy-jwt-authz ${h.usage}\n\n${h.summary}\n${options ? `\noptions:\n${options}\n` : ''}`;
}

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
  if (!isClusterWorker()) {
    // A port taken by another process is reported here, naming the field, rather than
    // as a listener error from deep inside a server library (or, with workers, as
    // workers dying in a loop).
    const busy = await probeListenAddresses(loaded.config);
    if (busy.length > 0) throw new StartupError(busy);
  }
  if (workers > 1 && !isClusterWorker()) {
    await runPrimary(workers, logger.child({ role: 'primary' }), loaded.config.server.shutdown_grace_seconds);
    return;
  }
  const metrics = new Metrics();
  shareRegistryWithPrimary(metrics.registry);
  let service: Service;
  try {
    service = await Service.start(loaded, {
      logger: isClusterWorker() ? logger.child({ worker: process.pid }) : logger,
      metrics,
    });
  } catch (err) {
    throw listenError(loaded, err) ?? err;
  }
  if (demoToken) printDemoInstructions(demoToken, service.grpcPort, logger);

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
  const { values } = parse(args, { config: { type: 'string', short: 'c' }, fetch: { type: 'boolean' } });
  const file = (values.config as string | undefined) ?? process.env.AUTHZ_CONFIG;
  if (!file) throw new UsageError('check-config needs --config FILE');
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
  // Remote key sources may hold sockets open a little longer; the verdict is final.
  process.exit(0);
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
  help: async (args) => {
    const [name, ...extra] = args.filter((a) => a !== '--debug');
    if (extra.length > 0) throw new UsageError('help takes at most one COMMAND');
    if (name === undefined) process.stdout.write(`${USAGE}\n`);
    else if (name in COMMAND_HELP) process.stdout.write(commandUsage(name));
    else throw new UsageError(`unknown command "${name}"`);
  },
};

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  let [command, ...rest] = argv;
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
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
    if (command !== 'help' && (rest.includes('--help') || rest.includes('-h'))) {
      process.stdout.write(commandUsage(command));
      return;
    }
    await run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      const usage = command in COMMAND_HELP ? commandUsage(command) : `${USAGE}\n`;
      process.stderr.write(`error: ${err.message}\n\n${usage}`);
      process.exit(EXIT_USAGE);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    if (err instanceof StartupError) {
      process.stderr.write(`${err.problems.map((p) => `error: ${p}`).join('\n')}\n`);
      process.exit(EXIT_CONFIG);
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`error: ${e.message}${debug && e.stack ? `\n${e.stack}` : ''}\n`);
    process.exit(EXIT_CONFIG);
  }
}

void main(process.argv.slice(2));
