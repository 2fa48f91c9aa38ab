import { buildKeySet, EMPTY_KEY_SET, KeySetError } from './jwk.js';
import {
  KeyLoadError,
  LocalKeySource,
  SingleFileKeySource,
  type LocalSourceOptions,
} from './local-source.js';
import type { KeySet } from './key-source.js';

/** The keys of a well-formed JWKS (possibly none); a document that is not a JWKS is a KeyLoadError. */
function wellFormedKeySet(jwks: unknown, opts: LocalSourceOptions, what: string): KeySet {
  try {
    return buildKeySet(jwks, { issuer: opts.issuer, logger: opts.logger });
  } catch (err) {
    if (err instanceof KeySetError) throw new KeyLoadError(`${what}: ${err.reason}`);
    throw err;
  }
}

/** Keys written inline in the config (`jwks: { keys: [...] }`). Static. */
export class InlineJwksKeySource extends LocalKeySource {
  readonly kind = 'local-jwks' as const;

  constructor(
    private readonly jwks: unknown,
    opts: LocalSourceOptions,
  ) {
    super(opts);
  }

  protected load(): Promise<KeySet> {
    // Fixed in the config: a set without usable keys is a mistake to report, not a removal.
    const set = wellFormedKeySet(this.jwks, this.opts, 'jwks');
    if (set.keys.length === 0) return Promise.reject(new KeyLoadError('jwks: no usable keys'));
    return Promise.resolve(set);
  }
}

/**
 * A JWKS file (`jwks_file`), reloaded when it changes. A new version that is not a JWKS
 * (invalid JSON, no `keys` list) keeps the old keys; a well-formed one replaces them even
 * when it holds no usable key (`{"keys":[]}` withdraws trust), and so does removing the file.
 */
export class JwksFileKeySource extends SingleFileKeySource {
  readonly kind = 'jwks-file' as const;

  constructor(file: string, baseDir: string, opts: LocalSourceOptions) {
    super(file, baseDir, opts, 'jwks_file');
  }

  protected async load(): Promise<KeySet> {
    const bytes = await this.readBytes();
    if (!bytes) return EMPTY_KEY_SET;
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new KeyLoadError(`jwks_file ${this.file}: invalid json`);
    }
    return wellFormedKeySet(json, this.opts, `jwks_file ${this.file}`);
  }
}
