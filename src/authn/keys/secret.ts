import { createSecretKey } from 'node:crypto';
import { EMPTY_KEY_SET, makeKeySet } from './jwk.js';
import { KeyLoadError, SingleFileKeySource, type LocalSourceOptions } from './local-source.js';
import type { KeySet } from './key-source.js';

/** RFC 7518 §3.2: an HMAC key must be at least as long as the hash output (HS256: 32 bytes). */
export const MIN_SECRET_BYTES = 32;

/** The file's bytes with exactly one trailing newline (`\n` or `\r\n`) removed. */
export function stripOneTrailingNewline(bytes: Buffer): Buffer {
  if (bytes.length >= 2 && bytes[bytes.length - 2] === 0x0d && bytes[bytes.length - 1] === 0x0a) {
    return bytes.subarray(0, bytes.length - 2);
  }
  if (bytes.length >= 1 && bytes[bytes.length - 1] === 0x0a) return bytes.subarray(0, bytes.length - 1);
  return bytes;
}

/**
 * A shared HMAC secret (`secret_file`), the only source that yields an `oct` key. The key
 * has no kid: every HS* token of this issuer is checked against it. Reloaded when the
 * file changes; deleting the file withdraws the secret, while a file too short to be a
 * secret (say, caught half-written) keeps the previous one.
 */
export class SecretKeySource extends SingleFileKeySource {
  readonly kind = 'secret' as const;

  constructor(file: string, baseDir: string, opts: LocalSourceOptions) {
    super(file, baseDir, opts, 'secret_file');
  }

  protected async load(): Promise<KeySet> {
    const bytes = await this.readBytes();
    if (!bytes) return EMPTY_KEY_SET;
    const secret = stripOneTrailingNewline(bytes);
    if (secret.length < MIN_SECRET_BYTES) {
      throw new KeyLoadError(`secret_file ${this.file}: secret must be at least 32 bytes (RFC 7518 §3.2)`);
    }
    // createSecretKey copies the bytes into the KeyObject; wipe the buffer we read.
    const key = createSecretKey(secret);
    bytes.fill(0);
    return Object.freeze({ ...makeKeySet([Object.freeze({ kty: 'oct' as const, key })]), ignoresKid: true });
  }
}
