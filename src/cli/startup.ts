import { statSync, type Stats } from 'node:fs';
import type { LoadedConfig } from '../config/types.js';
import { bindErrorText } from '../config/preflight.js';
import { AuthzError } from '../core/errors.js';

/** Problems found while starting (each names its config field); printed one per line, exit 1. */
export class StartupError extends AuthzError {
  readonly code = 'ERR_STARTUP';

  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'StartupError';
  }
}

/**
 * A listener that failed after the port probe passed (a race, or a host the probe
 * cannot tell apart) becomes a StartupError naming the field; other errors give undefined.
 */
export function listenError(loaded: LoadedConfig, err: unknown): StartupError | undefined {
  const { grpc_address: grpc, http_address: http } = loaded.config.server;
  // The gRPC listener tags every error of its listen() (src/envoy/grpc-server.ts): the
  // bind's errno (EADDRINUSE, EACCES, EADDRNOTAVAIL, ENOTFOUND), a stale unix socket that
  // cannot be removed, an invalid address.
  if ((err as { listener?: string })?.listener === 'grpc')
    return new StartupError([`server.grpc_address: ${bindErrorText(grpc, err)}`]);
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code && /^(EADDRINUSE|EACCES|EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN)$/.test(code))
    return new StartupError([`server.http_address: ${bindErrorText(http, err)}`]);
  return undefined;
}

/** The environment variables that override a listen address (they win over the config file). */
const ADDRESS_ENV: ReadonlyArray<readonly [field: string, variable: string]> = [
  ['server.grpc_address', 'AUTHZ_GRPC_ADDRESS'],
  ['server.http_address', 'AUTHZ_HTTP_ADDRESS'],
];

/**
 * A problem about a listen address whose value came from its environment variable names
 * that variable first (`AUTHZ_GRPC_ADDRESS (server.grpc_address): cannot listen on …`), so
 * nobody searches the config file for a value it does not hold.
 */
export function nameAddressSource(problem: string, env: NodeJS.ProcessEnv = process.env): string {
  for (const [field, variable] of ADDRESS_ENV) {
    if (env[variable] !== undefined && problem.startsWith(`${field}:`))
      return `${variable} (${field})${problem.slice(field.length)}`;
  }
  return problem;
}

/**
 * The config file a command was given, checked before it is read: a missing file is one
 * clear line (`config file not found: <path>`, exit 1), not an errno code.
 */
export function requireConfigFile(file: string, fromEnv: boolean): void {
  const origin = fromEnv ? ' (from AUTHZ_CONFIG)' : '';
  let stats: Stats;
  try {
    stats = statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new StartupError([`config file not found: ${file}${origin}`]);
    return; // other errors (permissions) are reported by the loader with their path
  }
  if (stats.isDirectory()) throw new StartupError([`config file is a folder, not a file: ${file}${origin}`]);
}
