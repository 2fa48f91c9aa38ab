import { X509Certificate, createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { SenderConstraintMode } from '../config/types.js';
import { deny, type Deny } from '../core/decision.js';

// Certificate-bound tokens (RFC 8705): the token's cnf["x5t#S256"] must be the SHA-256
// thumbprint of the client certificate of the TLS connection Envoy terminated.

/** Certificates longer than this (URL-encoded PEM) are not read. */
const MAX_CERTIFICATE_CHARS = 32768;

// A client sends the same certificate on every request: its thumbprint is computed once.
const thumbprints = new LRUCache<string, string | false>({ max: 1024 });

/**
 * base64url(SHA-256(DER)) of the certificate Envoy forwards (URL-encoded PEM), or
 * undefined when it is not one certificate.
 */
export function certificateThumbprint(encodedPem: string): string | undefined {
  if (encodedPem.length > MAX_CERTIFICATE_CHARS) return undefined;
  let known = thumbprints.get(encodedPem);
  if (known === undefined) {
    known = false;
    try {
      const der = new X509Certificate(decodeURIComponent(encodedPem)).raw;
      known = createHash('sha256').update(der).digest('base64url');
    } catch {
      /* not a certificate: stays false */
    }
    thumbprints.set(encodedPem, known);
  }
  return known === false ? undefined : known;
}

/** The certificate binding check for one request; undefined when it passes. */
export function checkCertificateBinding(
  mode: SenderConstraintMode,
  x5tS256: unknown,
  clientCertificate: string | undefined,
): Deny | undefined {
  if (mode === 'off') return undefined;
  if (x5tS256 === undefined) {
    return mode === 'required'
      ? deny('cnf_missing', 'the token is not bound to a client certificate (cnf x5t#S256)')
      : undefined;
  }
  if (typeof x5tS256 !== 'string' || x5tS256.length === 0)
    return deny('cnf_mismatch', 'the token certificate binding (cnf x5t#S256) is invalid');
  if (clientCertificate === undefined)
    return deny('cnf_mismatch', 'the token is bound to a client certificate, but the request presented none');
  const thumbprint = certificateThumbprint(clientCertificate);
  if (thumbprint === undefined)
    return deny('cnf_mismatch', 'the client certificate of the request could not be read');
  if (thumbprint !== x5tS256)
    return deny('cnf_mismatch', 'the client certificate does not match the token (cnf x5t#S256)');
  return undefined;
}
