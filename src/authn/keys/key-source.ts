import type { KeyObject } from 'node:crypto';
import type { EpochMs } from '../../core/time.js';

/** One key that may verify a token signature. Built once when a key set is loaded. */
export interface VerificationKey {
  /** JWKS `kid`, or the truststore alias. */
  readonly kid?: string;
  /** The JWK's `alg`, if it declared one: the key is then only a candidate for that alg. */
  readonly alg?: string;
  readonly kty: 'RSA' | 'EC' | 'OKP' | 'oct';
  /** EC / OKP curve: P-256, P-384, P-521, Ed25519. */
  readonly crv?: string;
  /** The key itself (public key, or secret key for `oct`). */
  readonly key: KeyObject;
  /** base64url SHA-256 / SHA-1 certificate thumbprints (truststore, or JWK x5t#S256 / x5t). */
  readonly x5tS256?: string;
  readonly x5t?: string;
  /**
   * Further spellings a truststore certificate is found under: WSO2 writes a thumbprint as
   * base64url of its lower-case hex string, and puts the SHA-256 one in `x5t` too.
   */
  readonly x5tAlso?: readonly string[];
  readonly x5tS256Also?: readonly string[];
  /** Certificate validity, for truststore keys: checked at every use. */
  readonly notBefore?: EpochMs;
  readonly notAfter?: EpochMs;
}

/**
 * An immutable set of candidate keys. Keys unfit for verification (use: enc, key_ops
 * without verify, RSA < 2048 bits, symmetric keys from a remote source, unsupported
 * kty/crv, expired certificates) never enter a KeySet.
 */
export interface KeySet {
  readonly keys: readonly VerificationKey[];
  readonly byKid: ReadonlyMap<string, readonly VerificationKey[]>;
  readonly byX5tS256: ReadonlyMap<string, VerificationKey>;
  readonly byX5t: ReadonlyMap<string, VerificationKey>;
  /** Truststore default_alias: used when a token has neither kid nor thumbprint. */
  readonly defaultKey?: VerificationKey;
  /**
   * secret_file: the one secret has no kid and checks every token of the issuer, so a kid
   * in the token selects nothing (it cannot name another key).
   */
  readonly ignoresKid?: boolean;
}

/**
 * `no_keys`: the source answered authoritatively (a well-formed JWKS, a readable folder, a
 * removed file) and holds no usable key, so every token of the issuer is refused as
 * `key_not_found`. `stale`: the last reload failed and the previous keys are kept.
 * `error`: no keys were ever loaded, or they are stale beyond max_stale.
 */
export type KeySourceState = 'loading' | 'ready' | 'stale' | 'no_keys' | 'error';

export interface KeySourceStatus {
  readonly state: KeySourceState;
  readonly keys: number;
  /** The first load has finished (with keys or with an error). */
  readonly loaded: boolean;
  readonly lastError?: string;
  /** When the last load succeeded. */
  readonly lastSuccessAt?: EpochMs;
}

/**
 * Where an issuer's keys come from. `current()` is synchronous and never does I/O:
 * the request path only ever reads the cached KeySet. Refreshes happen in the
 * background; `refreshForUnknownKid` is the one request-triggered fetch (rate-limited
 * by the cooldown and coalesced across concurrent callers).
 */
export interface KeySource {
  readonly kind:
    | 'remote-jwks'
    | 'discovery'
    | 'local-jwks'
    | 'jwks-file'
    | 'truststore'
    | 'secret'
    | 'self'
    | 'introspection';
  /** Starts loading (and background refresh). Resolves when the first load finished; never rejects. */
  start(): Promise<void>;
  /**
   * The usable keys, or undefined when none are available (never loaded, or stale beyond
   * max_stale). An empty set means the keys were removed: tokens are refused, not deferred.
   */
  current(): KeySet | undefined;
  /**
   * The token names a kid we do not know. Refetch at most once per cooldown; concurrent
   * callers share one fetch. A promise of the (possibly unchanged) current set while a
   * fetch runs; otherwise (cooldown, a local source) the current set itself, so a flood
   * of unknown kids costs no promise, timer or await.
   */
  refreshForUnknownKid(): Promise<KeySet | undefined> | KeySet | undefined;
  status(): KeySourceStatus;
  /** Increments whenever the key set changes; caches of verified tokens key on it. */
  readonly generation: number;
  /** Stops timers and watchers. */
  close(): void;
}

/** The state a source reports, from what it holds (`set`: what current() returns). */
export function keySourceState(
  loaded: boolean,
  set: KeySet | undefined,
  lastError: string | undefined,
): KeySourceState {
  if (!loaded) return 'loading';
  if (!set) return 'error';
  if (set.keys.length === 0) return 'no_keys';
  return lastError === undefined ? 'ready' : 'stale';
}

/** A source's status from what it knows: whether it has loaded, its current keys, its last error and success. */
export function keySourceStatus(
  loaded: boolean,
  set: KeySet | undefined,
  lastError: string | undefined,
  lastSuccessAt: EpochMs | undefined,
): KeySourceStatus {
  return {
    state: keySourceState(loaded, set, lastError),
    keys: set?.keys.length ?? 0,
    loaded,
    ...(lastError !== undefined ? { lastError } : {}),
    ...(lastSuccessAt !== undefined ? { lastSuccessAt } : {}),
  };
}
