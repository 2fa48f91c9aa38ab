// The gRPC listener: envoy.service.auth.v3.Authorization/Check and grpc.health.v1.Health
// (Check and Watch) on the node:http2 server of grpc-server.ts.

import type { SecureContextOptions } from 'node:tls';
import { systemClock, type Clock, type EpochMs } from '../core/time.js';
import { decodeCheckRequest, decodeHealthService, DecodeError } from './check-decode.js';
import { GrpcServer, type GrpcServerOptions, type ServerStreamCall } from './grpc-server.js';
import { DEFAULT_MAX_MESSAGE_BYTES, GrpcStatus, WireError } from './grpc-wire.js';
import type { CheckHandler } from './check-handler.js';

export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
const HEALTH_WATCH_PATH = '/grpc.health.v1.Health/Watch';
export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';

// grpc.health.v1.HealthCheckResponse.ServingStatus
const SERVING = 1;
const NOT_SERVING = 2;
const SERVICE_UNKNOWN = 3;

/** HealthCheckResponse { status = 1 } (UNKNOWN, the zero value, is the empty message). */
function healthResponse(status: number): Buffer {
  return status === 0 ? Buffer.alloc(0) : Buffer.from([0x08, status]);
}

/** HealthCheckRequest { string service = 1 } → the service name ('' when absent). */
export function decodeHealthRequest(buf: Buffer): string {
  try {
    return decodeHealthService(buf);
  } catch (err) {
    if (err instanceof DecodeError) throw new WireError(GrpcStatus.INTERNAL, 'malformed health request');
    throw err;
  }
}

/** grpc.health.v1 state: '' and the Authorization service, NOT_SERVING until ready. */
export class HealthState {
  private readonly status = new Map<string, number>([
    ['', NOT_SERVING],
    [AUTHORIZATION_SERVICE, NOT_SERVING],
  ]);
  private readonly watchers = new Map<string, Set<ServerStreamCall>>();
  /** When the last health Check or Watch came (0: never): is a health checker watching us? */
  lastProbeAt: EpochMs = 0;

  constructor(private readonly clock: Clock = systemClock) {}

  /** A Watch stream is open, or a Check came within the last `ms`. */
  probedWithin(ms: number): boolean {
    for (const set of this.watchers.values()) if (set.size > 0) return true;
    return this.lastProbeAt > 0 && this.clock.nowMs() - this.lastProbeAt <= ms;
  }

  setServing(serving: boolean): void {
    for (const name of this.status.keys()) this.set(name, serving ? SERVING : NOT_SERVING);
  }

  check = (message: Buffer): Buffer => {
    this.lastProbeAt = this.clock.nowMs();
    const service = decodeHealthRequest(message);
    const status = this.status.get(service);
    if (status === undefined)
      throw new WireError(GrpcStatus.NOT_FOUND, `Health status unknown for service ${service}`);
    return healthResponse(status);
  };

  watch = (message: Buffer, call: ServerStreamCall): void => {
    this.lastProbeAt = this.clock.nowMs();
    let service: string;
    try {
      service = decodeHealthRequest(message);
    } catch (err) {
      call.end((err as WireError).status, (err as WireError).message);
      return;
    }
    call.write(healthResponse(this.status.get(service) ?? SERVICE_UNKNOWN));
    let set = this.watchers.get(service);
    if (!set) this.watchers.set(service, (set = new Set()));
    set.add(call);
    call.onClose(() => set.delete(call));
  };

  private set(service: string, status: number): void {
    if (this.status.get(service) === status) return;
    this.status.set(service, status);
    for (const call of this.watchers.get(service) ?? []) call.write(healthResponse(status));
  }
}

export interface GrpcListenerOptions {
  /** Largest request message accepted (bytes); RESOURCE_EXHAUSTED beyond. */
  readonly maxMessageBytes?: number;
  readonly tls?: GrpcServerOptions['tls'];
  /** The clock of the health state (when it was last probed). */
  readonly clock?: Clock;
}

export interface GrpcServerHandle {
  /** The bound TCP port (0 on a unix socket). */
  readonly port: number;
  readonly health: HealthState;
  /** Swaps the TLS certificates for new connections (TLS listeners only). */
  setSecureContext(options: SecureContextOptions): void;
  close(graceMs: number): Promise<void>;
}

export async function startGrpcServer(
  address: string,
  service: CheckHandler,
  options: GrpcListenerOptions = {},
): Promise<GrpcServerHandle> {
  const server = new GrpcServer({
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    ...(options.tls ? { tls: options.tls } : {}),
  });
  server.addUnary(CHECK_PATH, (message, ctx) => {
    let request;
    try {
      request = decodeCheckRequest(message);
    } catch (err) {
      if (err instanceof DecodeError) throw new WireError(GrpcStatus.INTERNAL, 'Failed to parse request');
      throw err;
    }
    return service.check(request, ctx.deadline);
  });
  const health = new HealthState(options.clock);
  server.addUnary(HEALTH_CHECK_PATH, health.check);
  server.addServerStreaming(HEALTH_WATCH_PATH, health.watch);
  const port = await server.listen(address);
  return {
    port,
    health,
    setSecureContext: (o) => server.setSecureContext(o),
    close: (graceMs) => server.close(graceMs),
  };
}
