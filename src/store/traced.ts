import type { Tracer } from '../observability/tracing.js';
import type {
  FamilyMember,
  OpaqueTokenRecord,
  RateLimitPeek,
  RateLimitResult,
  RefreshTokenRecord,
  RefreshTokenState,
  Store,
} from './token-store.js';

/**
 * A store whose every call is a span (`store.<operation>`, with the store type). Keys,
 * hashes and records are never recorded: they are derived from tokens and claims.
 * Only built while tracing is on, so an untraced store pays nothing.
 */
export class TracedStore implements Store {
  constructor(
    private readonly inner: Store,
    private readonly tracer: Tracer,
  ) {}

  get type(): Store['type'] {
    return this.inner.type;
  }

  isReady(): boolean {
    return this.inner.isReady();
  }

  private async traced<T>(operation: string, call: () => Promise<T>): Promise<T> {
    const span = this.tracer.startSpan(`store.${operation}`);
    span.setAttribute('store.type', this.inner.type);
    try {
      const result = await call();
      span.end();
      return result;
    } catch (err) {
      span.fail((err as Error)?.name ?? 'Error');
      span.end();
      throw err;
    }
  }

  putAccessToken(hash: string, record: OpaqueTokenRecord, ttlSeconds: number): Promise<void> {
    return this.traced('put_access_token', () => this.inner.putAccessToken(hash, record, ttlSeconds));
  }
  getAccessToken(hash: string): Promise<OpaqueTokenRecord | undefined> {
    return this.traced('get_access_token', () => this.inner.getAccessToken(hash));
  }
  deleteAccessToken(hash: string): Promise<void> {
    return this.traced('delete_access_token', () => this.inner.deleteAccessToken(hash));
  }
  putRefreshToken(hash: string, record: RefreshTokenRecord, ttlSeconds: number): Promise<void> {
    return this.traced('put_refresh_token', () => this.inner.putRefreshToken(hash, record, ttlSeconds));
  }
  getRefreshToken(hash: string): Promise<RefreshTokenState | undefined> {
    return this.traced('get_refresh_token', () => this.inner.getRefreshToken(hash));
  }
  markRefreshTokenUsed(hash: string, ttlSeconds: number): Promise<boolean> {
    return this.traced('mark_refresh_token_used', () => this.inner.markRefreshTokenUsed(hash, ttlSeconds));
  }
  deleteRefreshToken(hash: string): Promise<void> {
    return this.traced('delete_refresh_token', () => this.inner.deleteRefreshToken(hash));
  }
  revokeJti(jti: string, ttlSeconds: number): Promise<void> {
    return this.traced('revoke_jti', () => this.inner.revokeJti(jti, ttlSeconds));
  }
  isJtiRevoked(jti: string): Promise<boolean> {
    return this.traced('is_jti_revoked', () => this.inner.isJtiRevoked(jti));
  }
  addFamilyMember(familyId: string, member: FamilyMember, ttlSeconds: number): Promise<void> {
    return this.traced('add_family_member', () => this.inner.addFamilyMember(familyId, member, ttlSeconds));
  }
  revokeFamily(familyId: string, ttlSeconds: number): Promise<FamilyMember[]> {
    return this.traced('revoke_family', () => this.inner.revokeFamily(familyId, ttlSeconds));
  }
  isFamilyRevoked(familyId: string): Promise<boolean> {
    return this.traced('is_family_revoked', () => this.inner.isFamilyRevoked(familyId));
  }
  rememberOnce(key: string, ttlSeconds: number): Promise<boolean> {
    return this.traced('remember_once', () => this.inner.rememberOnce(key, ttlSeconds));
  }
  hit(key: string, limit: number, windowSeconds: number, nowMs?: number): Promise<RateLimitResult> {
    return this.traced('hit', () => this.inner.hit(key, limit, windowSeconds, nowMs));
  }
  peek(key: string, limit: number, windowSeconds: number, nowMs?: number): Promise<RateLimitPeek> {
    return this.traced('peek', () => this.inner.peek(key, limit, windowSeconds, nowMs));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
