// Bench keys and token sets (node:crypto only; no network).
import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { encodeSegment, makeClaims } from './claims.mjs';

export const RS_ISS = 'https://idp.bench.local';
export const ES_ISS = 'https://idp-es.bench.local';
export const AUD = 'api://orders';
// Below the default max_lifetime_seconds (86400), so the bench config keeps defaults.
const LIFETIME = 86000;

export function rsaIssuerKey(kid = 'bench-rs-1') {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return jwkPair(privateKey, kid, 'RS256');
}

export function ecKey(kid, alg = 'ES256') {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return jwkPair(privateKey, kid, alg);
}

function jwkPair(privateKey, kid, alg) {
  const privateJwk = { ...privateKey.export({ format: 'jwk' }), kid, alg };
  const publicJwk = { ...createPublicKey(privateKey).export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { kid, alg, privateJwk, publicJwk };
}

/** Signs `count` distinct tokens on all cores (worker_threads). */
export async function signTokens(key, { iss, aud = AUD, scope = 'read write', prefix, count, iat }) {
  iat ??= Math.floor(Date.now() / 1000) - 5;
  const claimsBase = { iss, aud, iat, exp: iat + LIFETIME, scope };
  const workers = Math.max(1, Math.min(availableParallelism(), 8));
  const per = Math.ceil(count / workers);
  const parts = [];
  for (let w = 0; w < workers; w++) {
    const start = w * per;
    const n = Math.min(per, count - start);
    if (n <= 0) break;
    parts.push(
      new Promise((resolve, reject) => {
        const worker = new Worker(new URL('./sign-worker.mjs', import.meta.url), {
          workerData: { alg: key.alg, privateJwk: key.privateJwk, kid: key.kid, claimsBase, start, count: n, prefix },
        });
        worker.once('message', resolve);
        worker.once('error', reject);
      }),
    );
  }
  return { tokens: (await Promise.all(parts)).flat(), exp: claimsBase.exp };
}

/** Well-formed tokens for a real issuer and kid whose signature is random bytes (all distinct). */
export function invalidSignatureTokens(key, { iss, aud = AUD, scope = 'read write', prefix = 'invalid', count }) {
  const iat = Math.floor(Date.now() / 1000) - 5;
  const base = { iss, aud, iat, exp: iat + LIFETIME, scope };
  const header = encodeSegment({ alg: key.alg, typ: 'JWT', kid: key.kid });
  const sigLen = key.alg === 'RS256' ? 256 : 64;
  const random = randomBytes(sigLen * count);
  const out = new Array(count);
  for (let i = 0; i < count; i++) {
    const sig = random.subarray(i * sigLen, (i + 1) * sigLen).toString('base64url');
    out[i] = `${header}.${encodeSegment(makeClaims(base, prefix, i))}.${sig}`;
  }
  return out;
}

/**
 * The RS256 issuer key and a pool of valid RS256 tokens. RSA signing costs ~1 ms per
 * token, so the pool is cached under bench/results/.cache (git-ignored) and reused
 * while its tokens have more than 2 hours left; `fresh` regenerates it.
 */
export async function rsaPool(cacheDir, count, { fresh = false, log = () => {} } = {}) {
  const file = join(cacheDir, 'rs256-pool.json');
  const now = Math.floor(Date.now() / 1000);
  if (!fresh && existsSync(file)) {
    try {
      const cached = JSON.parse(readFileSync(file, 'utf8'));
      if (cached.exp - now > 7200 && cached.tokens.length >= count) {
        log(`reusing ${cached.tokens.length} cached RS256 tokens (${file})`);
        return cached;
      }
    } catch {
      /* regenerate */
    }
  }
  const key = rsaIssuerKey();
  const t0 = performance.now();
  log(`signing ${count} RS256 tokens on ${availableParallelism()} cores (cached for later runs)…`);
  const { tokens, exp } = await signTokens(key, { iss: RS_ISS, prefix: 'user', count });
  log(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const pool = { key, tokens, exp };
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(file, JSON.stringify(pool));
  return pool;
}

/** Random base64url strings of `length` characters (no dots: not a JWS at all). */
export function garbageTokens({ count, length = 600 }) {
  const bytes = Math.ceil((length * 3) / 4);
  const random = randomBytes(bytes * count);
  const out = new Array(count);
  for (let i = 0; i < count; i++)
    out[i] = random
      .subarray(i * bytes, (i + 1) * bytes)
      .toString('base64url')
      .slice(0, length);
  return out;
}
