import { describe, expect, it } from 'vitest';
import { GrpcStatus, WireError } from '../../../src/envoy/grpc-wire.js';
import { decodeHealthRequest } from '../../../src/envoy/transport.js';

// HealthCheckRequest { string service = 1 }, read with the CheckRequest decoder's wire reader.

const name = (s: string): number[] => [0x0a, Buffer.byteLength(s), ...Buffer.from(s)];

function malformed(bytes: number[]): WireError {
  try {
    decodeHealthRequest(Buffer.from(bytes));
  } catch (err) {
    return err as WireError;
  }
  throw new Error('decoded');
}

describe('decodeHealthRequest', () => {
  it('reads the service name; an empty message is the server as a whole', () => {
    expect(decodeHealthRequest(Buffer.alloc(0))).toBe('');
    expect(decodeHealthRequest(Buffer.from(name('envoy.service.auth.v3.Authorization')))).toBe(
      'envoy.service.auth.v3.Authorization',
    );
    // The last occurrence wins, as in protobufjs.
    expect(decodeHealthRequest(Buffer.from([...name('a'), ...name('b')]))).toBe('b');
  });

  it('skips unknown fields of every wire type but groups', () => {
    const unknown = [
      0x10,
      0x96,
      0x01, // field 2 varint 150
      0x19,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8, // field 3 fixed64
      0x25,
      1,
      2,
      3,
      4, // field 4 fixed32
      0x2a,
      0x02,
      0x68,
      0x69, // field 5 bytes "hi"
      0x08,
      0x01, // field 1 with the wrong wire type (varint): skipped
    ];
    expect(decodeHealthRequest(Buffer.from([...unknown, ...name('svc')]))).toBe('svc');
  });

  it('skips a ten-byte varint (a negative int64) in an unknown field', () => {
    // The health decoder's own varint reader stopped at five bytes and refused this
    // valid message; the shared reader reads varints of up to ten bytes.
    const minusOne = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    expect(decodeHealthRequest(Buffer.from([0x10, ...minusOne, ...name('svc')]))).toBe('svc');
  });

  it('answers INTERNAL "malformed health request" to a malformed message', () => {
    for (const bytes of [
      [0x0a], // length missing
      [0x0a, 0x05, 0x61], // length beyond the end
      [0x0a, 0x80], // truncated varint
      [0x19, 1, 2, 3], // truncated fixed64
      [0x25, 1, 2], // truncated fixed32
      [0x13, 0x14], // a group (start and end): refused, as before
      [0x14], // a lone end-group
      [0x0e], // wire type 6 does not exist
      [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // an eleven-byte varint
    ]) {
      const err = malformed(bytes);
      expect(err, Buffer.from(bytes).toString('hex')).toBeInstanceOf(WireError);
      expect(err.status).toBe(GrpcStatus.INTERNAL);
      expect(err.code).toBe('ERR_GRPC_STATUS');
      expect(err.message).toBe('malformed health request');
    }
  });
});
