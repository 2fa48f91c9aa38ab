import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { encodeCheckResponse } from './check-encode.js';
import type { CheckResponse, CheckResponseSerializer } from './messages.js';
import { WIRE, type WireHandle } from './response.js';

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

/**
 * The CheckResponse serializer (without the handle shortcut): check-encode.ts, which
 * writes what proto-loader's serializer writes for the objects response.ts builds.
 */
export function checkResponseSerializer(): CheckResponseSerializer {
  return encodeCheckResponse;
}

/** envoy.service.auth.v3.Authorization, loaded once per process. */
export function authorizationService(): grpc.ServiceDefinition {
  if (!cached) {
    const service = authorizationClientConstructor().service;
    // Responses are encoded by check-encode.ts. Reusable responses (see response.ts)
    // arrive as handles of their serialized bytes; grpc-js copies them into its own
    // frame, so sharing them is safe.
    const check = service.Check!;
    cached = {
      ...service,
      Check: {
        ...check,
        responseSerialize: (value: CheckResponse | WireHandle): Buffer =>
          (value as Partial<WireHandle>)[WIRE] ?? encodeCheckResponse(value as CheckResponse),
      },
    };
  }
  return cached;
}

/** A client constructor for envoy.service.auth.v3.Authorization (the `check` CLI and tests). */
export function authorizationClientConstructor(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', PROTO_LOADER_OPTIONS);
  return lookupService(grpc.loadPackageDefinition(def), 'envoy.service.auth.v3.Authorization');
}

/** A service constructor of a loaded package by its full name; throws when it is not one. */
function lookupService(pkg: grpc.GrpcObject, name: string): grpc.ServiceClientConstructor {
  let node: grpc.GrpcObject[string] | undefined = pkg;
  for (const part of name.split('.')) node = (node as grpc.GrpcObject | undefined)?.[part];
  if (typeof node !== 'function' || !('service' in node))
    throw new Error(`${name} is not a service of the loaded protos`);
  return node;
}
