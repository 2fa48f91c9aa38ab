import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SecretKeySource, stripOneTrailingNewline } from '../../../../src/authn/keys/secret.js';
import { verifyJwt, type CompiledIssuer } from '../../../../src/authn/verify.js';
import { captureLogger } from '../../../helpers/logger.js';
import { forgeToken, standardClaims } from '../../../helpers/tokens.js';

const SECRET = '0123456789abcdef0123456789abcdef'; // 32 bytes

let dir: string;
const sources: SecretKeySource[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'secret-'));
});
afterEach(() => {
  for (const s of sources.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function load(content: string | Buffer) {
  writeFileSync(join(dir, 'shared.secret'), content);
  const log = captureLogger();
  const src = new SecretKeySource('./shared.secret', dir, { issuer: 'hmac', logger: log.logger });
  sources.push(src);
  await src.start();
  return { src, log };
}

describe('stripOneTrailingNewline', () => {
  it.each([
    ['abc\n', 'abc'],
    ['abc\r\n', 'abc'],
    ['abc\n\n', 'abc\n'],
    ['abc\r\n\r\n', 'abc\r\n'],
    ['abc\r', 'abc\r'],
    ['abc', 'abc'],
    ['\n', ''],
    ['', ''],
  ])('%j → %j', (input, out) => {
    expect(stripOneTrailingNewline(Buffer.from(input)).toString()).toBe(out);
  });
});

describe('secret_file', () => {
  it('yields one oct key made of the file bytes, one trailing newline removed', async () => {
    for (const suffix of ['', '\n', '\r\n']) {
      const { src } = await load(SECRET + suffix);
      expect(src.kind).toBe('secret');
      expect(src.status()).toMatchObject({ state: 'ready', keys: 1 });
      const k = src.current()!.keys[0]!;
      expect(k.kty).toBe('oct');
      expect(k.kid).toBeUndefined();
      expect(k.key.type).toBe('secret');
      expect(k.key.export().toString()).toBe(SECRET);
    }
  });

  it('only one newline is removed: the second one is part of the secret', async () => {
    const { src } = await load(`${SECRET}\n\n`);
    expect(src.current()!.keys[0]!.key.export().toString()).toBe(`${SECRET}\n`);
  });

  it('keeps binary bytes as they are', async () => {
    const bytes = Buffer.from(Array.from({ length: 40 }, (_, i) => (i * 37) % 256));
    const { src } = await load(bytes);
    expect(src.current()!.keys[0]!.key.export().equals(bytes)).toBe(true);
  });

  it('a secret shorter than 32 bytes (after the newline is removed) is a status error', async () => {
    const { src, log } = await load(`${SECRET.slice(1)}\n`);
    expect(src.status()).toMatchObject({ state: 'error', keys: 0 });
    expect(src.status().lastError).toContain('secret must be at least 32 bytes (RFC 7518 §3.2)');
    expect(src.current()).toBeUndefined();
    expect(log.text()).not.toContain(SECRET.slice(1));
  });

  it('a missing file is a status error', async () => {
    const log = captureLogger();
    const src = new SecretKeySource('nope.secret', dir, { issuer: 'hmac', logger: log.logger });
    sources.push(src);
    await src.start();
    expect(src.status()).toMatchObject({
      state: 'error',
      lastError: 'secret_file nope.secret: cannot read (ENOENT)',
    });
  });

  it('never logs the secret', async () => {
    const { log } = await load(`${SECRET}\n`);
    expect(log.lines.length).toBeGreaterThan(0);
    expect(log.text()).not.toContain(SECRET);
  });
});

describe('secret_file: removing the secret removes trust', () => {
  const OTHER = 'fedcba9876543210fedcba9876543210';

  it('a deleted file withdraws the secret (new generation, no_keys); recreating it restores one', async () => {
    const { src, log } = await load(`${SECRET}\n`);
    expect(src.generation).toBe(1);
    unlinkSync(join(dir, 'shared.secret'));
    await src.reload();
    expect(src.current()!.keys).toHaveLength(0);
    expect(src.generation).toBe(2);
    expect(src.status()).toMatchObject({ state: 'no_keys', keys: 0, loaded: true });
    expect(src.status().lastError).toBeUndefined();
    expect(
      log.lines.find((l) => l.msg === 'secret_file removed; its keys are no longer trusted'),
    ).toMatchObject({
      issuer: 'hmac',
      file: './shared.secret',
    });
    writeFileSync(join(dir, 'shared.secret'), OTHER);
    await src.reload();
    expect(src.status()).toMatchObject({ state: 'ready', keys: 1 });
    expect(src.current()!.keys[0]!.key.export().toString()).toBe(OTHER);
    expect(src.generation).toBe(3);
    expect(log.text()).not.toContain(SECRET);
    expect(log.text()).not.toContain(OTHER);
  });

  it('a file that exists but is too short (say, half-written) keeps the old secret, with an error log', async () => {
    const { src, log } = await load(SECRET);
    const before = src.current();
    writeFileSync(join(dir, 'shared.secret'), SECRET.slice(0, 10));
    await src.reload();
    expect(src.current()).toBe(before);
    expect(src.generation).toBe(1);
    expect(src.status()).toMatchObject({ state: 'stale', keys: 1 });
    expect(log.lines.find((l) => l.level === 'error')).toMatchObject({
      issuer: 'hmac',
      msg: 'key reload failed; keeping the previous keys',
    });
    expect(log.text()).not.toContain(SECRET.slice(0, 10));
  });
});

describe('secret_file: verification', () => {
  it('checks every HS* token of the issuer against the secret, whatever kid the token names', async () => {
    const { src } = await load(SECRET);
    const issuer: CompiledIssuer = {
      name: 'hmac',
      issuer: 'https://hmac.example',
      audiences: 'any',
      algorithms: new Set(['HS256', 'HS384']),
      keySource: src,
      clockSkewSeconds: 0,
      requiredClaims: ['iss', 'exp'],
      maxLifetimeSeconds: 3600,
    };
    const verdict = async (header: Record<string, unknown>, key: string = SECRET) => {
      const token = forgeToken({ header, payload: standardClaims(issuer.issuer, 'api'), key });
      const res = await verifyJwt(token, (iss) => (iss === issuer.issuer ? issuer : undefined));
      return res.ok ? 'accepted' : res.deny.reason;
    };
    expect(await verdict({ alg: 'HS256' })).toBe('accepted');
    // The secret has no kid, so a kid in the token cannot name another key.
    expect(await verdict({ alg: 'HS256', kid: 'hs-2024' })).toBe('accepted');
    expect(await verdict({ alg: 'HS256', kid: 'any-name' })).toBe('accepted');
    // HS384 needs a 48-byte secret (this one has 32): no candidate, whatever the kid.
    expect(await verdict({ alg: 'HS384', kid: 'hs-2024' })).toBe('key_not_found');
    expect(await verdict({ alg: 'HS256', kid: 'hs-2024' }, `${SECRET}!`)).toBe('signature_invalid');
    expect(await verdict({ alg: 'HS256', kid: 42 })).toBe('header_invalid');
  });
});
