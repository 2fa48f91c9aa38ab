import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import YAML from 'yaml';
import { deny, type Deny } from '../core/decision.js';
import { ConfigError } from '../core/errors.js';
import { isPlainObject } from '../core/objects.js';
import type { Principal } from '../core/request.js';
import { msToSeconds } from '../core/time.js';
import type { Logger } from '../observability/logger.js';
import { fsReason, isMissing } from './keys/local-source.js';

// API keys (api_keys): a key source names a header or query parameter and a file of
// accepted keys. The file holds only SHA-256 hashes of the keys: keys are long random
// strings, so a fast hash is enough. A key is looked up by its hash in a Map, and the
// digests are then compared in constant time. A key is never logged; its entry's id is.

/** What `keygen --api-key` puts before the random part, so a leaked key is recognisable. */
export const API_KEY_PREFIX = 'ejak_';
/** Longer values are not hashed (no key we issue comes near). */
const MAX_API_KEY_LENGTH = 1024;
const HASH_PREFIX = 'sha256:';
const ENTRY_KEYS = new Set(['id', 'hash', 'sub', 'scopes', 'claims', 'expires_at', 'disabled']);

/** `sha256:<base64url>` of a key, as a keys file lists it. */
export function apiKeyHash(key: string): string {
  return HASH_PREFIX + createHash('sha256').update(key, 'utf8').digest('base64url');
}

/** A new key (32 random bytes, base64url, with API_KEY_PREFIX) and the hash to list for it. */
export function generateApiKey(): { key: string; hash: string } {
  const key = API_KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, hash: apiKeyHash(key) };
}

interface ApiKeyEntry {
  readonly id: string;
  readonly digest: Buffer;
  /** epoch seconds; undefined: never expires */
  readonly expiresAt?: number;
  readonly disabled: boolean;
  readonly principal: Principal;
}

/** A key's verdict: the principal of its entry, or why it is refused (401 invalid_token). */
export type ApiKeyResult = { readonly principal: Principal } | { readonly deny: Deny };

/** What the Check pipeline asks of an API key source (see CompiledTokenSource). */
export interface ApiKeyLookup {
  readonly name: string;
  check(key: string, now: number): ApiKeyResult;
}

/** The entries of a keys file by hash (base64url of the digest); throws the problems, each naming the entry. */
export function parseApiKeys(
  text: string,
  sourceName: string,
  generation: number,
): { entries: Map<string, ApiKeyEntry>; problems: string[] } {
  const problems: string[] = [];
  const entries = new Map<string, ApiKeyEntry>();
  let doc: unknown;
  try {
    // YAML is a superset of JSON: one parser reads both.
    doc = YAML.parse(text, { uniqueKeys: true, maxAliasCount: 0 });
  } catch (err) {
    return { entries, problems: [`not valid YAML or JSON (${(err as Error).message.split('\n')[0]})`] };
  }
  const list = Array.isArray(doc) ? doc : isPlainObject(doc) ? doc.keys : undefined;
  if (!Array.isArray(list) || (isPlainObject(doc) && Object.keys(doc).some((k) => k !== 'keys')))
    return { entries, problems: ['must be a list of keys, or an object with one "keys" list'] };
  const ids = new Set<string>();
  list.forEach((raw: unknown, i) => {
    const id = isPlainObject(raw) && typeof raw.id === 'string' ? raw.id : undefined;
    const at = `keys[${i}]${id !== undefined ? ` (id "${id}")` : ''}`;
    if (!isPlainObject(raw)) {
      problems.push(`${at}: must be an object`);
      return;
    }
    const before = problems.length;
    for (const k of Object.keys(raw))
      if (!ENTRY_KEYS.has(k))
        problems.push(`${at}.${k}: unknown key (allowed: ${[...ENTRY_KEYS].join(', ')})`);
    if (id === undefined || id.length === 0) problems.push(`${at}.id: must be a non-empty string`);
    else if (ids.has(id)) problems.push(`${at}.id: duplicate id "${id}"`);
    else ids.add(id);
    const hash = raw.hash;
    let digest: Buffer | undefined;
    if (typeof hash === 'string' && hash.startsWith(HASH_PREFIX)) {
      const b64 = hash.slice(HASH_PREFIX.length);
      const bytes = Buffer.from(b64, 'base64url');
      if (bytes.length === 32 && bytes.toString('base64url') === b64) digest = bytes;
    }
    if (!digest)
      problems.push(`${at}.hash: must be "sha256:" and the base64url SHA-256 of the key (43 characters)`);
    else if (entries.has(digest.toString('base64url')))
      problems.push(`${at}.hash: the same hash is listed twice`);
    if (typeof raw.sub !== 'string' || raw.sub.length === 0)
      problems.push(`${at}.sub: must be a non-empty string`);
    const scopes = raw.scopes ?? [];
    if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== 'string' || s === '' || /\s/.test(s)))
      problems.push(`${at}.scopes: must be a list of scope names (no spaces)`);
    const claims = raw.claims ?? {};
    if (!isPlainObject(claims)) problems.push(`${at}.claims: must be an object`);
    let expiresAt: number | undefined;
    if (raw.expires_at !== undefined) {
      const e = raw.expires_at;
      expiresAt =
        typeof e === 'number'
          ? e
          : typeof e === 'string'
            ? msToSeconds(Date.parse(e))
            : e instanceof Date
              ? msToSeconds(e.getTime())
              : NaN;
      if (!Number.isFinite(expiresAt))
        problems.push(`${at}.expires_at: must be a date (ISO 8601) or seconds since the epoch`);
    }
    if (raw.disabled !== undefined && typeof raw.disabled !== 'boolean')
      problems.push(`${at}.disabled: must be true or false`);
    if (problems.length > before || !digest) return;
    const scopeList = scopes as string[];
    const sub = raw.sub as string;
    const local: Record<string, unknown> = Object.assign(Object.create(null), claims);
    local.sub = sub;
    if (scopeList.length > 0) local.scope = scopeList.join(' ');
    const key = digest.toString('base64url');
    entries.set(key, {
      id: id!,
      digest,
      disabled: raw.disabled === true,
      ...(expiresAt !== undefined ? { expiresAt } : {}),
      principal: {
        issuer: sourceName,
        sub,
        claims: local,
        scopes: new Set(scopeList),
        scope: scopeList.join(' '),
        ...(expiresAt !== undefined ? { exp: Math.floor(expiresAt) } : {}),
        // Changes when the file does: derived values (a minted token) follow the entry.
        cacheKey: `apikey\0${sourceName}\0${generation}\0${key}`,
      },
    });
  });
  return { entries, problems };
}

export interface ApiKeyFileOptions {
  readonly logger: Logger;
  /** How often the file is stat()ed for changes. Default 1000. */
  readonly pollIntervalMs?: number;
}

/**
 * One `api_keys[]` entry: the keys of its keys_file, read when built (a file that cannot
 * be read or parsed is a ConfigError naming the field, the file and the entry) and read
 * again when it changes. A changed file that does not parse keeps the old keys (logged);
 * a removed file withdraws every key.
 */
export class ApiKeyFile implements ApiKeyLookup {
  private entries: Map<string, ApiKeyEntry>;
  private readonly path: string;
  private signature: string;
  private generation = 1;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(
    readonly name: string,
    /** config path of the keys_file field, for messages */
    field: string,
    private readonly file: string,
    baseDir: string,
    private readonly opts: ApiKeyFileOptions,
  ) {
    this.path = resolve(baseDir, file);
    let text: string;
    try {
      this.signature = signatureOf(statSync(this.path));
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      throw new ConfigError([`${field}: cannot read ${file} (${fsReason(err)})`]);
    }
    const { entries, problems } = parseApiKeys(text, name, this.generation);
    if (problems.length > 0) throw new ConfigError(problems.map((p) => `${field}: ${file}: ${p}`));
    this.entries = entries;
    opts.logger.info({ api_keys: name, keys: entries.size }, 'api keys loaded');
  }

  get size(): number {
    return this.entries.size;
  }

  check(key: string, now: number): ApiKeyResult {
    if (key.length > MAX_API_KEY_LENGTH) return { deny: UNKNOWN_KEY(this.name) };
    const digest = createHash('sha256').update(key, 'utf8').digest();
    const entry = this.entries.get(digest.toString('base64url'));
    if (!entry || !timingSafeEqual(entry.digest, digest)) return { deny: UNKNOWN_KEY(this.name) };
    if (entry.disabled)
      return {
        deny: deny('token_revoked', 'the API key is disabled', {
          issuer: this.name,
          logDetail: `api key "${entry.id}" is disabled`,
        }),
      };
    if (entry.expiresAt !== undefined && entry.expiresAt <= now)
      return {
        deny: deny('token_expired', 'the API key has expired', {
          issuer: this.name,
          logDetail: `api key "${entry.id}" has expired`,
        }),
      };
    return { principal: entry.principal };
  }

  /** Starts watching the file for changes. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll(), this.opts.pollIntervalMs ?? 1000);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      await this.reloadIfChanged();
    } finally {
      this.polling = false;
    }
  }

  /** Reads the file again when its stat() signature changed. */
  async reloadIfChanged(): Promise<void> {
    const { logger } = this.opts;
    const fields = { api_keys: this.name, file: this.file };
    let sig: string;
    try {
      sig = signatureOf(await stat(this.path));
    } catch (err) {
      sig = `missing:${fsReason(err)}`;
    }
    if (sig === this.signature) return;
    this.signature = sig;
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (isMissing(err)) {
        if (this.entries.size > 0)
          logger.warn(fields, 'keys_file removed; its api keys are no longer accepted');
        this.entries = new Map();
        this.generation++;
        return;
      }
      logger.error({ ...fields, reason: fsReason(err) }, 'api keys reload failed; keeping the previous keys');
      return;
    }
    const { entries, problems } = parseApiKeys(text, this.name, this.generation + 1);
    if (problems.length > 0) {
      logger.error({ ...fields, problems }, 'api keys reload failed; keeping the previous keys');
      return;
    }
    this.generation++;
    this.entries = entries;
    logger.info({ api_keys: this.name, keys: entries.size }, 'api keys reloaded');
  }
}

function signatureOf(st: { ino: number; size: number; mtimeMs: number; ctimeMs: number }): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

function UNKNOWN_KEY(name: string): Deny {
  return deny('token_inactive', 'the API key is not valid', { issuer: name });
}
