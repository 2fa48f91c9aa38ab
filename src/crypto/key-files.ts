import type { JWK } from 'jose';
import { ConfigError } from '../core/errors.js';
import { parseJsonFile, readConfigFile } from '../core/files.js';

// Reading key material from disk for the keys this service signs or encrypts with.
// Messages name the config path and the file, never the file's content.

export type KeyFileContent =
  { readonly kind: 'jwk'; readonly jwk: JWK } | { readonly kind: 'pem'; readonly pem: string };

function readBytes(file: string, baseDir: string, where: string): Buffer {
  const bytes = readConfigFile(where, file, baseDir);
  if (typeof bytes === 'string') throw new ConfigError([bytes]);
  return bytes;
}

/** A key file: a JWK (JSON object) or PEM text. */
export function readKeyFile(file: string, baseDir: string, where: string): KeyFileContent {
  const text = readBytes(file, baseDir, where).toString('utf8').trim();
  if (text.startsWith('{')) {
    const doc = parseJsonFile(where, file, text, 'a JWK');
    if (typeof doc === 'string') throw new ConfigError([doc]);
    const parsed = doc.json;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError([`${where}: ${file} must hold a JWK object`]);
    }
    const jwk = parsed as JWK;
    if ('keys' in jwk) {
      throw new ConfigError([`${where}: ${file} is a JWK Set; give a single JWK`]);
    }
    if (typeof jwk.kty !== 'string') {
      throw new ConfigError([`${where}: ${file} is not a JWK (no "kty")`]);
    }
    if (jwk.kid !== undefined && (typeof jwk.kid !== 'string' || jwk.kid === '' || jwk.kid.length > 256)) {
      throw new ConfigError([
        `${where}: "kid" in ${file} must be a non-empty string of at most 256 characters`,
      ]);
    }
    return { kind: 'jwk', jwk };
  }
  if (text.includes('-----BEGIN ')) return { kind: 'pem', pem: text };
  throw new ConfigError([`${where}: ${file} is neither a JWK (JSON) nor a PEM file`]);
}

/** A secret file: its raw bytes with exactly one trailing newline ("\n" or "\r\n") removed. */
export function readSecretFile(file: string, baseDir: string, where: string): Buffer {
  const bytes = readBytes(file, baseDir, where);
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0a) {
    end -= 1;
    if (end > 0 && bytes[end - 1] === 0x0d) end -= 1;
  }
  return bytes.subarray(0, end);
}

/** The bytes of an `oct` JWK's `k`. */
export function octBytes(jwk: JWK, where: string): Buffer {
  if (typeof jwk.k !== 'string' || !/^[A-Za-z0-9_-]*$/.test(jwk.k)) {
    throw new ConfigError([`${where}: "oct" JWK needs "k" as a base64url string`]);
  }
  return Buffer.from(jwk.k, 'base64url');
}
