// A transparent gRPC hop between Envoy and the service: forwards Authorization/Check
// and grpc.health.v1.Health/Check as raw bytes (the service's answers reach Envoy
// unchanged) and keeps a decoded copy of every CheckRequest, so a test can see what
// the real Envoy sends. Failure modes for the "service down / slow" cases.
import * as grpc from '@grpc/grpc-js';
import { authorizationService } from '../../src/envoy/protos.js';

const raw = (b: Buffer): Buffer => b;

function rawMethod(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  };
}

const CHECK = rawMethod('/envoy.service.auth.v3.Authorization/Check');
const HEALTH = rawMethod('/grpc.health.v1.Health/Check');

export type RecorderMode =
  | { kind: 'forward' }
  /** Answer nothing for this long, then forward (beyond Envoy's timeout: Envoy gives up first). */
  | { kind: 'delay'; ms: number }
  /** Fail the call with this gRPC status, without asking the service. */
  | { kind: 'error'; code: grpc.status }
  /**
   * Answer with this CheckResponse (proto-loader keepCase object), without asking the
   * service: to see what Envoy itself does with a given answer.
   */
  | { kind: 'answer'; response: Record<string, unknown> };

export interface ExtAuthzRecorder {
  readonly address: string;
  /** Decoded CheckRequests, oldest first. */
  readonly requests: any[];
  mode: RecorderMode;
  close(): Promise<void>;
}

export async function startRecorder(target: string): Promise<ExtAuthzRecorder> {
  const decode = authorizationService().Check!.requestDeserialize;
  const encode = authorizationService().Check!.responseSerialize;
  const Client = grpc.makeGenericClientConstructor({ Check: CHECK, Health: HEALTH }, 'Recorder');
  const client = new Client(target, grpc.credentials.createInsecure()) as any;
  const server = new grpc.Server();
  const state: ExtAuthzRecorder = {
    address: '',
    requests: [],
    mode: { kind: 'forward' },
    close: async () => {
      client.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      server.forceShutdown();
    },
  };

  const forward =
    (method: 'Check' | 'Health') =>
    (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void => {
      const deadline = call.getDeadline();
      client[method](
        call.request,
        Number.isFinite(Number(deadline)) ? { deadline } : {},
        (err: grpc.ServiceError | null, res: Buffer) => callback(err, res),
      );
    };
  const forwardCheck = forward('Check');

  server.addService(
    { Check: CHECK },
    {
      Check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        state.requests.push(decode(call.request));
        const mode = state.mode;
        if (mode.kind === 'error') callback({ code: mode.code, details: 'recorder: injected failure' });
        else if (mode.kind === 'delay') setTimeout(() => forwardCheck(call, callback), mode.ms);
        else if (mode.kind === 'answer') callback(null, encode(mode.response));
        else forwardCheck(call, callback);
      },
    },
  );
  server.addService({ Check: HEALTH }, { Check: forward('Health') });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  (state as { address: string }).address = `127.0.0.1:${port}`;
  return state;
}
