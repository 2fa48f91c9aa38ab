import { describe, expect, it } from 'vitest';
import type { LoadedConfig } from '../../../src/config/types.js';
import { listenError } from '../../../src/cli/startup.js';

const loaded = {
  config: { server: { grpc_address: '0.0.0.0:9001', http_address: '0.0.0.0:9002' } },
} as unknown as LoadedConfig;

const errno = (code: string, extra: object = {}) =>
  Object.assign(new Error(`listen ${code}`), { code }, extra);

describe('listenError', () => {
  it('a tagged gRPC listener error names server.grpc_address', () => {
    expect(listenError(loaded, errno('EADDRINUSE', { listener: 'grpc' }))?.problems).toEqual([
      'server.grpc_address: cannot listen on 0.0.0.0:9001 (address already in use)',
    ]);
    expect(
      listenError(loaded, Object.assign(new Error('invalid address "x"'), { listener: 'grpc' }))?.problems,
    ).toEqual(['server.grpc_address: cannot listen on 0.0.0.0:9001 (invalid address "x")']);
  });

  it('an untagged bind errno is the HTTP listener’s', () => {
    expect(listenError(loaded, errno('EACCES'))?.problems).toEqual([
      'server.http_address: cannot listen on 0.0.0.0:9002 (permission denied; ports below 1024 need privileges)',
    ]);
  });

  it('anything else is not a listen error', () => {
    expect(listenError(loaded, new Error('No address added out of total 1 resolved'))).toBeUndefined();
    expect(listenError(loaded, errno('ECONNREFUSED'))).toBeUndefined();
    expect(listenError(loaded, undefined)).toBeUndefined();
  });
});
