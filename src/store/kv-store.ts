import type {
  FamilyMember,
  OpaqueTokenRecord,
  RefreshTokenRecord,
  RefreshTokenState,
  Store,
} from './types.js';

/**
 * The few key-value primitives both backends provide. Every value has a TTL in whole
 * seconds; keys are already namespaced by the caller.
 */
export interface Kv {
  get(key: string): Promise<string | undefined>;
  mget(keys: string[]): Promise<(string | undefined)[]>;
  set(key: string, value: string, ttlSeconds: number): Promise<void>;
  /** Atomic set-if-absent; true when this call set it. */
  setNx(key: string, value: string, ttlSeconds: number): Promise<boolean>;
  del(keys: string[]): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Appends to a list and sets the list's TTL. */
  push(key: string, value: string, ttlSeconds: number): Promise<void>;
  list(key: string): Promise<string[]>;
}

// Key layout (after the backend's prefix):
//   at:<hash>   opaque access token record (JSON)
//   rt:<hash>   refresh token record (JSON)
//   rtu:<hash>  refresh token already exchanged (marker)
//   jti:<jti>   revoked JWT access token (marker)
//   fr:<id>     revoked refresh-token family (marker)
//   fm:<id>     members of a family (list of JSON)
//   once:<key>  remembered key, e.g. a used assertion jti (marker)
const K = {
  access: (h: string) => `at:${h}`,
  refresh: (h: string) => `rt:${h}`,
  refreshUsed: (h: string) => `rtu:${h}`,
  revokedJti: (jti: string) => `jti:${jti}`,
  familyRevoked: (id: string) => `fr:${id}`,
  familyMembers: (id: string) => `fm:${id}`,
  once: (k: string) => `once:${k}`,
};

/** Whole seconds, at least 1 (a TTL of 0 would mean "no expiry" or "expire now" depending on the backend). */
export function ttl(seconds: number): number {
  return Number.isFinite(seconds) ? Math.max(1, Math.ceil(seconds)) : 1;
}

function parse<T>(raw: string | undefined): T | undefined {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return undefined;
  }
}

/** The Store semantics, written once over a Kv. */
export abstract class KvStore implements Store {
  abstract readonly type: 'memory' | 'redis';
  abstract isReady(): boolean;
  abstract close(): Promise<void>;
  protected abstract readonly kv: Kv;

  async putAccessToken(hash: string, record: OpaqueTokenRecord, ttlSeconds: number): Promise<void> {
    await this.kv.set(K.access(hash), JSON.stringify(record), ttl(ttlSeconds));
  }

  async getAccessToken(hash: string): Promise<OpaqueTokenRecord | undefined> {
    return parse<OpaqueTokenRecord>(await this.kv.get(K.access(hash)));
  }

  async deleteAccessToken(hash: string): Promise<void> {
    await this.kv.del([K.access(hash)]);
  }

  async putRefreshToken(hash: string, record: RefreshTokenRecord, ttlSeconds: number): Promise<void> {
    await this.kv.set(K.refresh(hash), JSON.stringify(record), ttl(ttlSeconds));
  }

  async getRefreshToken(hash: string): Promise<RefreshTokenState | undefined> {
    const [raw, used] = await this.kv.mget([K.refresh(hash), K.refreshUsed(hash)]);
    const record = parse<RefreshTokenRecord>(raw);
    return record ? { record, used: used !== undefined } : undefined;
  }

  markRefreshTokenUsed(hash: string, ttlSeconds: number): Promise<boolean> {
    return this.kv.setNx(K.refreshUsed(hash), '1', ttl(ttlSeconds));
  }

  async deleteRefreshToken(hash: string): Promise<void> {
    await this.kv.del([K.refresh(hash), K.refreshUsed(hash)]);
  }

  async revokeJti(jti: string, ttlSeconds: number): Promise<void> {
    await this.kv.set(K.revokedJti(jti), '1', ttl(ttlSeconds));
  }

  isJtiRevoked(jti: string): Promise<boolean> {
    return this.kv.exists(K.revokedJti(jti));
  }

  async addFamilyMember(familyId: string, member: FamilyMember, ttlSeconds: number): Promise<void> {
    await this.kv.push(K.familyMembers(familyId), JSON.stringify(member), ttl(ttlSeconds));
  }

  async revokeFamily(familyId: string, ttlSeconds: number): Promise<FamilyMember[]> {
    // Marker first, members second: an issuer that adds a member and then re-checks the
    // marker (see the token service) can never slip a token past a revocation.
    await this.kv.set(K.familyRevoked(familyId), '1', ttl(ttlSeconds));
    const raw = await this.kv.list(K.familyMembers(familyId));
    const members: FamilyMember[] = [];
    for (const r of raw) {
      const m = parse<FamilyMember>(r);
      if (m) members.push(m);
    }
    return members;
  }

  isFamilyRevoked(familyId: string): Promise<boolean> {
    return this.kv.exists(K.familyRevoked(familyId));
  }

  rememberOnce(key: string, ttlSeconds: number): Promise<boolean> {
    return this.kv.setNx(K.once(key), '1', ttl(ttlSeconds));
  }
}
