// The hand-written CheckResponse encoder against proto-loader's serializer (protobufjs
// fromObject + encode with the service's loader options): the same bytes for every
// response the service builds and for a seeded corpus of generated responses.
import { describe, expect, it } from 'vitest';
import {
  DENY_OUTCOMES,
  deny,
  type Allow,
  type Decision,
  type DenyReason,
  type DenyResponse,
} from '../../../src/core/decision.js';
import { encodeCheckResponse } from '../../../src/envoy/check-encode.js';
import type {
  CheckResponse,
  CheckResponseSerializer,
  HeaderValueOption,
  ProtoStruct,
  ProtoValue,
} from '../../../src/envoy/messages.js';
import {
  authorizationClientConstructor,
  authorizationService,
  checkResponseSerializer,
} from '../../../src/envoy/protos.js';
import { toCheckResponse, WIRE, type WireHandle } from '../../../src/envoy/response.js';
import { allowDecision } from '../../helpers/decisions.js';
import { mulberry32 } from '../../helpers/prng.js';

const protoLoaderCheck = authorizationClientConstructor().service.Check!;
const reference = protoLoaderCheck.responseSerialize as CheckResponseSerializer;
const decode = protoLoaderCheck.responseDeserialize as (bytes: Buffer) => unknown;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const toWellFormed = (s: string): string => s.replace(LONE_SURROGATE, '\ufffd');

/** The same value with every string well-formed (lone surrogates as U+FFFD). */
function wellFormed<T>(v: T): T {
  if (typeof v === 'string') return toWellFormed(v) as T;
  if (Array.isArray(v)) return v.map(wellFormed) as T;
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[toWellFormed(k)] = wellFormed((v as Record<string, unknown>)[k]);
    return out as T;
  }
  return v;
}

// Ours always writes valid UTF-8 (a lone surrogate as U+FFFD, which is what Envoy's
// protobuf parser accepts); protobufjs writes a short string's lone surrogate as raw
// bytes. So the reference is protobufjs on the well-formed value: identical otherwise.
function expectSameBytes(response: CheckResponse, label = ''): void {
  const ours = encodeCheckResponse(response);
  const theirs = reference(wellFormed(response));
  if (!ours.equals(theirs))
    expect(`${label}\n${ours.toString('hex')}`).toBe(`${label}\n${theirs.toString('hex')}`);
}

const REALM = 'api';

const allow = allowDecision;

const CLAIMS = {
  sub: 'alice',
  n: 3,
  pi: 3.141592653589793,
  negative: -42,
  negativeFraction: -0.5,
  minusZero: -0,
  large: 2 ** 53 + 2,
  unsafe: 1.2345678901234568e21,
  huge: 1.7976931348623157e308,
  tiny: 5e-324,
  exp: 1_900_000_000,
  ok: true,
  no: false,
  none: null,
  nan: Number.NaN,
  inf: Number.POSITIVE_INFINITY,
  undef: undefined,
  empty: '',
  roles: ['a', 'b', '', 7, false, null, ['nested', { deep: [1, 2, { x: 'y' }] }]],
  emptyList: [],
  emptyObject: {},
  org: { id: 'x', units: { a: 1, b: [true] } },
  unicode: 'Grüße, Zürich — 東京',
  emoji: '👩‍💻🚀 and text',
  longUnicode: `${'ünïcødé '.repeat(40)}😀`,
  long: 'x'.repeat(20_000),
  loneHigh: 'a\ud800b',
  loneLow: '\udc00',
  loneLong: `${'y'.repeat(50)}\ud83d`,
  control: '\u0000\u0001\n\t',
  '123': 'numeric-looking key first',
  '': 'empty key',
  ключ: 'unicode key',
};

const DENY_RESPONSES: DenyResponse[] = [
  {
    status: 418,
    headers: [{ key: 'x-why', value: 'teapot' }],
    body: '{"error":"{error}","id":"{request_id}"}',
  },
  { headers: [{ key: 'content-type', value: 'application/problem+json' }], body: '{error_description}' },
  { headers: [{ key: 'www-authenticate', value: 'Custom realm="x"' }] },
  { status: 302, headers: [{ key: 'location', value: 'https://login.example/?next=%2F' }], body: '' },
];

/** Decisions covering what response.ts builds (the cases of response.test.ts and more). */
function decisions(): [string, Decision][] {
  const out: [string, Decision][] = [];
  for (const reason of Object.keys(DENY_OUTCOMES) as DenyReason[]) {
    out.push([`deny ${reason}`, deny(reason)]);
    out.push([
      `deny ${reason} described`,
      deny(reason, 'the token has "expired" \\ ✗', { requestId: 'r-1' }),
    ]);
    for (const [i, response] of DENY_RESPONSES.entries())
      out.push([`deny ${reason} custom ${i}`, deny(reason, 'why', { response, requestId: 'req-42' })]);
  }
  out.push(['insufficient scope', deny('insufficient_scope', undefined, { scope: 'read write' })]);
  out.push(['dpop', deny('dpop_invalid', 'bad proof', { scheme: 'DPoP' })]);
  out.push([
    'rate limited',
    deny('rate_limited', undefined, {
      headers: [
        { key: 'retry-after', value: '7' },
        { key: 'ratelimit', value: '"default";r=0;t=7' },
      ],
    }),
  ]);
  out.push([
    'deny dry run',
    deny('rule_deny', undefined, { dryRun: { decision: 'deny', reason: 'rule_deny' } }),
  ]);
  out.push(['deny with log detail', deny('internal_error', 'boom', { logDetail: 'secret' })]);
  out.push(['realm quoting', deny('claim_invalid', 'claim "x\\y"')]);

  out.push(['allow bare', allow()]);
  out.push([
    'allow headers and removals',
    allow({
      headers: [
        { key: 'x-user', value: 'alice' },
        { key: 'authorization', value: 'Bearer minted' },
        { key: 'x-empty', value: '' },
        { key: 'x-jwt-assertion', value: 'e'.repeat(400) },
      ],
      headersToRemove: ['x-forwarded-user', 'cookie', ''],
      queryParametersToRemove: ['access_token', 'ünï'],
    }),
  ]);
  out.push([
    'allow response headers',
    allow({ responseHeaders: [{ key: 'ratelimit-policy', value: '"default";q=100;w=60' }] }),
  ]);
  out.push(['anonymous', allow({ reason: 'anonymous', anonymous: true })]);
  out.push([
    'anonymous dry run',
    allow({ anonymous: true, dryRun: { decision: 'deny', reason: 'token_missing' } }),
  ]);
  out.push(['allow dry run', allow({ dryRun: { decision: 'allow', reason: 'rule_allow' } })]);
  out.push([
    'metadata',
    allow({
      headers: [{ key: 'x-sub', value: 'alice' }],
      metadata: { issuer: 'https://idp', sub: 'alice', scope: 'read', claims: CLAIMS },
    }),
  ]);
  out.push([
    'claims with a "__proto__" key',
    allow({ metadata: { issuer: 'i', scope: '', claims: JSON.parse('{"__proto__":{"x":1},"a":[2]}') } }),
  ]);
  out.push(['metadata without sub', allow({ metadata: { issuer: 'i', scope: '', claims: {} } })]);
  out.push([
    'metadata with extra and dry run',
    allow({
      metadata: {
        issuer: 'https://idp',
        scope: 'a b',
        claims: { aud: ['x', 'y'] },
        extra: { tenant: 't1', weight: 0.25, flags: [true, null], issuer: 'shadowed' },
      },
      dryRun: { decision: 'deny', reason: 'expression_false' },
    }),
  ]);
  let deep: unknown = 'leaf';
  for (let i = 0; i < 100; i++) deep = i % 2 ? [deep] : { d: deep };
  out.push(['deep claims', allow({ metadata: { issuer: 'i', scope: '', claims: { deep } } })]);
  return out;
}

describe('encodeCheckResponse: the responses the service builds', () => {
  for (const [label, decision] of decisions()) {
    it(`${label}: the bytes of proto-loader's serializer`, () => {
      expectSameBytes(toCheckResponse(decision, REALM), label);
    });
  }

  it('reusable allows: the kept bytes are the same with either serializer', () => {
    // Fresh decisions per serializer: their bytes are kept per decision object.
    const pair = (): Allow[] => {
      const base = allow({
        reusable: true,
        headers: [{ key: 'x-user', value: 'alice' }],
        headersToRemove: ['cookie'],
        metadata: { issuer: 'https://idp', sub: 'alice', scope: 'read', claims: CLAIMS },
      });
      const extended = allow({
        ...base,
        reusable: false,
        base,
        responseHeaders: [{ key: 'ratelimit', value: 'r=1' }],
      });
      return [base, extended];
    };
    const ours = pair().map((d) => (toCheckResponse(d, REALM, encodeCheckResponse) as WireHandle)[WIRE]);
    const wellFormedReference: CheckResponseSerializer = (r) => reference(wellFormed(r));
    const theirs = pair().map((d) => (toCheckResponse(d, REALM, wellFormedReference) as WireHandle)[WIRE]);
    expect(ours[0]!.equals(theirs[0]!)).toBe(true);
    expect(ours[1]!.equals(theirs[1]!)).toBe(true);
    // The split form (ok_response last) decodes to the response built in one piece.
    const [, extended] = pair();
    expect(decode(ours[1]!)).toEqual(decode(wellFormedReference(toCheckResponse(extended!, REALM))));
  });

  it('is the serializer protos.ts hands out, and the service definition uses it', () => {
    expect(checkResponseSerializer()).toBe(encodeCheckResponse);
    const serialize = authorizationService().Check!.responseSerialize as (v: unknown) => Buffer;
    const response = toCheckResponse(deny('token_missing'), REALM);
    expect(serialize(response).equals(reference(response))).toBe(true);
    const kept = Buffer.from([1, 2, 3]);
    expect(serialize({ [WIRE]: kept })).toBe(kept);
  });
});

// ---------------------------------------------------------------- generated corpus

class Gen {
  constructor(readonly rand: () => number) {}

  int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  chance(p: number): boolean {
    return this.rand() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** Strings around the 40-unit short-string boundary and the 1/2-byte length-varint boundaries. */
  string(): string {
    const r = this.rand();
    const length =
      r < 0.15
        ? 0
        : r < 0.7
          ? this.int(45)
          : r < 0.995
            ? 35 + this.int(200)
            : this.pick([127, 128, 16383, 16384, 70_000]);
    const kinds = 1 + this.int(8); // how many of the character kinds below this string draws from
    let s = '';
    // Long strings repeat a generated piece (cut anywhere, a surrogate pair may be split).
    while (s.length < Math.min(length, 300)) s += this.char(kinds);
    return length > 300 ? s.repeat(Math.ceil(length / s.length)).slice(0, length) : s;
  }

  private char(kinds: number): string {
    switch (this.int(kinds)) {
      case 0:
      case 1:
      case 2:
        return String.fromCharCode(0x20 + this.int(0x5f));
      case 3:
        return String.fromCharCode(this.pick([0, 1, 9, 10, 0x7f]));
      case 4:
        return String.fromCharCode(0x80 + this.int(0x780)); // two UTF-8 bytes
      case 5:
        return String.fromCharCode(0x800 + this.int(0xd000)); // three bytes, below the surrogates
      case 6:
        return String.fromCodePoint(0x10000 + this.int(0x10000)); // a surrogate pair, four bytes
      default:
        // A lone surrogate (high or low).
        return String.fromCharCode(this.pick([0xd800, 0xdbff, 0xdc00, 0xdfff, 0xd83d]));
    }
  }

  int32(): number {
    return this.pick([
      0,
      1,
      127,
      128,
      16384,
      2 ** 31 - 1,
      -1,
      -128,
      -(2 ** 31),
      this.int(600),
      -this.int(1e6),
      this.int(2 ** 31),
    ]);
  }

  number(): number {
    return this.pick([
      0,
      -0,
      1,
      -1,
      0.1,
      -2.5e-10,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      Number.EPSILON,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      this.rand() * 1e6 - 5e5,
      this.int(2 ** 32),
      (this.rand() - 0.5) * 1e300,
    ]);
  }

  key(): string {
    return this.chance(0.2)
      ? this.pick(['', '0', '1', '10', '01', '-1', '4294967295', 'ключ', '😀'])
      : this.string();
  }

  value(depth: number): ProtoValue {
    const kind = this.int(depth > 3 ? 4 : 6);
    switch (kind) {
      case 0:
        return { stringValue: this.string() };
      case 1:
        return { numberValue: this.number() };
      case 2:
        return { boolValue: this.chance(0.5) };
      case 3:
        return { nullValue: 0 };
      case 4:
        return { structValue: this.struct(depth + 1) };
      default: {
        const values: ProtoValue[] = [];
        for (let i = this.int(5); i > 0; i--) values.push(this.value(depth + 1));
        return { listValue: { values } };
      }
    }
  }

  struct(depth: number): ProtoStruct {
    const fields: Record<string, ProtoValue> = {};
    for (let i = this.int(depth === 0 ? 8 : 5); i > 0; i--) {
      const key = this.key();
      if (key !== '__proto__') fields[key] = this.value(depth);
    }
    return { fields };
  }

  strings(): string[] {
    const out: string[] = [];
    for (let i = this.int(5); i > 0; i--) out.push(this.string());
    return out;
  }

  options(): HeaderValueOption[] {
    const out: HeaderValueOption[] = [];
    for (let i = this.int(5); i > 0; i--)
      out.push({ header: { key: this.string(), value: this.string() }, append: { value: this.chance(0.3) } });
    return out;
  }

  response(): CheckResponse {
    const r: CheckResponse = {};
    if (this.chance(0.9))
      r.status = this.chance(0.5) ? { code: this.int32() } : { code: this.int32(), message: this.string() };
    const which = this.int(10);
    if (which < 5) {
      const ok: NonNullable<CheckResponse['ok_response']> = {};
      if (this.chance(0.8)) ok.headers = this.options();
      if (this.chance(0.7)) ok.headers_to_remove = this.strings();
      if (this.chance(0.5)) ok.response_headers_to_add = this.options();
      if (this.chance(0.5)) ok.query_parameters_to_remove = this.strings();
      r.ok_response = ok;
    } else if (which < 9) {
      r.denied_response = { status: { code: this.int32() }, headers: this.options(), body: this.string() };
    } else if (this.chance(0.5)) {
      // Both members of the oneof set: protobufjs writes both, in field order.
      r.ok_response = { headers: this.options() };
      r.denied_response = { status: { code: 403 }, headers: [], body: '' };
    }
    if (this.chance(0.7)) r.dynamic_metadata = this.struct(0);
    return r;
  }
}

describe('encodeCheckResponse: a generated corpus', () => {
  it("2,500 generated responses: the bytes of proto-loader's serializer", () => {
    const gen = new Gen(mulberry32(0x5eed));
    const seen = new Set<string>();
    // What the corpus covers: every field and Value kind, lone surrogates in short strings.
    const visit = (x: unknown, key: string): void => {
      if (
        typeof x === 'string' &&
        x.length < 40 &&
        /[\ud800-\udfff]/.test(x.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))
      )
        seen.add('lone surrogate');
      if (typeof x === 'number' && x < 0) seen.add(`negative ${key}`);
      if (x === null || typeof x !== 'object') return;
      for (const [k, v] of Object.entries(x)) {
        seen.add(k);
        visit(v, k);
      }
    };
    for (let i = 0; i < 2500; i++) {
      const r = gen.response();
      visit(r, '');
      expectSameBytes(r, `case ${i}`);
    }
    for (const k of [
      'status',
      'message',
      'ok_response',
      'denied_response',
      'dynamic_metadata',
      'headers',
      'headers_to_remove',
      'response_headers_to_add',
      'query_parameters_to_remove',
      'body',
      'nullValue',
      'numberValue',
      'stringValue',
      'boolValue',
      'structValue',
      'listValue',
      'lone surrogate',
      'negative code',
      'negative numberValue',
    ])
      expect(seen, k).toContain(k);
  });

  it('zero and empty values that are set are written; unset and empty repeated fields are not', () => {
    const cases: CheckResponse[] = [
      {},
      { status: { code: 0 } },
      { status: { code: 0, message: '' } },
      { ok_response: {} },
      {
        ok_response: {
          headers: [],
          headers_to_remove: [],
          response_headers_to_add: [],
          query_parameters_to_remove: [],
        },
      },
      { ok_response: { headers_to_remove: [''] } },
      { denied_response: { status: { code: 0 }, headers: [], body: '' } },
      { dynamic_metadata: { fields: {} } },
      {
        dynamic_metadata: {
          fields: { '': { stringValue: '' }, z: { numberValue: 0 }, f: { boolValue: false } },
        },
      },
      {
        dynamic_metadata: {
          fields: { l: { listValue: { values: [] } }, s: { structValue: { fields: {} } } },
        },
      },
      { ok_response: { headers: [{ header: { key: '', value: '' }, append: { value: false } }] } },
    ];
    for (const [i, r] of cases.entries()) expectSameBytes(r, `case ${i}`);
    expect(encodeCheckResponse({}).length).toBe(0);
    expect(encodeCheckResponse({ status: { code: 0 } }).toString('hex')).toBe('0a020800');
  });
});

describe('encodeCheckResponse: always valid UTF-8', () => {
  it('writes a lone surrogate in a short or a long string as U+FFFD', () => {
    for (const value of ['a\ud800b', `${'x'.repeat(50)}\udc00`]) {
      const bytes = encodeCheckResponse({
        status: { code: 0 },
        ok_response: { headers: [{ header: { key: 'x-claim', value } }] },
      });
      expect(new TextDecoder('utf-8', { fatal: true }).decode(bytes)).toContain('\ufffd');
    }
  });
});
