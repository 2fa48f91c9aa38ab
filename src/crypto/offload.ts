import type { KeyObject } from 'node:crypto';

// Where a signature operation runs: inline on the event loop, or on libuv's thread
// pool (node:crypto with a callback). A pool call costs a thread hand-off both ways
// (futex wake-ups, a completion callback, a promise): on a busy two-core machine that
// was about 50 µs of CPU per check on top of the operation itself, more than an RS256
// verify (~25 µs) or an ES256 sign (~30 µs) costs. So cheap operations run inline and
// only expensive ones (RSA private-key operations, P-384/P-521, Ed448: 0.15–4 ms) go
// to the pool, where they cannot stall other checks. docs/benchmarks.md has the table.

/** `auto`: cheap operations inline, costly ones on the pool; `always`: every asymmetric
 * operation on the pool; `never`: every operation inline. */
export type CryptoOffload = 'auto' | 'always' | 'never';

let mode: CryptoOffload = 'auto';

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

function cheapVerify(key: KeyObject): boolean {
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return (key.asymmetricKeyDetails?.modulusLength ?? Infinity) <= INLINE_RSA_VERIFY_BITS;
    case 'ec':
      return key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
    case 'ed25519':
      return true;
    default:
      return false;
  }
}

function cheapSign(key: KeyObject): boolean {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
    case 'ed25519':
      return true;
    default:
      // RSA private-key operations cost 0.4–4 ms: always on the pool.
      return false;
  }
}

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
