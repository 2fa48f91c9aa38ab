import { isIP } from 'node:net';
import { tlsEnabled } from '../../net/tls-files.js';
import { LOG_LEVELS } from './constants.js';
import { int, oneOf, section, str, Type, type Static } from './kit.js';
import { splitHostPort } from '../../core/address.js';

// server and log: the listeners, processes and logging.

function tls(listener: string) {
  return section(
    {
      cert_file: str({ description: `${listener} listener certificate (PEM, chain allowed)`, default: '' }),
      key_file: str({ description: `${listener} listener private key (PEM)`, default: '' }),
      client_ca_file: str({
        description: 'CA bundle for client certificates (mTLS): client certificates must chain to it',
        default: '',
      }),
      require_client_cert: Type.Union([Type.Boolean(), Type.Null()], {
        description: 'refuse clients without a certificate; null: true when client_ca_file is set',
        default: null,
        'x-expected': 'true or false',
      }),
    },
    {
      description: `TLS on the ${listener} listener (off while cert_file and key_file are empty)`,
      default: {},
    },
  );
}

export const ServerSchema = section(
  {
    grpc_address: str({
      description:
        'gRPC listen address (Check and grpc.health.v1.Health): HOST:PORT (IPv6 host in brackets) or unix:/path',
      default: '0.0.0.0:9001',
      'x-env': 'AUTHZ_GRPC_ADDRESS',
    }),
    http_address: str({
      description: 'HTTP listen address (health, metrics, well-known documents, OAuth endpoints): HOST:PORT',
      default: '0.0.0.0:9002',
      'x-env': 'AUTHZ_HTTP_ADDRESS',
    }),
    shutdown_grace_seconds: int({
      description: 'on SIGTERM/SIGINT: health NOT_SERVING, in-flight checks drain this long, then exit 0',
      default: 10,
      minimum: 0,
    }),
    drain_delay_seconds: int({
      description:
        'on SIGTERM: seconds to keep answering while NOT_SERVING, so health checkers take this replica out first (skipped when nothing probed health in the last minute)',
      default: 5,
      minimum: 0,
    }),
    http_max_connections: int({
      description:
        'concurrent connections the HTTP listener accepts (per process); more are closed on arrival',
      default: 1024,
      minimum: 1,
    }),
    http_max_connections_per_client: int({
      description: 'concurrent HTTP connections one client address may hold (per process)',
      default: 64,
      minimum: 1,
    }),
    workers: int({
      description: 'processes serving checks (node:cluster) sharing both ports; 1 = no cluster',
      default: 1,
      minimum: 1,
      maximum: 64,
    }),
    crypto_offload: oneOf(['always', 'auto', 'never'] as const, {
      description:
        "where signature checks and signing run: always = libuv's thread pool (the event loop keeps serving checks meanwhile); auto = cheap ones (RSA verify, P-256, Ed25519) on the event loop, costly ones (RSA signing, P-384, P-521) on the pool; never = all on the event loop",
      default: 'always',
    }),
    grpc_max_message_bytes: int({
      description: 'largest CheckRequest accepted (bytes); larger ones get RESOURCE_EXHAUSTED',
      default: 4 * 1024 * 1024,
      minimum: 1024,
    }),
    grpc_tls: tls('gRPC'),
    http_tls: tls('HTTP'),
  },
  { description: 'Listeners and processes.', default: {} },
);

export const LogSchema = section(
  {
    level: oneOf(LOG_LEVELS, {
      description: 'pino level; denials are logged at info, allows at debug',
      default: 'info',
      'x-env': 'AUTHZ_LOG_LEVEL',
    }),
    denials_per_second: int({
      description:
        'per denial reason, "check denied" lines written per second (the rest are counted in authz_log_suppressed_total); 0 = every one',
      default: 20,
      minimum: 0,
    }),
  },
  { description: 'Logging. Tokens, keys and secrets are never logged.', default: {} },
);

/**
 * Why `value` cannot be listened on (undefined when it can): `host:port` with a port
 * in 0–65535 (IPv6 hosts in brackets), or, where the server supports it, `unix:/path`.
 */
export function addressProblem(value: string, allowUnix: boolean): string | undefined {
  if (value.startsWith('unix:')) {
    if (!allowUnix) return `"${value}": a unix socket is not supported here; expected HOST:PORT`;
    return value.length > 'unix:'.length ? undefined : `"${value}": unix: needs a socket path`;
  }
  const a = splitHostPort(value);
  const expected = `expected HOST:PORT${allowUnix ? ' or unix:/path' : ''}`;
  if (!a) return `"${value}": ${expected}`;
  const { host, port } = a;
  if (host === '') return `"${value}": the host is missing (${expected}, e.g. 0.0.0.0:9001)`;
  if (a.bracketed && isIP(host) !== 6) return `"${value}": "${host}" is not an IPv6 address`;
  if (!a.bracketed && isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host))
    return `"${value}": "${host}" is not a host name or IP address`;
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535)
    return `"${value}": the port must be a number between 0 and 65535, got "${port}"`;
  return undefined;
}

export const LISTEN_ADDRESSES = [
  { field: 'server.grpc_address', key: 'grpc_address', allowUnix: true },
  // The HTTP server listens on a host and a port only.
  { field: 'server.http_address', key: 'http_address', allowUnix: false },
] as const;

export type ServerConfig = Static<typeof ServerSchema>;

/** Rules between the server fields. */
export function checkServer(server: ServerConfig, problems: string[]): void {
  for (const { field, key, allowUnix } of LISTEN_ADDRESSES) {
    const problem = addressProblem(server[key], allowUnix);
    if (problem) problems.push(`${field}: ${problem}`);
  }
  const { grpc_address: grpc, http_address: http } = server;
  if (grpc === http && !/:0$/.test(grpc))
    problems.push(`server.http_address: "${http}" is also server.grpc_address; give each its own port`);
  for (const key of ['grpc_tls', 'http_tls'] as const) {
    const t = server[key];
    if (!tlsEnabled(t)) continue;
    if (t.cert_file === '') problems.push(`server.${key}.cert_file: required when server.${key} is set`);
    if (t.key_file === '') problems.push(`server.${key}.key_file: required when server.${key} is set`);
    if (t.require_client_cert === true && t.client_ca_file === '')
      problems.push(
        `server.${key}.require_client_cert: needs client_ca_file to check client certificates against`,
      );
  }
  if (tlsEnabled(server.grpc_tls) && server.grpc_address.startsWith('unix:'))
    problems.push('server.grpc_tls: not used on a unix socket (server.grpc_address); remove one of them');
}
