import { describe, expect, it } from 'vitest';
import { frameMessage, framedMessage, keepFramed } from '../../../src/envoy/grpc-wire.js';

describe('gRPC message framing', () => {
  const message = Buffer.from([0x0a, 0x00, 0x1a, 0x03, 0x01, 0x02, 0x03]);
  const expected = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);

  it('frames a message: compression flag 0, big-endian length, the bytes', () => {
    expect(frameMessage(message)).toEqual(expected);
    const big = Buffer.alloc(70_000, 7);
    const framed = frameMessage(big);
    expect(framed.readUInt32BE(1)).toBe(70_000);
    expect(framed.subarray(5)).toEqual(big);
  });

  it('a kept message is framed once: every answer sends the same framed buffer', () => {
    const kept = keepFramed(message);
    expect(kept).toEqual(message);
    const first = framedMessage(kept);
    expect(first).toEqual(expected);
    expect(framedMessage(kept)).toBe(first);
    // Its own allocation, not a slice of the shared pool, and not the caller's buffer.
    expect(first.buffer.byteLength).toBe(expected.length);
    message[6] = 9;
    expect(framedMessage(kept)[11]).toBe(3);
    message[6] = 3;
  });

  it('any other message, even with equal bytes, is framed anew', () => {
    keepFramed(message);
    const a = framedMessage(message);
    const b = framedMessage(Buffer.from(message));
    expect(a).toEqual(expected);
    expect(b).toEqual(expected);
    expect(a).not.toBe(b);
  });
});
