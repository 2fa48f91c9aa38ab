import { buildKeySet, KeySetError } from './jwk.js';
import {
  KeyLoadError,
  LocalKeySource,
  SingleFileKeySource,
  type LocalSourceOptions,
} from './local-source.js';
import type { KeySet } from './types.js';

function checkedKeySet(jwks: unknown, opts: LocalSourceOptions, what: string): KeySet {
  let set: KeySet;
  try {
    set = buildKeySet(jwks, { issuer: opts.issuer, logger: opts.logger });
  } catch (err) {
    if (err instanceof KeySetError) throw new KeyLoadError(`${what}: ${err.reason}`);
    throw err;
  }
  if (set.keys.length === 0) throw new KeyLoadError(`${what}: no usable keys`);
  return set;
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
    return Promise.resolve(checkedKeySet(this.jwks, this.opts, 'jwks'));
  }
}

/** A JWKS file (`jwks_file`), reloaded when it changes. An invalid new version keeps the old keys. */
export class JwksFileKeySource extends SingleFileKeySource {
  readonly kind = 'jwks-file' as const;

  constructor(file: string, baseDir: string, opts: LocalSourceOptions) {
    super(file, baseDir, opts, 'jwks_file');
  }

  protected async load(): Promise<KeySet> {
    const text = (await this.readBytes()).toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new KeyLoadError(`jwks_file ${this.file}: invalid json`);
    }
    return checkedKeySet(json, this.opts, `jwks_file ${this.file}`);
  }
}
