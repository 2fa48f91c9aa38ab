import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The vendored Envoy API protos (scripts/vendor-protos.mjs). Same path from src/ and dist/. */
export const PROTOS_DIR = fileURLToPath(new URL('../../protos', import.meta.url));

export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTOS_DIR],
};

let cached: grpc.ServiceDefinition | undefined;

/** envoy.service.auth.v3.Authorization, loaded once per process. */
export function authorizationService(): grpc.ServiceDefinition {
  if (!cached) {
    const def = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', PROTO_LOADER_OPTIONS);
    const pkg = grpc.loadPackageDefinition(def) as any;
    cached = pkg.envoy.service.auth.v3.Authorization.service as grpc.ServiceDefinition;
  }
  return cached;
}

/** A client constructor for envoy.service.auth.v3.Authorization (the `check` CLI and tests). */
export function authorizationClientConstructor(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', PROTO_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as any;
  return pkg.envoy.service.auth.v3.Authorization as grpc.ServiceClientConstructor;
}
