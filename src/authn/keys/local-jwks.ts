import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { buildKeySet, KeySetError } from './jwk.js';
import { fsReason, KeyLoadError, LocalKeySource, type LocalSourceOptions } from './local-source.js';
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
export class JwksFileKeySource extends LocalKeySource {
  readonly kind = 'jwks-file' as const;
  private readonly path: string;

  /**
   * @param file path as written in the config (for messages)
   * @param baseDir folder relative paths resolve against
   */
  constructor(
    private readonly file: string,
    baseDir: string,
    opts: LocalSourceOptions,
  ) {
    super(opts);
    this.path = resolve(baseDir, file);
  }

  protected override watchedPaths(): string[] {
    return [this.path];
  }

  protected async load(): Promise<KeySet> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      throw new KeyLoadError(`jwks_file ${this.file}: cannot read (${fsReason(err)})`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new KeyLoadError(`jwks_file ${this.file}: invalid json`);
    }
    return checkedKeySet(json, this.opts, `jwks_file ${this.file}`);
  }
}
