// Server certificates for the listeners (server.grpc_tls, server.http_tls): read,
// checked against each other and against the clock, and turned into the options
// node:tls takes. Problems name the config field; file contents are never echoed.

import { createPrivateKey, type X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseCertificateFile, readConfigFile } from '../core/files.js';
import { systemClock, type Clock } from '../core/time.js';

/** server.grpc_tls / server.http_tls as configured ('' = not set). */
export interface TlsSettings {
  cert_file: string;
  key_file: string;
  client_ca_file: string;
  /** null: true when client_ca_file is set. */
  require_client_cert: boolean | null;
}

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
  /** Ask for a client certificate (client_ca_file set). */
  readonly requestCert: boolean;
  /** Refuse the handshake without a valid client certificate. */
  readonly rejectUnauthorized: boolean;
  readonly notAfter: Date;
}

export function tlsEnabled(s: TlsSettings | undefined): s is TlsSettings {
  return !!s && (s.cert_file !== '' || s.key_file !== '' || s.client_ca_file !== '');
}

function read(field: string, file: string, baseDir: string, problems: string[]): Buffer | undefined {
  const bytes = readConfigFile(field, file, baseDir);
  if (typeof bytes !== 'string') return bytes;
  problems.push(bytes);
  return undefined;
}

/** The certificate in `bytes`; undefined (its problem on `problems`) when it is not one. */
function certificate(
  field: string,
  file: string,
  bytes: Buffer,
  problems: string[],
): X509Certificate | undefined {
  const cert = parseCertificateFile(field, file, bytes);
  if (typeof cert !== 'string') return cert;
  problems.push(cert);
  return undefined;
}

/**
 * Reads and checks the files of one listener's TLS settings. Returns the material,
 * or the problems (each naming its field) when a file is unreadable, not PEM, the
 * key does not belong to the certificate, or the certificate has expired.
 */
export function loadTlsMaterial(
  field: string,
  s: TlsSettings,
  baseDir: string,
  clock: Clock = systemClock,
): { material?: TlsMaterial; problems: string[] } {
  const problems: string[] = [];
  if (s.cert_file === '') problems.push(`${field}.cert_file: required when ${field} is set`);
  if (s.key_file === '') problems.push(`${field}.key_file: required when ${field} is set`);
  if (problems.length) return { problems };
  const cert = read(`${field}.cert_file`, s.cert_file, baseDir, problems);
  const key = read(`${field}.key_file`, s.key_file, baseDir, problems);
  const ca = s.client_ca_file
    ? read(`${field}.client_ca_file`, s.client_ca_file, baseDir, problems)
    : undefined;
  const x509 = cert && certificate(`${field}.cert_file`, s.cert_file, cert, problems);
  if (key) {
    try {
      const privateKey = createPrivateKey(key);
      if (x509 && !x509.checkPrivateKey(privateKey))
        problems.push(`${field}.key_file: ${s.key_file} is not the key of the certificate in cert_file`);
    } catch {
      problems.push(`${field}.key_file: ${s.key_file} is not a PEM private key (unencrypted)`);
    }
  }
  if (x509) {
    const notAfter = new Date(x509.validTo);
    if (notAfter.getTime() <= clock.nowMs())
      problems.push(`${field}.cert_file: the certificate expired at ${notAfter.toISOString()}`);
  }
  if (ca) certificate(`${field}.client_ca_file`, s.client_ca_file, ca, problems);
  if (problems.length || !cert || !key || !x509) return { problems };
  const requestCert = ca !== undefined;
  return {
    problems,
    material: {
      cert,
      key,
      ...(ca ? { ca } : {}),
      requestCert,
      rejectUnauthorized: requestCert && s.require_client_cert !== false,
      notAfter: new Date(x509.validTo),
    },
  };
}

/** A fingerprint of the files' mtimes and sizes: changes when any of them is replaced. */
export function tlsFilesStamp(s: TlsSettings, baseDir: string): string {
  return [s.cert_file, s.key_file, s.client_ca_file]
    .filter((f) => f !== '')
    .map((f) => {
      try {
        const st = statSync(resolve(baseDir, f));
        return `${st.mtimeMs}:${st.size}:${st.ino}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}
