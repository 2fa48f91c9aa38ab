import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InlineJwksKeySource, JwksFileKeySource } from '../../../../src/authn/keys/local-jwks.js';
import { generateEcKeyPair, generateRsaKeyPair, makeJwks } from '../../../helpers/keys.js';
import { captureLogger } from '../../../helpers/logger.js';

const k1 = generateRsaKeyPair({ kid: 'k1' });
const k2 = generateEcKeyPair({ kid: 'k2' });
// Real waits below: the watcher stats real files on disk.
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

let dir: string;
const sources: { close(): void }[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'jwks-file-'));
});
afterEach(() => {
  for (const s of sources.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('inline jwks', () => {
  it('loads the keys statically', async () => {
    const log = captureLogger();
    const src = new InlineJwksKeySource(makeJwks(k1, k2), { issuer: 'inline', logger: log.logger });
    sources.push(src);
    expect(src.kind).toBe('local-jwks');
    expect(src.status().state).toBe('loading');
    await src.start();
    expect(src.status()).toMatchObject({ state: 'ready', keys: 2, loaded: true });
    expect(src.generation).toBe(1);
    expect(await src.refreshForUnknownKid()).toBe(src.current());
  });

  it('an unusable inline JWKS is a status error', async () => {
    const log = captureLogger();
    const bad = new InlineJwksKeySource(
      { keys: [{ kty: 'oct', k: 'AAAA' }] },
      { issuer: 'i', logger: log.logger },
    );
    sources.push(bad);
    await bad.start();
    expect(bad.status()).toMatchObject({ state: 'error', lastError: 'jwks: no usable keys' });
    expect(bad.current()).toBeUndefined();
  });
});

describe('jwks_file', () => {
  function fileSource(file = 'idp-jwks.json') {
    const log = captureLogger();
    const src = new JwksFileKeySource(file, dir, {
      issuer: 'file-idp',
      logger: log.logger,
      pollIntervalMs: 50,
    });
    sources.push(src);
    return { src, log };
  }

  it('loads a file relative to baseDir', async () => {
    writeFileSync(join(dir, 'idp-jwks.json'), JSON.stringify(makeJwks(k1)));
    const { src } = fileSource('./idp-jwks.json');
    expect(src.kind).toBe('jwks-file');
    await src.start();
    expect(src.status()).toMatchObject({ state: 'ready', keys: 1 });
    expect(src.current()!.byKid.has('k1')).toBe(true);
  });

  it('reloads when the file changes; generation increments', async () => {
    const path = join(dir, 'idp-jwks.json');
    writeFileSync(path, JSON.stringify(makeJwks(k1)));
    const { src } = fileSource();
    await src.start();
    expect(src.generation).toBe(1);
    writeFileSync(path, JSON.stringify(makeJwks(k1, k2)));
    await until(() => src.current()!.byKid.has('k2'));
    expect(src.generation).toBe(2);
    expect(src.status().state).toBe('ready');
  });

  it('an invalid new file keeps the old keys, with an error log, until a valid one arrives', async () => {
    const path = join(dir, 'idp-jwks.json');
    writeFileSync(path, JSON.stringify(makeJwks(k1)));
    const { src, log } = fileSource();
    await src.start();
    const before = src.current();
    writeFileSync(path, '{"keys": [ broken');
    await until(() => src.status().lastError !== undefined);
    expect(src.current()).toBe(before);
    expect(src.status()).toMatchObject({
      state: 'stale',
      keys: 1,
      lastError: 'jwks_file idp-jwks.json: invalid json',
    });
    expect(src.generation).toBe(1);
    const line = log.lines.find((l) => l.level === 'error');
    expect(line).toMatchObject({ issuer: 'file-idp', msg: 'key reload failed; keeping the previous keys' });

    writeFileSync(path, JSON.stringify(makeJwks(k2)));
    await until(() => src.status().state === 'ready');
    expect(src.current()!.byKid.has('k2')).toBe(true);
    expect(src.generation).toBe(2);
  });

  it('a missing file at start is a status error with a clear message; creating it later loads it', async () => {
    const { src } = fileSource('missing.json');
    await src.start();
    expect(src.status()).toMatchObject({
      state: 'error',
      loaded: true,
      lastError: 'jwks_file missing.json: cannot read (ENOENT)',
    });
    expect(src.current()).toBeUndefined();
    writeFileSync(join(dir, 'missing.json'), JSON.stringify(makeJwks(k1)));
    await until(() => src.status().state === 'ready');
  });

  it('an invalid file at start is a status error', async () => {
    writeFileSync(join(dir, 'idp-jwks.json'), JSON.stringify({ not: 'a jwks' }));
    const { src } = fileSource();
    await src.start();
    expect(src.status()).toMatchObject({
      state: 'error',
      lastError: 'jwks_file idp-jwks.json: JWKS has no "keys" list',
    });
  });

  it('close() stops watching', async () => {
    // The poll interval is a timer: faked, so close() is seen to leave none behind.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const path = join(dir, 'idp-jwks.json');
      writeFileSync(path, JSON.stringify(makeJwks(k1)));
      const { src } = fileSource();
      await src.start();
      expect(vi.getTimerCount()).toBe(1);
      src.close();
      expect(vi.getTimerCount()).toBe(0);
      writeFileSync(path, JSON.stringify(makeJwks(k1, k2)));
      await vi.advanceTimersByTimeAsync(300);
      expect(src.current()!.byKid.has('k2')).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('jwks_file: removing a key removes trust', () => {
  function loaded() {
    const path = join(dir, 'idp-jwks.json');
    writeFileSync(path, JSON.stringify(makeJwks(k1, k2)));
    const log = captureLogger();
    // No polling here: reload() is what the poller calls when the file changes.
    const src = new JwksFileKeySource('idp-jwks.json', dir, { issuer: 'file-idp', logger: log.logger });
    sources.push(src);
    return { src, log, path };
  }

  it.each([
    ['{"keys":[]}', { keys: [] }],
    [
      'only unusable keys (RSA-1024, use: enc, oct)',
      {
        keys: [
          generateRsaKeyPair({ kid: 'weak', bits: 1024 }).publicJwk,
          { ...k2.publicJwk, use: 'enc' },
          { kty: 'oct', kid: 'sym', k: 'c3VwZXItc2VjcmV0LXZhbHVlLXRoYXQtaXMtbG9uZw' },
        ],
      },
    ],
  ])(
    'a file rewritten to %s withdraws the old keys: empty set, new generation, no_keys, a warning',
    async (_n, jwks) => {
      const { src, log, path } = loaded();
      await src.start();
      expect(src.current()!.keys).toHaveLength(2);
      writeFileSync(path, JSON.stringify(jwks));
      await src.reload();
      expect(src.current()!.keys).toHaveLength(0);
      expect(src.generation).toBe(2);
      expect(src.status()).toMatchObject({ state: 'no_keys', keys: 0, loaded: true });
      expect(src.status().lastError).toBeUndefined();
      expect(log.lines.find((l) => l.level === 'warn' && /no usable keys/.test(String(l.msg)))).toMatchObject(
        {
          issuer: 'file-idp',
          source: 'jwks-file',
        },
      );
      // Keys are back once the file publishes them again.
      writeFileSync(path, JSON.stringify(makeJwks(k1)));
      await src.reload();
      expect(src.status()).toMatchObject({ state: 'ready', keys: 1 });
      expect(src.generation).toBe(3);
    },
  );

  it('a deleted file withdraws the old keys; recreating it restores them', async () => {
    const { src, log, path } = loaded();
    await src.start();
    unlinkSync(path);
    await src.reload();
    expect(src.current()!.keys).toHaveLength(0);
    expect(src.generation).toBe(2);
    expect(src.status()).toMatchObject({ state: 'no_keys', keys: 0 });
    expect(
      log.lines.find((l) => l.msg === 'jwks_file removed; its keys are no longer trusted'),
    ).toMatchObject({
      issuer: 'file-idp',
      file: 'idp-jwks.json',
    });
    writeFileSync(path, JSON.stringify(makeJwks(k2)));
    await src.reload();
    expect(src.current()!.byKid.has('k2')).toBe(true);
  });

  it.each([
    ['invalid JSON', '{"keys": [ broken', 'jwks_file idp-jwks.json: invalid json'],
    ['an empty (truncated) file', '', 'jwks_file idp-jwks.json: invalid json'],
    ['JSON that is not a JWKS', '{"kid":"k1"}', 'jwks_file idp-jwks.json: JWKS has no "keys" list'],
  ])('a file that exists but holds %s keeps the old keys, with an error log', async (_n, text, reason) => {
    const { src, log, path } = loaded();
    await src.start();
    const before = src.current();
    writeFileSync(path, text);
    await src.reload();
    expect(src.current()).toBe(before);
    expect(src.generation).toBe(1);
    expect(src.status()).toMatchObject({ state: 'stale', keys: 2, lastError: reason });
    expect(log.lines.find((l) => l.level === 'error')).toMatchObject({
      issuer: 'file-idp',
      msg: 'key reload failed; keeping the previous keys',
    });
  });

  it('a file holding {"keys":[]} at start is no_keys (an answer), not an error', async () => {
    writeFileSync(join(dir, 'idp-jwks.json'), '{"keys":[]}');
    const log = captureLogger();
    const src = new JwksFileKeySource('idp-jwks.json', dir, { issuer: 'file-idp', logger: log.logger });
    sources.push(src);
    await src.start();
    expect(src.status()).toMatchObject({ state: 'no_keys', keys: 0, loaded: true });
    expect(src.current()!.keys).toHaveLength(0);
  });
});
