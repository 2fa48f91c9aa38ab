import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { errorReason } from '../../net/safe-fetch.js';
import { keySetFingerprint } from './jwk.js';
import { keySourceStatus, type KeySet, type KeySource, type KeySourceStatus } from './key-source.js';
import { systemClock, type Clock, type EpochMs } from '../../core/time.js';
import { AuthzError } from '../../core/errors.js';

/** A key-loading failure with a short reason that is safe to log and report. */
export class KeyLoadError extends AuthzError {
  readonly code = 'ERR_KEYS_LOAD_FAILED';

  constructor(readonly reason: string) {
    super(reason);
    this.name = 'KeyLoadError';
  }
}

/** Short description of a file-system error: `ENOENT`, `EACCES`, … */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code ?? errorReason(err);
}

/** The path is not there (as opposed to unreadable): what deleting a file or folder looks like. */
export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export interface LocalSourceOptions {
  /** Issuer name (label for logs and metrics). */
  readonly issuer: string;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** How often watched files are stat()ed for changes. Default 1000. */
  readonly pollIntervalMs?: number;
  /** Reload unconditionally this often (0 = never). */
  readonly reloadIntervalMs?: number;
  /** For tests. */
  readonly clock?: Clock;
}

/**
 * Shared machinery for keys that come from the config or local files: load on start,
 * reload when a watched file changes (or periodically). A reload that fails (a file that
 * exists but does not parse, an unreadable file) keeps the old keys; a reload that
 * succeeds replaces them, even with an empty set (keys that were removed are no longer
 * trusted). Local keys never go stale with time.
 */
export abstract class LocalKeySource implements KeySource {
  abstract readonly kind: KeySource['kind'];
  private keySet: KeySet | undefined;
  private fingerprint: string | undefined;
  private gen = 0;
  private loaded = false;
  private lastError: string | undefined;
  private lastSuccessAt: EpochMs | undefined;
  private startPromise: Promise<void> | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;
  private closed = false;
  /** stat() signatures of the watched paths, taken just before the last load. */
  private signatures: string[] = [];
  private polling = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;

  protected readonly clock: Clock;

  constructor(protected readonly opts: LocalSourceOptions) {
    this.clock = opts.clock ?? systemClock;
  }

  /** Loads the keys; throws (preferably a KeyLoadError) when they are unusable. */
  protected abstract load(): Promise<KeySet>;
  /** Files whose change triggers a reload. */
  protected watchedPaths(): string[] {
    return [];
  }

  get generation(): number {
    return this.gen;
  }

  /**
   * Keys were loaded before. A source file or folder that disappears afterwards was
   * removed (its keys lose trust); one missing from the start is a load error instead,
   * most likely a wrong path.
   */
  protected get hasLoadedKeys(): boolean {
    return this.keySet !== undefined;
  }

  start(): Promise<void> {
    this.startPromise ??= this.reload().then(() => this.watch());
    return this.startPromise;
  }

  current(): KeySet | undefined {
    return this.keySet;
  }

  refreshForUnknownKid(): KeySet | undefined {
    return this.keySet;
  }

  status(): KeySourceStatus {
    return keySourceStatus(this.loaded, this.keySet, this.lastError, this.lastSuccessAt);
  }

  close(): void {
    this.closed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.timer) clearInterval(this.timer);
    this.pollTimer = undefined;
    this.timer = undefined;
  }

  /** Reloads now (serialized: a reload requested during another runs right after it). */
  reload(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.reloadAgain = false;
        await this.loadOnce();
      } while (this.reloadAgain && !this.closed);
    })().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async loadOnce(): Promise<void> {
    const { issuer, logger, metrics } = this.opts;
    try {
      // Taken before reading: a change that lands during the load shows up at the next poll.
      this.signatures = await this.statSignatures();
      const set = await this.load();
      const fp = keySetFingerprint(set);
      if (fp !== this.fingerprint) {
        this.fingerprint = fp;
        this.gen++;
        if (set.keys.length === 0) {
          logger.warn(
            { issuer, source: this.kind, keys: 0 },
            "no usable keys; the issuer's tokens are refused until keys are back",
          );
        } else {
          logger.info(
            { issuer, source: this.kind, keys: set.keys.length },
            this.keySet ? 'keys reloaded' : 'keys loaded',
          );
        }
      }
      this.keySet = set;
      this.lastError = undefined;
      this.lastSuccessAt = this.clock.nowMs();
      metrics?.jwksKeys.set({ issuer }, set.keys.length);
    } catch (err) {
      this.lastError = errorReason(err);
      logger.error(
        { issuer, source: this.kind, reason: this.lastError },
        this.keySet ? 'key reload failed; keeping the previous keys' : 'keys could not be loaded',
      );
    } finally {
      this.loaded = true;
    }
  }

  private async statSignatures(): Promise<string[]> {
    return Promise.all(
      this.watchedPaths().map(async (path) => {
        try {
          const st = await stat(path);
          return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
        } catch (err) {
          return `missing:${fsReason(err)}`;
        }
      }),
    );
  }

  /** Polls the watched paths (stat, like fs.watchFile, but compared with the state that was loaded). */
  private async poll(): Promise<void> {
    if (this.polling || this.reloading || this.closed) return;
    this.polling = true;
    try {
      const now = await this.statSignatures();
      if (now.some((sig, i) => sig !== this.signatures[i])) await this.reload();
    } finally {
      this.polling = false;
    }
  }

  private watch(): void {
    if (this.closed) return;
    if (this.watchedPaths().length > 0) {
      this.pollTimer = setInterval(() => void this.poll(), this.opts.pollIntervalMs ?? 1000);
      this.pollTimer.unref();
    }
    const every = this.opts.reloadIntervalMs ?? 0;
    if (every > 0) {
      this.timer = setInterval(() => void this.reload(), every);
      this.timer.unref();
    }
  }
}

/** A local source backed by one file (`jwks_file`, `secret_file`), reloaded when it changes. */
export abstract class SingleFileKeySource extends LocalKeySource {
  protected readonly path: string;

  /**
   * @param file path as written in the config (for messages)
   * @param baseDir folder relative paths resolve against
   * @param label the config key, for messages (`jwks_file`, `secret_file`)
   */
  constructor(
    protected readonly file: string,
    baseDir: string,
    opts: LocalSourceOptions,
    protected readonly label: string,
  ) {
    super(opts);
    this.path = resolve(baseDir, file);
  }

  protected override watchedPaths(): string[] {
    return [this.path];
  }

  /**
   * The file's bytes, or undefined when the file was removed after keys had been loaded
   * from it. Any other read failure is a KeyLoadError naming the config key and path.
   */
  protected async readBytes(): Promise<Buffer | undefined> {
    try {
      return await readFile(this.path);
    } catch (err) {
      if (isMissing(err) && this.hasLoadedKeys) {
        this.opts.logger.warn(
          { issuer: this.opts.issuer, source: this.kind, file: this.file },
          `${this.label} removed; its keys are no longer trusted`,
        );
        return undefined;
      }
      throw new KeyLoadError(`${this.label} ${this.file}: cannot read (${fsReason(err)})`);
    }
  }
}
