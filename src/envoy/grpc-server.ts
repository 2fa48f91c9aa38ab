// A gRPC server directly on node:http2: unary methods and server-streaming health
// Watch, which is all Envoy's ext_authz filter and its health checker use. It costs
// a fraction of @grpc/grpc-js per call (docs/benchmarks.md).

import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import {
  ACCEPT_ENCODING,
  decompress,
  encodeGrpcMessage,
  frameMessage,
  framedMessage,
  GrpcStatus,
  MessageCollector,
  parseGrpcTimeout,
  WireError,
} from './grpc-wire.js';
import { listenHostPort } from '../core/address.js';
import { systemClock } from '../core/time.js';

const {
  HTTP2_HEADER_STATUS,
  HTTP2_HEADER_CONTENT_TYPE,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_METHOD,
  NGHTTP2_NO_ERROR,
} = http2.constants;

/** What a handler learns about its call besides the message. */
export interface CallContext {
  /** Epoch ms by which the client wants its answer (grpc-timeout), if it set one. */
  readonly deadline: number | undefined;
  /** The TLS peer certificate (DER), when the connection is TLS with a client certificate. */
  readonly stream: http2.ServerHttp2Stream;
}

/** A unary handler returns the serialized response (or a promise of it), or throws a WireError. */
export type UnaryHandler = (message: Buffer, ctx: CallContext) => Buffer | Promise<Buffer>;

/** A server-streaming handler: the first message, and a sink for responses. */
export type StreamingHandler = (message: Buffer, call: ServerStreamCall) => void;

export interface ServerStreamCall {
  write(message: Uint8Array): void;
  /** Ends the call with this status (OK when omitted). */
  end(code?: number, message?: string): void;
  onClose(fn: () => void): void;
}

export interface GrpcServerOptions {
  readonly maxMessageBytes: number;
  /** TLS (and mTLS when requestCert) on the listener; plaintext h2c when absent. */
  readonly tls?: SecureContextOptions & { requestCert?: boolean; rejectUnauthorized?: boolean };
}

const RESPONSE_HEADERS = {
  [HTTP2_HEADER_STATUS]: 200,
  [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
  'grpc-accept-encoding': ACCEPT_ENCODING,
};
const OK_TRAILERS = { 'grpc-status': '0' };
// gRPC responses carry no date header (grpc-js sends none either): node:http2 would
// format and HPACK-encode a new one every second, and Envoy parse it on every answer.
const MESSAGE_OPTIONS = { waitForTrailers: true, sendDate: false };
const TRAILERS_ONLY_OPTIONS = { endStream: true, sendDate: false };

function isGrpcContentType(ct: string | undefined): boolean {
  return (
    ct !== undefined &&
    (ct === 'application/grpc' || ct.startsWith('application/grpc+') || ct.startsWith('application/grpc;'))
  );
}

/** Trailers-only response (the status travels in the only HEADERS frame). */
function respondError(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    if (!stream.writableEnded) stream.end();
    return;
  }
  stream.respond(
    {
      ...RESPONSE_HEADERS,
      'grpc-status': String(code),
      'grpc-message': encodeGrpcMessage(message),
    },
    TRAILERS_ONLY_OPTIONS,
  );
}

function respondMessage(stream: http2.ServerHttp2Stream, body: Uint8Array): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  stream.respond(RESPONSE_HEADERS, MESSAGE_OPTIONS);
  stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
  stream.end(framedMessage(body));
}

export class GrpcServer {
  private readonly unary = new Map<string, UnaryHandler>();
  private readonly streaming = new Map<string, StreamingHandler>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly openStreams = new Set<ServerStreamCall>();
  readonly server: http2.Http2Server | http2.Http2SecureServer;
  private closing = false;

  constructor(private readonly opts: GrpcServerOptions) {
    // Settings as grpc-js uses them; Envoy's keep-alive PINGs are answered by nghttp2.
    const common: http2.ServerOptions = {
      settings: { enablePush: false, maxHeaderListSize: 16 * 1024 },
      maxSessionMemory: 64,
    };
    this.server = opts.tls
      ? http2.createSecureServer({ ...common, ...opts.tls, ALPNProtocols: ['h2'] })
      : http2.createServer(common);
    this.server.on('session', (session) => {
      this.sessions.add(session);
      session.on('error', () => undefined);
      session.once('close', () => this.sessions.delete(session));
      if (this.closing) session.close();
    });
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
  }

  addUnary(path: string, handler: UnaryHandler): void {
    this.unary.set(path, handler);
  }

  addServerStreaming(path: string, handler: StreamingHandler): void {
    this.streaming.set(path, handler);
  }

  /** Listens on HOST:PORT or unix:/path; resolves with the port (0 for a socket). */
  listen(address: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(Object.assign(err, { listener: 'grpc' }));
      this.server.once('error', onError);
      const done = () => {
        this.server.off('error', onError);
        // After the bind, errors are per connection (a failed accept, a bad TLS hello):
        // the listener keeps serving, and an unhandled 'error' must not end the process.
        this.server.on('error', () => undefined);
        const a = this.server.address();
        resolve(typeof a === 'object' && a ? a.port : 0);
      };
      if (address.startsWith('unix:')) {
        const path = address.slice('unix:'.length);
        removeStaleSocket(path).then(() => this.server.listen(path, done), onError);
        return;
      }
      const hostPort = listenHostPort(address);
      if (!hostPort) {
        reject(Object.assign(new Error(`invalid address "${address}"`), { listener: 'grpc' }));
        return;
      }
      this.server.listen(hostPort, done);
    });
  }

  /** New certificates for new connections; live connections keep theirs. */
  setSecureContext(options: SecureContextOptions): void {
    (this.server as http2.Http2SecureServer).setSecureContext(options);
  }

  /**
   * Stops accepting, sends GOAWAY on every connection and lets the calls in flight
   * finish; whatever is still open after graceMs is cut.
   */
  close(graceMs: number): Promise<void> {
    this.closing = true;
    for (const call of [...this.openStreams]) call.end(GrpcStatus.UNAVAILABLE, 'server shutting down');
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        for (const s of this.sessions) s.destroy();
      }, graceMs);
      timer.unref();
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      for (const s of this.sessions) s.close();
    });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const path = headers[HTTP2_HEADER_PATH] as string;
    if (
      headers[HTTP2_HEADER_METHOD] !== 'POST' ||
      !isGrpcContentType(headers[HTTP2_HEADER_CONTENT_TYPE] as string | undefined)
    ) {
      // Not a gRPC call: plain HTTP refusal, as the gRPC spec asks of servers.
      stream.respond(
        { [HTTP2_HEADER_STATUS]: 415, 'grpc-status': String(GrpcStatus.UNKNOWN) },
        TRAILERS_ONLY_OPTIONS,
      );
      stream.close(NGHTTP2_NO_ERROR);
      return;
    }
    const unary = this.unary.get(path);
    const streaming = unary ? undefined : this.streaming.get(path);
    if (!unary && !streaming) {
      respondError(stream, GrpcStatus.UNIMPLEMENTED, `Method not found: ${path}`);
      stream.close(NGHTTP2_NO_ERROR);
      return;
    }
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity' && encoding !== 'gzip' && encoding !== 'deflate') {
      respondError(stream, GrpcStatus.UNIMPLEMENTED, `unsupported grpc-encoding "${String(encoding)}"`);
      stream.close(NGHTTP2_NO_ERROR);
      return;
    }
    const timeoutMs = parseGrpcTimeout(headers['grpc-timeout']);
    const deadline = timeoutMs === undefined ? undefined : systemClock.nowMs() + timeoutMs;
    const collector = new MessageCollector(this.opts.maxMessageBytes);
    const fail = (err: unknown) => {
      const e =
        err instanceof WireError ? err : new WireError(GrpcStatus.INTERNAL, 'could not process the request');
      respondError(stream, e.status, e.message);
      // Stop the rest of an oversized or malformed request from arriving.
      stream.close(NGHTTP2_NO_ERROR);
    };
    stream.on('data', (chunk: Buffer) => {
      if (stream.headersSent) return;
      try {
        collector.push(chunk);
      } catch (err) {
        fail(err);
      }
    });
    stream.once('end', () => {
      if (stream.headersSent || stream.destroyed) return;
      let body: Buffer;
      let compressed: boolean;
      try {
        ({ body, compressed } = collector.finish());
      } catch (err) {
        fail(err);
        return;
      }
      if (compressed) {
        if (encoding === undefined || encoding === 'identity') {
          fail(new WireError(GrpcStatus.INTERNAL, 'compressed message without a grpc-encoding'));
          return;
        }
        decompress(encoding as string, body, this.opts.maxMessageBytes).then(
          (plain) => this.dispatch(stream, plain, deadline, unary, streaming),
          fail,
        );
        return;
      }
      this.dispatch(stream, body, deadline, unary, streaming);
    });
  }

  private dispatch(
    stream: http2.ServerHttp2Stream,
    body: Buffer,
    deadline: number | undefined,
    unary: UnaryHandler | undefined,
    streaming: StreamingHandler | undefined,
  ): void {
    if (deadline !== undefined && systemClock.nowMs() >= deadline) {
      respondError(stream, GrpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded');
      return;
    }
    if (streaming) {
      streaming(body, this.streamCall(stream));
      return;
    }
    let result: Buffer | Promise<Buffer>;
    try {
      result = unary!(body, { deadline, stream });
    } catch (err) {
      respondError(
        stream,
        err instanceof WireError ? err.status : GrpcStatus.INTERNAL,
        err instanceof WireError ? err.message : 'handler failed',
      );
      return;
    }
    if (!(result instanceof Promise)) {
      respondMessage(stream, result);
      return;
    }
    // Answer by the deadline even if the handler has not: the client stops waiting then.
    const timer =
      deadline === undefined
        ? undefined
        : setTimeout(
            () => respondError(stream, GrpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded'),
            deadline - systemClock.nowMs(),
          );
    result.then(
      (bytes) => {
        if (timer) clearTimeout(timer);
        respondMessage(stream, bytes);
      },
      (err: unknown) => {
        if (timer) clearTimeout(timer);
        respondError(
          stream,
          err instanceof WireError ? err.status : GrpcStatus.INTERNAL,
          err instanceof WireError ? err.message : 'handler failed',
        );
      },
    );
  }

  private streamCall(stream: http2.ServerHttp2Stream): ServerStreamCall {
    const closeFns: (() => void)[] = [];
    let ended = false;
    const call: ServerStreamCall = {
      write: (message) => {
        if (ended || stream.destroyed) return;
        if (!stream.headersSent) stream.respond(RESPONSE_HEADERS, MESSAGE_OPTIONS);
        stream.write(frameMessage(message));
      },
      end: (code = GrpcStatus.OK, message = '') => {
        if (ended) return;
        ended = true;
        this.openStreams.delete(call);
        if (stream.destroyed || stream.closed) return;
        if (!stream.headersSent) {
          respondError(stream, code, message);
          return;
        }
        stream.once('wantTrailers', () =>
          stream.sendTrailers(
            code === GrpcStatus.OK
              ? OK_TRAILERS
              : { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) },
          ),
        );
        stream.end();
      },
      onClose: (fn) => closeFns.push(fn),
    };
    this.openStreams.add(call);
    stream.once('close', () => {
      ended = true;
      this.openStreams.delete(call);
      for (const fn of closeFns) fn();
    });
    return call;
  }
}

/**
 * A socket file left by an earlier run (nothing accepts on it) is removed. A live
 * socket, or any other kind of file, is left alone: listen then fails naming it.
 */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path) || !lstatSync(path).isSocket()) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) return;
  try {
    unlinkSync(path);
  } catch (err) {
    // Another worker of the same cluster may have removed it first.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
