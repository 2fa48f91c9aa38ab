#!/usr/bin/env node
// Reference point for the bench: bare @grpc/grpc-js + proto-loader answering every
// Check with an allow (full request decode, no authorization work). Usage: PORT arg.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const port = Number(process.argv[2]);
const def = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', {
  keepCase: true,
  longs: String,
  enums: Number,
  defaults: false,
  oneofs: true,
  includeDirs: [fileURLToPath(new URL('../../protos', import.meta.url))],
});
const pkg = grpc.loadPackageDefinition(def);
const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
const allow = { status: { code: 0 }, ok_response: {} };
server.addService(pkg.envoy.service.auth.v3.Authorization.service, {
  Check: (_call, callback) => callback(null, allow),
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  console.log('ready');
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
