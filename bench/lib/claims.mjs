export const encodeSegment = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

/** The claims of bench token number i (distinct sub and jti per token). */
export function makeClaims({ iss, aud, iat, exp, scope }, prefix, i) {
  return { iss, sub: `${prefix}-${i}`, aud, iat, exp, scope, jti: `${prefix}-${i}-${iat}` };
}
