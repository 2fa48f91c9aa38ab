import type { KeyObject } from 'node:crypto';

// Where a signature operation runs: inline on the event loop, or on libuv's thread
// pool (node:crypto with a callback). Alone, a pool call costs the event loop 2.5 µs
// instead of the operation's 23–27 µs (RS256 verify, ES256 sign) for 1–2 µs more CPU
// in all; behind Envoy on two cores the pool also wins on throughput (it uses the core
// the event loop is not on), so `always` is the default. `auto` keeps only costly
// operations (RSA private-key operations, P-384/P-521, Ed448: 0.15–4 ms) on the pool,
// for machines where every core already runs a worker. docs/benchmarks.md has the numbers.

/** `always`: every asymmetric operation on the pool; `auto`: cheap operations inline,
 * costly ones on the pool; `never`: every operation inline. */
export type CryptoOffload = 'auto' | 'always' | 'never';

let mode: CryptoOffload = 'always';

/** Sets the process-wide policy (server.crypto_offload); the runtime calls it at (re)load. */
export function setCryptoOffload(m: CryptoOffload): void {
  mode = m;
}

export function cryptoOffload(): CryptoOffload {
  return mode;
}

/** Largest RSA modulus verified inline under `auto` (a 4096-bit verify takes ~70 µs). */
const INLINE_RSA_VERIFY_BITS = 4096;

// Cheapness depends only on the key (type, size, curve): decided once per KeyObject.
const verifyInline = new WeakMap<KeyObject, boolean>();
const signInline = new WeakMap<KeyObject, boolean>();

/** P-256 ECDSA and Ed25519: cheap to sign and to verify (30–110 µs). */
function cheapCurve(key: KeyObject): boolean {
  const type = key.asymmetricKeyType;
  return type === 'ed25519' || (type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1');
}

/** RSA verification is cheap (a public-key operation) up to INLINE_RSA_VERIFY_BITS. */
function cheapVerify(key: KeyObject): boolean {
  const type = key.asymmetricKeyType;
  if (type === 'rsa' || type === 'rsa-pss')
    return (key.asymmetricKeyDetails?.modulusLength ?? Infinity) <= INLINE_RSA_VERIFY_BITS;
  return cheapCurve(key);
}

/** RSA private-key operations cost 0.4–4 ms: never cheap. */
const cheapSign = cheapCurve;

/** Whether a signature check with this public key runs inline (true) or on the pool. */
export function verifiesInline(key: KeyObject): boolean {
  if (mode !== 'auto') return mode === 'never';
  let inline = verifyInline.get(key);
  if (inline === undefined) verifyInline.set(key, (inline = cheapVerify(key)));
  return inline;
}

/** Whether signing with this private key runs inline (true) or on the pool. */
export function signsInline(key: KeyObject): boolean {
  if (mode !== 'auto') return mode === 'never';
  let inline = signInline.get(key);
  if (inline === undefined) signInline.set(key, (inline = cheapSign(key)));
  return inline;
}
