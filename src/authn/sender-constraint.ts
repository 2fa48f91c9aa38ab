import type { IssuerConfig, SenderConstraintMode } from '../config/types.js';
import { deny, type Deny } from '../core/decision.js';
import type { AuthRequest, Confirmation } from '../core/request.js';
import { StoreUnavailableError } from '../store/token-store.js';
import { replayKey, replayTtlSeconds, requestUrl, verifyDpopProof, type ReplayCache } from './dpop.js';
import type { CompiledTokenSource } from './extract.js';
import { checkCertificateBinding } from './mtls.js';

// Sender-constrained tokens: after a token is verified (or found verified in the cache),
// what it is bound to (its cnf claim) is compared with what this request proves — the
// client certificate Envoy saw, or a DPoP proof. Runs on every request: a proof and a
// connection's certificate change per request even when the token does not.

export interface CompiledSenderConstraint {
  readonly mtls: SenderConstraintMode;
  readonly dpop: SenderConstraintMode;
  readonly clockSkewSeconds: number;
}

/** The issuer's constraint, or undefined when both checks are off. */
export function compileSenderConstraint(
  iss: Pick<IssuerConfig, 'sender_constraint' | 'clock_skew_seconds'>,
): CompiledSenderConstraint | undefined {
  const sc = iss.sender_constraint;
  if (!sc || (sc.mtls === 'off' && sc.dpop === 'off')) return undefined;
  return { mtls: sc.mtls, dpop: sc.dpop, clockSkewSeconds: iss.clock_skew_seconds };
}

/** The token's cnf claim, when it is an object. */
export function confirmationOf(claims: Readonly<Record<string, unknown>>): Confirmation | undefined {
  const cnf = claims.cnf;
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) return undefined;
  const c = cnf as Record<string, unknown>;
  return {
    x5tS256: Object.hasOwn(c, 'x5t#S256') ? c['x5t#S256'] : undefined,
    jkt: Object.hasOwn(c, 'jkt') ? c.jkt : undefined,
  };
}

const DPOP_SOURCE: CompiledTokenSource = {
  kind: 'header',
  name: 'authorization',
  prefix: 'DPoP ',
  prefixLower: 'dpop ',
};

/** Whether the token came as `Authorization: DPoP <token>`. */
export function isDpopSource(source: CompiledTokenSource): boolean {
  return (
    source.kind === 'header' &&
    source.name === 'authorization' &&
    (source.prefixLower === 'dpop ' || source.prefixLower === 'dpop')
  );
}

/** The token sources, plus the DPoP authorization scheme when an issuer accepts DPoP and none reads it yet. */
export function withDpopTokenSource(
  sources: readonly CompiledTokenSource[],
  issuers: readonly { sender_constraint?: Pick<CompiledSenderConstraint, 'mtls' | 'dpop'> | undefined }[],
): CompiledTokenSource[] {
  const wanted = issuers.some((i) => i.sender_constraint && i.sender_constraint.dpop !== 'off');
  if (!wanted || sources.some(isDpopSource)) return [...sources];
  return [...sources, DPOP_SOURCE];
}

export interface SenderCheckContext {
  /** Where proof jtis are remembered (the token store, or a per-process cache). */
  readonly replay: ReplayCache;
  /** Seconds since the epoch. */
  readonly now: number;
}

/**
 * Whether this request may use this token: undefined when it may, else the denial.
 * Synchronous unless a DPoP proof has to be verified.
 */
export function checkSenderConstraint(
  constraint: CompiledSenderConstraint | undefined,
  confirmation: Confirmation | undefined,
  req: AuthRequest,
  token: string,
  source: CompiledTokenSource,
  ctx: () => SenderCheckContext,
): Deny | undefined | Promise<Deny | undefined> {
  const dpopScheme = isDpopSource(source);
  if (!constraint) return dpopScheme ? dpopNotAccepted() : undefined;
  const certProblem = checkCertificateBinding(constraint.mtls, confirmation?.x5tS256, req.clientCertificate);
  if (certProblem) return certProblem;
  if (constraint.dpop === 'off') return dpopScheme ? dpopNotAccepted() : undefined;

  const jkt = confirmation?.jkt;
  if (jkt === undefined) {
    if (constraint.dpop === 'required')
      return deny('cnf_missing', 'the token is not DPoP-bound (cnf.jkt), which this issuer requires', {
        scheme: 'DPoP',
      });
    return dpopScheme
      ? deny('cnf_missing', 'the token is not DPoP-bound (cnf.jkt) but was sent with the DPoP scheme', {
          scheme: 'DPoP',
        })
      : undefined;
  }
  if (typeof jkt !== 'string' || jkt.length === 0)
    return deny('cnf_mismatch', 'the token DPoP binding (cnf.jkt) is invalid', { scheme: 'DPoP' });
  if (!dpopScheme)
    return deny('cnf_mismatch', 'the token is DPoP-bound: send it with the DPoP scheme and a DPoP proof', {
      scheme: 'DPoP',
    });
  return checkProof(constraint, jkt, req, token, ctx());
}

function dpopNotAccepted(): Deny {
  return deny('cnf_mismatch', "the token's issuer does not accept DPoP: send it with the Bearer scheme");
}

async function checkProof(
  constraint: CompiledSenderConstraint,
  jkt: string,
  req: AuthRequest,
  token: string,
  ctx: SenderCheckContext,
): Promise<Deny | undefined> {
  const url = requestUrl(req);
  if (url === undefined)
    return deny('dpop_invalid', 'the request URL is unknown, so no DPoP proof can match it', {
      scheme: 'DPoP',
      logDetail: 'CheckRequest lacks scheme or host',
    });
  const proof = await verifyDpopProof({
    proof: req.headers.dpop,
    method: req.method,
    url,
    accessToken: token,
    now: ctx.now,
    clockSkewSeconds: constraint.clockSkewSeconds,
  });
  if ('kind' in proof) return proof;
  if (proof.jkt !== jkt)
    return deny('cnf_mismatch', 'the DPoP proof key does not match the token (cnf.jkt)', { scheme: 'DPoP' });
  let first: boolean;
  try {
    first = await ctx.replay.rememberOnce(
      replayKey(proof),
      replayTtlSeconds(proof, ctx.now, constraint.clockSkewSeconds),
    );
  } catch (err) {
    // Fail closed: a proof whose jti cannot be recorded could be a replay.
    return deny('store_unavailable', 'the token store is unavailable', {
      logDetail: err instanceof StoreUnavailableError ? err.message : String(err),
    });
  }
  if (!first) return deny('dpop_replayed', 'the DPoP proof has already been used (jti)', { scheme: 'DPoP' });
  return undefined;
}
