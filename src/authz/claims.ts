// Claim mappings (remote name → local name), claim lookup by dotted name, and
// scope extraction. Claims come from attacker-supplied JSON, so nothing here
// reads through a prototype, and the mapped output never carries the keys that
// could reach one ("__proto__", "constructor", "prototype").
import { isPlainObject } from '../core/objects.js';

export type ClaimMapper = (claims: Record<string, unknown>) => Record<string, unknown>;
export type ClaimReader = (claims: Readonly<Record<string, unknown>>) => unknown;

const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Objects nested deeper than this in a claim are left out of the mapped claims. */
export const MAX_CLAIM_DEPTH = 32;

/** Dotted names with more segments than this are only looked up as an exact key. */
const MAX_DOTTED_SEGMENTS = 16;

export function isForbiddenKey(key: string): boolean {
  return FORBIDDEN_KEYS.has(key);
}

/**
 * A sanitised deep copy of a JSON value: objects become null-prototype objects
 * without forbidden keys, arrays are copied element by element. Returns
 * undefined for values nested beyond MAX_CLAIM_DEPTH.
 */
export function sanitizeClaimValue(value: unknown, depth = 0): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_CLAIM_DEPTH) return undefined;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (let i = 0; i < value.length; i++) {
      const v = sanitizeClaimValue(value[i], depth + 1);
      if (v !== undefined) out.push(v);
    }
    return out;
  }
  return copyObject(value as Record<string, unknown>, depth);
}

function copyObject(src: Readonly<Record<string, unknown>>, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  for (const key in src) {
    if (!Object.hasOwn(src, key) || FORBIDDEN_KEYS.has(key)) continue;
    const v = sanitizeClaimValue(src[key], depth + 1);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/**
 * The one claim-path reader: require.claims, claim_headers, copy_claims, scope
 * claims and claim_mappings' `from` all resolve names through it, so a name
 * means the same value everywhere.
 *
 * Compiles the lookup of a local or remote claim name. An exact key (even one
 * containing dots, like "https://x.io/roles") wins; otherwise the dots separate
 * nested objects. At each level the longest existing key is tried first, so
 * {"https://hasura.io/jwt/claims": {"x-role": "a"}} is reachable as
 * "https://hasura.io/jwt/claims.x-role". Arrays are not indexed.
 */
export function compileClaimReader(name: string): ClaimReader {
  const segments = name.split('.');
  if (segments.length === 1 || segments.length > MAX_DOTTED_SEGMENTS) {
    if (name === '' || FORBIDDEN_KEYS.has(name)) return () => undefined;
    return (claims) => readKey(claims, name);
  }
  const n = segments.length;
  // keys[i][j] = segments i..j-1 joined with ".", or undefined if never a valid key.
  const keys: (string | undefined)[][] = [];
  for (let i = 0; i < n; i++) {
    const row: (string | undefined)[] = [];
    for (let j = 0; j <= n; j++) {
      if (j <= i) {
        row.push(undefined);
        continue;
      }
      const key = segments.slice(i, j).join('.');
      row.push(key === '' || FORBIDDEN_KEYS.has(key) ? undefined : key);
    }
    keys.push(row);
  }
  const walk = (obj: Readonly<Record<string, unknown>>, i: number): unknown => {
    const row = keys[i]!;
    for (let j = n; j > i; j--) {
      const key = row[j];
      if (key === undefined || !Object.hasOwn(obj, key)) continue;
      const v = obj[key];
      if (j === n) return v;
      if (isPlainObject(v)) {
        const found = walk(v, j);
        if (found !== undefined) return found;
      }
    }
    return undefined;
  };
  return (claims) => walk(claims, 0);
}

function readKey(claims: Readonly<Record<string, unknown>>, key: string): unknown {
  return key !== '' && !FORBIDDEN_KEYS.has(key) && Object.hasOwn(claims, key) ? claims[key] : undefined;
}

/**
 * Reads a claim by local name without compiling first (for names only known at
 * the call); the same reader as compileClaimReader.
 */
export function readClaim(claims: Readonly<Record<string, unknown>>, name: string): unknown {
  return name.includes('.') ? compileClaimReader(name)(claims) : readKey(claims, name);
}

/**
 * Compiles an issuer's claim_mappings. The mapper returns a new null-prototype
 * object: every own claim (sanitised deep copy), then each mapping in order
 * writes the value found at `from` in the incoming claims to the top-level
 * `to`, replacing what was there. A mapping owns its `to`: when no mapping to
 * it finds its source, `to` is absent, so a token cannot supply a top-level
 * `roles` where `realm_access.roles → roles` is configured and have it trusted
 * as the mapped value. Mappings read the incoming claims, never the output of
 * an earlier mapping, so `scp → scope` and `scope → scp` swap cleanly.
 * A mapping whose `to` is a forbidden key is reported (when `problems` is
 * given) and skipped.
 */
export function compileClaimMappings(
  mappings: readonly { from: string; to: string }[],
  problems?: string[],
  path = 'claim_mappings',
): ClaimMapper {
  const compiled: { read: ClaimReader; to: string }[] = [];
  mappings.forEach((m, i) => {
    if (FORBIDDEN_KEYS.has(m.to) || m.to === '') {
      problems?.push(`${path}[${i}].to: "${m.to}" cannot be used as a claim name`);
      return;
    }
    compiled.push({ read: compileClaimReader(m.from), to: m.to });
  });
  const owned = [...new Set(compiled.map((m) => m.to))];
  return (claims) => {
    const out = copyObject(claims, 0);
    for (let i = 0; i < owned.length; i++) delete out[owned[i]!];
    for (let i = 0; i < compiled.length; i++) {
      const m = compiled[i]!;
      const v = sanitizeClaimValue(m.read(claims), 1);
      if (v !== undefined) out[m.to] = v;
    }
    return out;
  };
}

/**
 * Scopes of a token: the first claim of `scopeClaims` that is present (not
 * undefined) wins, even if its value is unusable. A string is split on spaces
 * (RFC 6749 §3.3), an array keeps its string elements, anything else yields [].
 */
export function extractScopes(
  claims: Readonly<Record<string, unknown>>,
  scopeClaims: readonly string[],
): string[] {
  for (let i = 0; i < scopeClaims.length; i++) {
    const v = readClaim(claims, scopeClaims[i]!);
    if (v === undefined) continue;
    if (typeof v === 'string') {
      const out: string[] = [];
      for (const part of v.split(' ')) if (part !== '') out.push(part);
      return out;
    }
    if (Array.isArray(v)) {
      const out: string[] = [];
      for (const e of v) if (typeof e === 'string' && e !== '') out.push(e);
      return out;
    }
    return [];
  }
  return [];
}
