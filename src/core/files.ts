import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

// Reading the key and certificate files a configuration names (JWK, JWKS, PEM keys and
// X.509 certificates) when it is loaded or checked: one reader and one set of messages for
// the listeners' TLS files, the signing and encryption keys and the token endpoint's
// client keys. A message names the config path (`where`) and the file as written in the
// config, never the file's content. (The key sources of `issuers` reload their files in
// the background and report through their status instead: authn/keys/local-source.ts.)

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a folder, not a file',
  ENOTDIR: 'a part of the path is not a folder',
  ELOOP: 'too many symbolic links',
  EMFILE: 'too many open files',
};

/** Why a file could not be read, in words (`no such file`), else the errno code or message. */
export function fileErrorText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return (code && ERRNO_TEXT[code]) ?? code ?? (err as Error).message;
}

/** `<where>: cannot read <file>: <why>`. */
export function cannotReadProblem(where: string, file: string, err: unknown): string {
  return `${where}: cannot read ${file}: ${fileErrorText(err)}`;
}

/** A config file's bytes (a relative path against baseDir), or its problem. */
export function readConfigFile(where: string, file: string, baseDir: string): Buffer | string {
  try {
    return readFileSync(resolve(baseDir, file));
  } catch (err) {
    return cannotReadProblem(where, file, err);
  }
}

/** The parsed JSON text of a file, or `<where>: <file> is not valid JSON` (what was expected, when given). */
export function parseJsonFile(
  where: string,
  file: string,
  text: string,
  expected?: string,
): { readonly json: unknown } | string {
  try {
    return { json: JSON.parse(text) as unknown };
  } catch {
    return `${where}: ${file} is not valid JSON${expected ? ` (expected ${expected})` : ''}`;
  }
}

/** A PEM (or DER) X.509 certificate, or `<where>: <file> is not a PEM certificate`. */
export function parseCertificateFile(where: string, file: string, bytes: Buffer): X509Certificate | string {
  try {
    return new X509Certificate(bytes);
  } catch {
    return `${where}: ${file} is not a PEM certificate`;
  }
}
