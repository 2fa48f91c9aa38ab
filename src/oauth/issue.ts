import { randomUUID } from 'node:crypto';
import { signJws } from '../crypto/signing-keys.js';
import { hashToken, type FamilyMember } from '../store/index.js';
import { OAuthError } from './answers.js';
import { randomToken } from './requests.js';
import { SELF_SKEW_SECONDS } from './self-tokens.js';
import { nowSec, type Client, type Family, type OAuthState } from './state.js';

// Issuing access (and refresh) tokens, and revoking what a refresh-token family issued.

export interface IssueOptions {
  /** Claims copied from an identity provider's assertion; the client's token_claims override them. */
  readonly copied?: Readonly<Record<string, unknown>> | undefined;
  /**
   * RFC 7638 thumbprint of the DPoP key the request proved: the access token carries it
   * as cnf.jkt (an opaque one in its stored claims) and a refresh token issued with it is
   * bound to it too.
   */
  readonly jkt?: string | undefined;
  /** `aud` of the access token instead of the default (token exchange: audience / resource). */
  readonly audience?: string | string[] | undefined;
  /** Latest `exp` (epoch seconds): a token exchange never outlives its subject token. */
  readonly notAfter?: number | undefined;
  /** The `act` claim (token exchange: who acts for the subject). */
  readonly act?: Readonly<Record<string, unknown>> | undefined;
}

export async function issue(
  state: OAuthState,
  client: Client,
  sub: string,
  scope: string,
  family: Family | undefined,
  { copied, jkt, audience, notAfter, act }: IssueOptions = {},
): Promise<Record<string, unknown>> {
  const { cfg, ctx } = state;
  const now = nowSec(state);
  const ttl = Math.min(cfg.access_token.ttl_seconds, notAfter === undefined ? Infinity : notAfter - now);
  if (ttl < 1) throw new OAuthError('invalid_grant', 'the grant expires too soon to issue a token');
  const jti = randomUUID();
  const claims: Record<string, unknown> = {
    ...copied,
    ...client.tokenClaims,
    iss: state.issuer,
    sub,
    aud: audience ?? state.accessAudience,
    client_id: client.id,
    scope,
    iat: now,
    exp: now + ttl,
    jti,
  };
  if (act !== undefined) claims.act = act;
  if (jkt !== undefined) claims.cnf = { jkt };
  let accessToken: string;
  let member: FamilyMember;
  if (state.keys && state.accessHeader) {
    accessToken = signJws(state.keys.current, state.accessHeader, claims);
    member = { kind: 'jwt', jti, exp: now + ttl };
  } else {
    accessToken = randomToken(cfg.access_token.opaque_length);
    const hash = hashToken(accessToken);
    await ctx.store.putAccessToken(hash, { claims, ...(family ? { familyId: family.id } : {}) }, ttl);
    member = { kind: 'opaque', hash };
  }
  const fields: Record<string, unknown> = {
    access_token: accessToken,
    token_type: jkt !== undefined ? 'DPoP' : 'Bearer',
    expires_in: ttl,
    scope,
  };
  if (family) {
    const refreshToken = randomToken(cfg.refresh_token.length);
    const left = family.exp - now;
    await ctx.store.addFamilyMember(family.id, member, Math.max(left, ttl));
    await ctx.store.putRefreshToken(
      hashToken(refreshToken),
      {
        clientId: client.id,
        sub,
        scope: family.scope,
        familyId: family.id,
        familyExp: family.exp,
        ...(copied ? { claims: { ...copied } } : {}),
        ...(jkt !== undefined ? { jkt } : {}),
      },
      left,
    );
    // A reuse detected elsewhere between our check and now must still reach these tokens.
    if (!family.isNew && (await ctx.store.isFamilyRevoked(family.id))) {
      await revokeMember(state, member, now);
      throw new OAuthError('invalid_grant', 'the refresh token is invalid, expired or revoked');
    }
    fields.refresh_token = refreshToken;
  }
  return fields;
}

/** Revokes a refresh-token family: its refresh tokens (marker) and every access token issued in it. */
export async function revokeFamilyTokens(
  state: OAuthState,
  familyId: string,
  familyExp: number,
): Promise<void> {
  const now = nowSec(state);
  const members = await state.ctx.store.revokeFamily(
    familyId,
    Math.max(familyExp - now, state.cfg.access_token.ttl_seconds),
  );
  await Promise.all(members.map((m) => revokeMember(state, m, now)));
}

async function revokeMember(state: OAuthState, m: FamilyMember, now: number): Promise<void> {
  if (m.kind === 'jwt') {
    // Kept until exp + skew: Check accepts our tokens that long (SELF_SKEW_SECONDS).
    if (m.exp + SELF_SKEW_SECONDS > now)
      await state.ctx.store.revokeJti(m.jti, m.exp + SELF_SKEW_SECONDS - now);
  } else {
    await state.ctx.store.deleteAccessToken(m.hash);
  }
}
