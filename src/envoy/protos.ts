import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { REUSABLE_RESPONSES } from './response.js';

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
    const service = pkg.envoy.service.auth.v3.Authorization.service as grpc.ServiceDefinition;
    // Reusable responses (see response.ts) are serialized once; grpc-js copies the
    // bytes into its own frame, so sharing them is safe.
    const check = service.Check!;
    const serialize = check.responseSerialize;
    const wire = new WeakMap<object, Buffer>();
    cached = {
      ...service,
      Check: {
        ...check,
        responseSerialize: (value: any): Buffer => {
          const known = wire.get(value);
          if (known) return known;
          const bytes = serialize(value);
          if (REUSABLE_RESPONSES.has(value)) {
            // Kept bytes get their own allocation: a slice of Node's shared 8 KiB
            // buffer pool would pin the whole slab for as long as the entry lives.
            const own = Buffer.allocUnsafeSlow(bytes.length);
            bytes.copy(own);
            wire.set(value, own);
            return own;
          }
          return bytes;
        },
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
