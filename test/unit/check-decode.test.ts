// The field-selective CheckRequest decoder against proto-loader's full decoder on a
// generated corpus: unknown fields at every level (all wire types, groups), repeated
// sub-messages (the last one wins, as in protobufjs), repeated map keys, header_map with raw values, empty
// messages, non-ASCII text; and truncated inputs.
import { describe, expect, it } from 'vitest';
import { decodeCheckRequest, DecodeError } from '../../src/envoy/check-decode.js';
import { authorizationService } from '../../src/envoy/protos.js';
import { toAuthRequest } from '../../src/envoy/auth-request.js';

const check = authorizationService().Check!;
const fullDecode = (b: Buffer): any => check.requestDeserialize(b);
const fullEncode = (o: unknown): Buffer => check.requestSerialize(o);

// Deterministic PRNG (mulberry32) so a failure reproduces.
function rng(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// --- a minimal protobuf writer, independent of the decoders under test ---
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
const tag = (field: number, wt: number) => varint(field * 8 + wt);
const lenField = (field: number, bytes: Uint8Array | number[]) => [
  ...tag(field, 2),
  ...varint(bytes.length),
  ...bytes,
];
const strField = (field: number, s: string) => lenField(field, [...Buffer.from(s, 'utf8')]);

describe('decodeCheckRequest', () => {
  const r = rng(20261128);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const ALPHABET = [
    'a',
    'B',
    '-',
    ':',
    '/',
    '?',
    '=',
    ' ',
    'é',
    '€',
    '😀',
    '\u0000',
    '__proto__',
    'x-request-id',
  ];
  const text = (max = 12): string => {
    let s = '';
    const n = Math.floor(r() * max);
    for (let i = 0; i < n; i++) s += pick(ALPHABET);
    return s;
  };
  const HEADER_KEYS = [
    ':path',
    ':method',
    'authorization',
    'x-request-id',
    'cookie',
    '__proto__',
    'constructor',
    'X-Up',
    // Names the decoder reads as constants, and near misses of them.
    'user-agent',
    'x-forwarded-for',
    ':authority',
    ':authorit',
    'x-request-idx',
    'X-Request-Id',
    'acceps',
  ];
  // Values the decoder reads as constants, and near misses of them.
  const KNOWN_VALUES = ['GET', 'GE', 'GETS', 'get', 'https', 'httpS', 'HTTP/2', 'HTTP/1.0', '*/*', '1', ''];
  const value = (): string => (r() < 0.4 ? pick(KNOWN_VALUES) : text());

  function unknownField(depth = 0): number[] {
    const field = 1000 + Math.floor(r() * 5000);
    switch (Math.floor(r() * (depth < 2 ? 5 : 4))) {
      case 0:
        return [...tag(field, 0), ...varint(Math.floor(r() * 2 ** 40))];
      case 1:
        return [...tag(field, 1), 1, 2, 3, 4, 5, 6, 7, 8];
      case 2:
        return strField(field, text(20));
      case 3:
        return [...tag(field, 5), 9, 9, 9, 9];
      default:
        return [...tag(field, 3), ...unknownField(depth + 1), ...unknownField(depth + 1), ...tag(field, 4)];
    }
  }
  const maybeUnknown = (): number[] => (r() < 0.3 ? unknownField() : []);
  const mapEntry = (field: number, k: string, v: string) =>
    lenField(field, [
      ...maybeUnknown(),
      ...(r() < 0.9 ? strField(1, k) : []),
      ...(r() < 0.9 ? strField(2, v) : []),
    ]);

  function httpRequest(): number[] {
    const out: number[] = [];
    const n = Math.floor(r() * 12);
    for (let i = 0; i < n; i++) {
      out.push(...maybeUnknown());
      switch (Math.floor(r() * 11)) {
        case 0:
          out.push(...strField(pick([1, 2, 4, 5, 6, 7, 8, 10, 11]), value()));
          break;
        case 1:
        case 2:
        case 3:
          out.push(...mapEntry(3, pick(HEADER_KEYS), value()));
          break;
        case 4:
          out.push(...tag(9, 0), ...varint(Math.floor(r() * 1e6)));
          break;
        case 5:
          out.push(...lenField(12, [...Buffer.from(text(), 'utf8')]));
          break;
        case 6: {
          const hm: number[] = [];
          for (let j = Math.floor(r() * 4); j > 0; j--) {
            const hv = [
              ...maybeUnknown(),
              ...(r() < 0.9 ? strField(1, pick(HEADER_KEYS)) : []),
              ...(r() < 0.5 ? strField(2, text()) : []),
              ...(r() < 0.5 ? lenField(3, [0xff, 0x00, ...Buffer.from(text(), 'utf8')]) : []),
            ];
            hm.push(...lenField(1, hv), ...maybeUnknown());
          }
          out.push(...lenField(13, hm));
          break;
        }
        default:
          out.push(...strField(pick([2, 4, 5]), text()));
      }
    }
    return out;
  }

  /** envoy.config.core.v3.Address: a socket address (protocol, address, port) or a pipe. */
  function address(): number[] {
    if (r() < 0.2) return [...maybeUnknown(), ...lenField(2, strField(1, `/tmp/${text()}`))];
    const socket = [
      ...maybeUnknown(),
      ...(r() < 0.3 ? [...tag(1, 0), ...varint(Math.floor(r() * 2))] : []),
      ...(r() < 0.9 ? strField(2, pick(['10.1.2.3', '::1', '::ffff:10.0.0.1', text()])) : []),
      ...(r() < 0.8 ? [...tag(3, 0), ...varint(Math.floor(r() * 70000))] : []),
      ...(r() < 0.2 ? strField(5, text()) : []),
    ];
    return [...maybeUnknown(), ...lenField(1, socket)];
  }

  function peer(): number[] {
    return [
      ...maybeUnknown(),
      ...(r() < 0.5 ? lenField(1, address()) : []),
      ...(r() < 0.5 ? strField(4, `spiffe://${text()}`) : []),
      ...(r() < 0.5 ? strField(5, `-----BEGIN CERTIFICATE-----${text()}`) : []),
      ...(r() < 0.3 ? mapEntry(3, text(), text()) : []),
      ...(r() < 0.3 ? strField(2, text()) : []),
    ];
  }

  function attributes(): number[] {
    const out: number[] = [];
    const n = Math.floor(r() * 6);
    for (let i = 0; i < n; i++) {
      out.push(...maybeUnknown());
      switch (Math.floor(r() * 5)) {
        case 0:
          out.push(...lenField(1, peer()));
          break;
        case 1:
          out.push(...lenField(2, peer()));
          break;
        case 2:
          out.push(...mapEntry(10, pick(['route', 'tenant', '__proto__', text()]), text()));
          break;
        default:
          out.push(
            ...lenField(4, [
              ...maybeUnknown(),
              ...(r() < 0.3 ? lenField(1, [...tag(1, 0), ...varint(1_700_000_000)]) : []),
              ...lenField(2, httpRequest()),
            ]),
          );
      }
    }
    return out;
  }

  /** Fields both decoders should agree on, normalised (absent string → '', absent map → {}). */
  function project(m: any) {
    const a = m?.attributes;
    const http = a?.request?.http;
    const entries = (o: any) => (o ? Object.entries(o).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)) : []);
    return {
      hasAttributes: a !== undefined && a !== null,
      hasHttp: http !== undefined && http !== null,
      source: { principal: a?.source?.principal ?? '', certificate: a?.source?.certificate ?? '' },
      peers: [a?.source, a?.destination].map((p: any) => ({
        present: p !== undefined && p !== null,
        principal: p?.principal ?? '',
        address: p?.address?.socket_address?.address ?? '',
        port: p?.address?.socket_address?.port_value ?? 0,
      })),
      context: entries(a?.context_extensions),
      http: http && {
        method: http.method ?? '',
        path: http.path ?? '',
        host: http.host ?? '',
        scheme: http.scheme ?? '',
        headers: entries(http.headers),
        header_map: http.header_map
          ? (http.header_map.headers ?? []).map((h: any) => ({
              key: h.key ?? '',
              value: h.value ?? '',
              raw: h.raw_value ? Buffer.from(h.raw_value).toString('hex') : '',
            }))
          : undefined,
      },
    };
  }

  it('agrees with proto-loader field by field on 3,000 generated requests', () => {
    let withHttp = 0;
    for (let i = 0; i < 3000; i++) {
      const parts: number[][] = [];
      for (let p = Math.floor(r() * 3); p >= 0; p--)
        parts.push(r() < 0.2 ? unknownField() : lenField(1, attributes()));
      let bytes = Buffer.from(parts.flat());
      // Sometimes prepend a full proto-loader encoding of fields we skip (merged on decode).
      if (r() < 0.3)
        bytes = Buffer.concat([
          fullEncode({
            attributes: {
              destination: { address: { socket_address: { address: '10.0.0.1', port_value: 443 } } },
              request: { http: { size: '123', body: 'x', headers: { a: 'b' } } },
              metadata_context: { filter_metadata: { f: { fields: { k: { stringValue: 'v' } } } } },
            },
          }),
          bytes,
        ]);
      const ours = decodeCheckRequest(bytes);
      const theirs = fullDecode(bytes);
      expect(project(ours), `case ${i}: ${bytes.toString('hex')}`).toEqual(project(theirs));
      const a = toAuthRequest(ours);
      const b = toAuthRequest(theirs);
      expect(a && { ...a, headers: { ...a.headers } }).toEqual(b && { ...b, headers: { ...b.headers } });
      if (ours.attributes?.request?.http) withHttp++;
    }
    // The corpus really exercises the HTTP attributes.
    expect(withHttp).toBeGreaterThan(1000);
  });

  it('decodes the empty message and Envoy-shaped requests as proto-loader does', () => {
    expect(decodeCheckRequest(Buffer.alloc(0))).toEqual({});
    const envoyLike = {
      attributes: {
        source: { principal: 'spiffe://cluster.local/ns/a/sa/b', certificate: 'PEM' },
        request: {
          http: {
            id: '42',
            method: 'GET',
            path: '/api?x=1',
            host: 'api.example.com',
            scheme: 'https',
            protocol: 'HTTP/2',
            query: 'x=1',
            headers: { ':path': '/api?x=1', authorization: 'Bearer t', 'x-request-id': 'r-1' },
          },
        },
        context_extensions: { route: 'orders' },
      },
    };
    const bytes = fullEncode(envoyLike);
    expect(project(decodeCheckRequest(bytes))).toEqual(project(fullDecode(bytes)));
    expect(project(decodeCheckRequest(bytes)).http?.headers).toHaveLength(3);
  });

  it('keeps "__proto__" header keys as plain keys', () => {
    const entry = lenField(3, [...strField(1, '__proto__'), ...strField(2, 'x')]);
    const bytes = Buffer.from(lenField(1, lenField(4, lenField(2, entry))));
    const headers = decodeCheckRequest(bytes).attributes!.request!.http!.headers!;
    expect(Object.getPrototypeOf(headers)).toBeNull();
    expect(headers['__proto__']).toBe('x');
  });

  it('throws DecodeError (only) on every truncation of valid requests', () => {
    for (let i = 0; i < 200; i++) {
      const bytes = Buffer.from(lenField(1, attributes()));
      for (let cut = 1; cut < bytes.length; cut += Math.max(1, Math.floor(bytes.length / 17))) {
        const part = bytes.subarray(0, cut);
        let ours: unknown;
        try {
          ours = decodeCheckRequest(part);
        } catch (err) {
          expect(err).toBeInstanceOf(DecodeError);
          continue;
        }
        // When ours accepts a prefix, so does the full decoder, with the same fields.
        expect(project(ours)).toEqual(project(fullDecode(part)));
      }
    }
    expect(() => decodeCheckRequest(Buffer.from([0x0a, 0x05, 0x01]))).toThrow(DecodeError);
    expect(() => decodeCheckRequest(Buffer.from([0x0f]))).toThrow(DecodeError);
  });
});
