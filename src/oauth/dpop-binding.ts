import { normalizeHtu, replayKey, replayTtlSeconds, verifyDpopProof } from '../authn/dpop.js';
import { CLIENT_ASSERTION_SKEW_SECONDS } from './assertions.js';
import { OAuthError } from './answers.js';
import type { OAuthRequest, OAuthState } from './state.js';

// DPoP at the token endpoint (RFC 9449): a token request with a proof gets tokens bound
// to the proof's key. The proof is checked exactly as Check checks one, except that it
// accompanies no access token, so it carries no ath.

/** Proofs are made by clients, like their assertions: the same clock skew applies. */
const PROOF_SKEW_SECONDS = CLIENT_ASSERTION_SKEW_SECONDS;

/** The token endpoint URL proofs must name (htu), from public_base_url; undefined when it is not set or not an http(s) base URL. */
export function configuredTokenUrl(publicBaseUrl: string | undefined, tokenPath: string): string | undefined {
  if (publicBaseUrl === undefined || publicBaseUrl === '') return undefined;
  let base: URL;
  try {
    base = new URL(publicBaseUrl);
  } catch {
    return undefined;
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') return undefined;
  // The path is appended to it: a query or fragment would swallow it.
  if (base.hostname === '' || base.search !== '' || base.hash !== '') return undefined;
  return normalizeHtu(`${publicBaseUrl.replace(/\/+$/, '')}${tokenPath}`);
}

/**
 * The RFC 7638 thumbprint of the key a token request proves possession of; undefined
 * when the request has no DPoP header (refused when token_endpoint.dpop.required).
 * A proof is used once: its jti is remembered in the store, shared by every replica.
 */
export async function tokenRequestProofKey(
  state: OAuthState,
  req: OAuthRequest,
): Promise<string | undefined> {
  const proof = req.dpop;
  if (proof === undefined) {
    if (state.cfg.dpop.required)
      throw new OAuthError('invalid_dpop_proof', 'this token endpoint requires a DPoP proof');
    return undefined;
  }
  const url = state.tokenUrl ?? (req.url === undefined ? undefined : normalizeHtu(req.url));
  if (url === undefined)
    throw new OAuthError('invalid_dpop_proof', 'the request URL is unknown, so no DPoP proof can match it');
  const now = state.clock.nowSeconds();
  const verified = await verifyDpopProof({
    proof,
    method: 'POST',
    url,
    accessToken: undefined,
    now,
    clockSkewSeconds: PROOF_SKEW_SECONDS,
  });
  if ('kind' in verified)
    throw new OAuthError('invalid_dpop_proof', verified.description ?? 'the DPoP proof is invalid');
  const first = await state.ctx.store.rememberOnce(
    replayKey(verified),
    replayTtlSeconds(verified, now, PROOF_SKEW_SECONDS),
  );
  if (!first) throw new OAuthError('invalid_dpop_proof', 'the DPoP proof has already been used (jti)');
  return verified.jkt;
}
