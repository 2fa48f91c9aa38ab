import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { WIRE } from './response.js';

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

/** The CheckResponse serializer (proto-loader's, without the handle shortcut). */
export function checkResponseSerializer(): (response: any) => Buffer {
  authorizationService();
  return plainSerialize!;
}
let plainSerialize: ((response: any) => Buffer) | undefined;

/** envoy.service.auth.v3.Authorization, loaded once per process. */
export function authorizationService(): grpc.ServiceDefinition {
  if (!cached) {
    const def = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', PROTO_LOADER_OPTIONS);
    const pkg = grpc.loadPackageDefinition(def) as any;
    const service = pkg.envoy.service.auth.v3.Authorization.service as grpc.ServiceDefinition;
    // Reusable responses (see response.ts) arrive as handles of their serialized
    // bytes; grpc-js copies them into its own frame, so sharing them is safe.
    const check = service.Check!;
    const serialize = check.responseSerialize;
    plainSerialize = serialize;
    cached = {
      ...service,
      Check: {
        ...check,
        responseSerialize: (value: any): Buffer => (value[WIRE] as Buffer | undefined) ?? serialize(value),
      },
    };
  }
  return cached;
}

/** A client constructor for envoy.service.auth.v3.Authorization (the `check` CLI and tests). */
export function authorizationClientConstructor(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', PROTO_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as any;
  return pkg.envoy.service.auth.v3.Authorization as grpc.ServiceClientConstructor;
}
