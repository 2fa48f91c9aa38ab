// Token forging for tests: sign anything with node:crypto (any header, any payload
// bytes, wrong keys, HMAC with arbitrary secrets such as a public key's PEM bytes),
// build raw compact strings from segments, and base64url helpers. jose's SignJWT is
// re-exported through `joseSign` for the ordinary cases.
import { constants, createHmac, randomUUID, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';

/** base64url (no padding) of a string (UTF-8), bytes, or any JSON value. */
export function b64url(input: string | Buffer | Uint8Array | object | number | boolean | null): string {
  if (typeof input === 'string') return Buffer.from(input, 'utf8').toString('base64url');
  if (Buffer.isBuffer(input) || input instanceof Uint8Array) return Buffer.from(input).toString('base64url');
  return Buffer.from(JSON.stringify(input), 'utf8').toString('base64url');
}

/** Decodes base64url (lenient: Node ignores padding and invalid characters). */
export function b64urlDecode(seg: string): Buffer {
  return Buffer.from(seg, 'base64url');
}

/** The decoded JSON of a token's header or payload segment. */
export function decodeSegmentJson(token: string, index: 0 | 1): any {
  return JSON.parse(b64urlDecode(token.split('.')[index]!).toString('utf8'));
}

export type SigningKey = KeyObject | Buffer | string;

const HASH: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

/**
 * Signs `signingInput` as the JWS `alg` says, with node:crypto. `none` (any case) gives
 * an empty signature. HS* takes any secret (a KeyObject, raw bytes or a string, e.g.
 * the PEM text of a public key for key-confusion tests).
 */
export function signRaw(alg: string, key: SigningKey | undefined, signingInput: string): Buffer {
  if (alg.toLowerCase() === 'none') return Buffer.alloc(0);
  if (key === undefined) throw new Error(`signRaw: ${alg} needs a key`);
  const hash = HASH[alg.slice(2)];
  const data = Buffer.from(signingInput, 'ascii');
  switch (alg.slice(0, 2)) {
    case 'HS':
      return createHmac(hash!, key as KeyObject | Buffer | string)
        .update(data)
        .digest();
    case 'RS':
      return cryptoSign(hash!, data, key as KeyObject);
    case 'PS':
      return cryptoSign(hash!, data, {
        key: key as KeyObject,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      });
    case 'ES':
      return cryptoSign(hash!, data, { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
    case 'Ed':
      return cryptoSign(null, data, key as KeyObject);
    default:
      throw new Error(`signRaw: unsupported alg ${alg}`);
  }
}

export interface ForgeOptions {
  /** Header object, or a raw header segment / raw header bytes. */
  readonly header: Record<string, unknown> | { readonly raw: string | Buffer };
  /** Payload object (JSON), any JSON value, or raw payload bytes via `{ raw }`. */
  readonly payload: unknown;
  /** Key to sign with (omit for `none`). */
  readonly key?: SigningKey;
  /** Algorithm used for signing; default the header's alg (so a header can lie about it). */
  readonly signAlg?: string;
  /** Replace the computed signature with this segment (e.g. '' or 'AAAA'). */
  readonly signature?: string;
}

function segment(part: unknown): string {
  if (typeof part === 'object' && part !== null && 'raw' in part) {
    const raw = (part as { raw: string | Buffer }).raw;
    return b64url(raw);
  }
  return b64url(part as object);
}

/** Builds and signs a compact JWS from arbitrary parts. */
export function forgeToken(opts: ForgeOptions): string {
  const h = segment(opts.header);
  const p = segment(opts.payload);
  const signingInput = `${h}.${p}`;
  if (opts.signature !== undefined) return `${signingInput}.${opts.signature}`;
  const headerAlg =
    typeof opts.header === 'object' && opts.header !== null && !('raw' in opts.header)
      ? (opts.header as Record<string, unknown>).alg
      : undefined;
  const alg = opts.signAlg ?? (typeof headerAlg === 'string' ? headerAlg : undefined);
  if (alg === undefined) throw new Error('forgeToken: no alg to sign with (set signAlg)');
  return `${signingInput}.${b64url(signRaw(alg, opts.key, signingInput))}`;
}

/** Joins raw segments with dots (no encoding). */
export function rawToken(...segments: string[]): string {
  return segments.join('.');
}

/** Standard claims for `iss`/`aud`, valid for 5 minutes from now; override or drop (undefined) any. */
export function standardClaims(
  iss: string,
  aud: unknown,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    iss,
    sub: 'user-1',
    aud,
    iat: now,
    exp: now + 300,
    jti: `${now}-${Math.random().toString(36).slice(2)}`,
    ...overrides,
  };
  for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k];
  return claims;
}

/** Signs with jose's SignJWT (the library path, for ordinary well-formed tokens). */
export async function joseSign(
  payload: JWTPayload,
  key: KeyObject,
  header: { alg: string; kid?: string; [k: string]: unknown },
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Changes the last character of the signature segment so it decodes to the same bytes
 * (flips unused trailing bits). Throws if the segment has no unused bits.
 */
export function nonCanonicalSignature(token: string): string {
  const dot = token.lastIndexOf('.');
  const sig = token.slice(dot + 1);
  const rem = sig.length % 4;
  const unusedBits = rem === 2 ? 4 : rem === 3 ? 2 : 0;
  if (unusedBits === 0) throw new Error('signature segment has no unused bits');
  const last = ALPHABET.indexOf(sig[sig.length - 1]!);
  const flipped = last ^ 1; // lowest bit is always an unused one here
  const altered = sig.slice(0, -1) + ALPHABET[flipped]!;
  if (!b64urlDecode(altered).equals(b64urlDecode(sig))) throw new Error('not the same bytes');
  return `${token.slice(0, dot)}.${altered}`;
}

/** A key to mint with: a TestKeyPair (test/helpers/keys.ts) or any private key with its kid and alg. */
export interface MintKey {
  readonly privateKey: SigningKey;
  readonly kid?: string;
  readonly alg?: string;
}

export interface MintOptions {
  /** exp is iat + this (default 300); a claim `exp` wins. */
  readonly ttlSeconds?: number;
  /** Header members over `{alg, kid, typ: 'JWT'}` (undefined drops one). */
  readonly header?: Record<string, unknown>;
}

function defined(o: Record<string, unknown>): Record<string, unknown> {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

/**
 * A well-formed signed JWT for the ordinary cases: header `{alg, kid, typ: 'JWT'}` from the
 * key, payload `{iat: now, exp: now + ttl, ...claims}` (a claim set to undefined is left out).
 */
export function mintJwt(key: MintKey, claims: Record<string, unknown> = {}, opts: MintOptions = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return forgeToken({
    header: defined({ alg: key.alg, kid: key.kid, typ: 'JWT', ...opts.header }),
    payload: defined({ iat: now, exp: now + (opts.ttlSeconds ?? 300), ...claims }),
    key: key.privateKey,
  });
}

/**
 * A test file's token(): mintJwt with the file's key and default claims (iss, aud, sub, …) bound;
 * each call's claims and header members go over them.
 */
export function jwtMinter(
  key: MintKey,
  defaults: Record<string, unknown> = {},
  opts: MintOptions = {},
): (claims?: Record<string, unknown>, header?: Record<string, unknown>) => string {
  return (claims = {}, header = {}) =>
    mintJwt(key, { ...defaults, ...claims }, { ...opts, header: { ...opts.header, ...header } });
}

/** A client's assertion for the token endpoint (RFC 7523: iss = sub = the client id), valid 120 s, a fresh jti. */
export function clientAssertion(key: MintKey, clientId: string, aud: string): string {
  return mintJwt(
    key,
    { iss: clientId, sub: clientId, aud, jti: randomUUID() },
    { ttlSeconds: 120, header: { kid: undefined, typ: undefined } },
  );
}
