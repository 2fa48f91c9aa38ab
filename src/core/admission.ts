// Cache admission on the second sighting (a "doorkeeper", as in TinyLFU): a token's
// verification or minted token is cached only when the same token was seen a short
// while ago. A stream of one-off tokens (each used once, or a flood of distinct valid
// tokens) then never enters the LRUs: no entry of ~7 KB to build, promote and evict
// per check, which is what made distinct tokens cost several times their cryptography.
// A token used again and again is cached from its second use on.
//
// What is remembered is a 30-bit hash of the key's tail (for a JWT, its signature; for
// an API key, the key), in two generations of `window` entries each: small integers
// in a Set, so remembering costs no allocation per key. A collision only admits a key
// one sighting early, which is what every key got before admission existed.
// A token that comes back after more than 2 × window other tokens is new again: the
// LRU of that size could not have kept it either.

/** How many characters at the end of a key are hashed. */
const TAIL = 24;

/**
 * How many characters at the end of a credential key the caches' maps are keyed by.
 * A token string is new on every request (read from the CheckRequest), so a map hashes
 * its key on every lookup: a whole 1 KB token costs 1.5 µs, its last 43 characters (at
 * least 256 bits of signature for any JWS, or of an opaque token's or API key's
 * randomness) 0.15 µs. An entry keeps the whole credential, and only an exact match of
 * it is a hit.
 */
export const KEY_TAIL = 43;

/** The last KEY_TAIL characters of a key (a sliced string: no copy), or the key itself. */
export function keyTail(key: string): string {
  return key.length > KEY_TAIL ? key.slice(key.length - KEY_TAIL) : key;
}

/** A 30-bit FNV-1a hash of the last TAIL characters of `key` and its length (a V8 small integer). */
export function tailHash(key: string): number {
  let h = 0x811c9dc5 ^ key.length;
  const start = key.length > TAIL ? key.length - TAIL : 0;
  for (let i = start; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h & 0x3fffffff;
}

/** verified_token_cache.admission: cache a credential at its second use, or at its first. */
export type CacheAdmission = 'second_use' | 'first_use';

export class SecondSighting {
  private current = new Set<number>();
  private previous = new Set<number>();

  /**
   * `window`: how many distinct keys a generation remembers, so a key is remembered
   * across `window` to 2 × `window` other keys: the cache's own size, so that any token
   * the cache could have kept until its next use is admitted at that use.
   */
  constructor(private readonly window: number) {}

  /** True when `key` was seen within the last one or two windows (cache it); else remembers it. */
  admit(key: string): boolean {
    const h = tailHash(key);
    if (this.current.has(h) || this.previous.has(h)) return true;
    if (this.current.size >= this.window) {
      const old = this.previous;
      old.clear();
      this.previous = this.current;
      this.current = old;
    }
    this.current.add(h);
    return false;
  }
}
