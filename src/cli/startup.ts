import type { LoadedConfig } from '../config/types.js';
import { bindErrorText } from '../config/preflight.js';

/** Problems found while starting (each names its config field); printed one per line, exit 1. */
export class StartupError extends Error {
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
  const message = (err as Error)?.message ?? '';
  // The gRPC listener tags its bind errors (src/envoy/grpc-server.ts).
  if ((err as { listener?: string })?.listener === 'grpc')
    return new StartupError([`server.grpc_address: ${bindErrorText(grpc, err)}`]);
  // @grpc/grpc-js reports a failed bind as "No address added out of total N resolved…".
  if (/No address added/i.test(message)) {
    const reason = /EADDRINUSE|address already in use/i.test(message)
      ? Object.assign(new Error(message), { code: 'EADDRINUSE' })
      : new Error(message.replace(/^.*?resolved:?\s*/i, '') || message);
    return new StartupError([`server.grpc_address: ${bindErrorText(grpc, reason)}`]);
  }
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code && /^(EADDRINUSE|EACCES|EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN)$/.test(code))
    return new StartupError([`server.http_address: ${bindErrorText(http, err)}`]);
  return undefined;
}
