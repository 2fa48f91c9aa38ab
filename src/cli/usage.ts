import { JWS_ALGORITHMS } from '../config/schema.js';
import { UsageError } from './args.js';

const COMMON_OPTIONS = `  --debug                  print stack traces on unexpected errors
  --help                   print this help`;

export const COMMAND_HELP: Record<string, { summary: string; usage: string; options: string }> = {
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
    summary: 'print a private JWK and its public JWK, or a new API key and its keys_file entry',
    usage: 'keygen [--alg ALG] [--kid KID] | keygen --api-key [--id ID]',
    options: `  --alg ALG                signature algorithm (default ES256; one of ${JWS_ALGORITHMS.join(', ')})
  --kid KID                key id (default: the JWK thumbprint)
  --api-key                print a new API key (shown once) and the entry (id, hash) for a keys_file
  --id ID                  the API key's id in the keys_file (default: key-<random>)`,
  },
  mint: {
    summary: 'sign a token (for testing)',
    usage: 'mint --key FILE [--claims JSON] [--ttl SECONDS] [--alg ALG] [--typ TYP]',
    options: `  --key FILE               private key: a JWK (JSON) or PKCS#8 PEM file
  --claims JSON            claims as a JSON object (iat and exp are added)
  --ttl SECONDS            lifetime in seconds (default 300); negative: already expired
                           that long ago (--ttl -120 for a token a service refuses)
  --alg ALG                signature algorithm (default: the JWK's "alg"; required for PEM)
  --typ TYP                "typ" header (default JWT)`,
  },
  check: {
    summary: 'send one Envoy-shaped CheckRequest, print the decision as JSON',
    usage:
      'check [--address HOST:PORT] [--token T] [--method M] [--path P] [--host H] [--header k=v]... [--context k=v]... [--timeout MS] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] [--explain --config FILE]',
    options: `  --address HOST:PORT      the server's gRPC address, or unix:/path (default 127.0.0.1:9001)
  --token T                bearer token, sent as "authorization: Bearer T"
  --method M               HTTP method (default GET)
  --path P                 request path with optional query (default /)
  --host H                 :authority / Host (default localhost)
  --header k=v             a request header; repeat for more
  --context k=v            a context extension; repeat for more
  --timeout MS             deadline in milliseconds (default 5000)
  --explain --config FILE  no server: the decision with its trail (credential, key, claims, rules
                           considered, requirements, rate limits, upstream headers) from FILE
  --tls-ca FILE            connect with TLS, trusting this CA bundle (PEM) for the server certificate
  --tls-cert FILE          client certificate (PEM) for mTLS; needs --tls-key and --tls-ca
  --tls-key FILE           client private key (PEM)`,
  },
  help: {
    summary: "print the usage, or a command's own usage",
    usage: 'help [COMMAND]',
    options: '',
  },
};

export const USAGE = `usage: envoy-jwt-authz <command> [options]

commands:
${Object.entries(COMMAND_HELP)
  .map(([name, h]) => `  ${name.padEnd(14)} ${h.summary}`)
  .join('\n')}

Run "envoy-jwt-authz help COMMAND" or "envoy-jwt-authz COMMAND --help" for a command's options.

options: --version (print the version), --help, --debug (stack traces on errors)
env: AUTHZ_CONFIG (config file), AUTHZ_GRPC_ADDRESS, AUTHZ_HTTP_ADDRESS, AUTHZ_LOG_LEVEL`;

export function commandUsage(name: string): string {
  const h = COMMAND_HELP[name]!;
  const options = [h.options, name === 'help' ? '' : COMMON_OPTIONS].filter(Boolean).join('\n');
  return `usage: envoy-jwt-authz ${h.usage}\n\n${h.summary}\n${options ? `\noptions:\n${options}\n` : ''}`;
}

/** The `help [COMMAND]` command. */
export async function helpCommand(args: string[]): Promise<void> {
  const [name, ...extra] = args.filter((a) => a !== '--debug');
  if (extra.length > 0) throw new UsageError('help takes at most one COMMAND');
  if (name === undefined) process.stdout.write(`${USAGE}\n`);
  else if (name in COMMAND_HELP) process.stdout.write(commandUsage(name));
  else throw new UsageError(`unknown command "${name}"`);
}
