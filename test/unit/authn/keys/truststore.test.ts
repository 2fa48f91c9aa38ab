import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TruststoreKeySource, type TruststoreOptions } from '../../../../src/authn/keys/truststore.js';
import { ManualClock } from '../../../../src/core/time.js';
import {
  createSelfSignedCertificate,
  generateEcKeyPair,
  generateEd25519KeyPair,
  generateRsaKeyPair,
} from '../../../helpers/keys.js';
import { captureLogger } from '../../../helpers/logger.js';

const rsa = generateRsaKeyPair();
const ec = generateEcKeyPair();
const ed = generateEd25519KeyPair();
const day = 86400_000;

let base: string;
const sources: TruststoreKeySource[] = [];
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'truststore-'));
  mkdirSync(join(base, 'certs'));
});
afterEach(() => {
  for (const s of sources.splice(0)) s.close();
  rmSync(base, { recursive: true, force: true });
});

function put(file: string, content: string | Buffer): void {
  writeFileSync(join(base, 'certs', file), content);
}

function store(defaultAlias?: string, extra: Partial<TruststoreOptions> = {}) {
  const log = captureLogger();
  const src = new TruststoreKeySource(
    { path: './certs', ...(defaultAlias !== undefined ? { default_alias: defaultAlias } : {}) },
    base,
    { issuer: 'gateway', logger: log.logger, pollIntervalMs: 50, ...extra },
  );
  sources.push(src);
  return { src, log };
}

describe('test helper: createSelfSignedCertificate', () => {
  it('produces certificates node parses, with the requested validity and key', () => {
    const c = createSelfSignedCertificate(ec, {
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2060-01-01T00:00:00Z'),
    });
    const x = new X509Certificate(c.pem);
    expect(x.publicKey.equals(ec.publicKey)).toBe(true);
    expect(Date.parse(x.validTo)).toBe(Date.parse('2060-01-01T00:00:00Z'));
    expect(x.verify(ec.publicKey)).toBe(true);
    expect(new X509Certificate(createSelfSignedCertificate(rsa).der).verify(rsa.publicKey)).toBe(true);
    expect(new X509Certificate(createSelfSignedCertificate(ed).pem).verify(ed.publicKey)).toBe(true);
  });
});

describe('truststore', () => {
  it('loads .pem, .crt and .cer certificates; alias = file name = kid; thumbprints of the DER', async () => {
    const a = createSelfSignedCertificate(rsa);
    const b = createSelfSignedCertificate(ec);
    const c = createSelfSignedCertificate(ed);
    put('gateway_certificate_alias.pem', a.pem);
    put('partner.crt', b.pem);
    put('edge.CER', c.pem);
    put('README.txt', 'not a certificate');
    const { src } = store();
    expect(src.kind).toBe('truststore');
    await src.start();
    expect(src.status()).toMatchObject({ state: 'ready', keys: 3 });
    const set = src.current()!;
    expect([...set.byKid.keys()].sort()).toEqual(['edge', 'gateway_certificate_alias', 'partner']);
    const gw = set.byKid.get('gateway_certificate_alias')![0]!;
    expect(gw.kty).toBe('RSA');
    expect(gw.key.equals(rsa.publicKey)).toBe(true);
    expect(gw.x5tS256).toBe(createHash('sha256').update(a.der).digest('base64url'));
    expect(gw.x5t).toBe(createHash('sha1').update(a.der).digest('base64url'));
    expect(set.byX5tS256.get(b.x5tS256)!.kid).toBe('partner');
    expect(set.byX5t.get(c.x5t)!.kid).toBe('edge');
    expect(set.byKid.get('partner')![0]).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(set.byKid.get('edge')![0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
    expect(set.defaultKey).toBeUndefined();
  });

  it('default_alias becomes the default key', async () => {
    put('gateway_certificate_alias.pem', createSelfSignedCertificate(rsa).pem);
    put('other.pem', createSelfSignedCertificate(ec).pem);
    const { src } = store('gateway_certificate_alias');
    await src.start();
    expect(src.current()!.defaultKey!.kid).toBe('gateway_certificate_alias');
  });

  it('refuses expired and not-yet-valid certificates with a log line naming the alias', async () => {
    put('good.pem', createSelfSignedCertificate(ec).pem);
    put(
      'old.pem',
      createSelfSignedCertificate(rsa, {
        notBefore: new Date(Date.now() - 10 * day),
        notAfter: new Date(Date.now() - day),
      }).pem,
    );
    put('future.pem', createSelfSignedCertificate(ed, { notBefore: new Date(Date.now() + day) }).pem);
    const { src, log } = store();
    await src.start();
    expect([...src.current()!.byKid.keys()]).toEqual(['good']);
    const refused = log.lines.filter((l) => l.msg === 'truststore certificate refused');
    expect(refused.find((l) => l.alias === 'old')!.reason).toMatch(/expired/);
    expect(refused.find((l) => l.alias === 'future')!.reason).toMatch(/not yet valid/);
    expect(refused.every((l) => l.level === 'warn' && l.issuer === 'gateway')).toBe(true);
  });

  it('refuses RSA keys below 2048 bits and files that are not certificates', async () => {
    put('good.pem', createSelfSignedCertificate(ec).pem);
    put('weak.pem', createSelfSignedCertificate(generateRsaKeyPair({ bits: 1024 })).pem);
    put('garbage.crt', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const { src, log } = store();
    await src.start();
    expect([...src.current()!.byKid.keys()]).toEqual(['good']);
    expect(log.lines.find((l) => l.alias === 'weak')!.reason).toMatch(/1024 bits/);
    expect(log.lines.find((l) => l.alias === 'garbage')!.reason).toBe('not a certificate');
  });

  it('a missing or refused default_alias is a status error mentioning it', async () => {
    put('present.pem', createSelfSignedCertificate(ec).pem);
    put(
      'expired.pem',
      createSelfSignedCertificate(rsa, {
        notBefore: new Date(Date.now() - 10 * day),
        notAfter: new Date(Date.now() - day),
      }).pem,
    );
    const missing = store('absent').src;
    await missing.start();
    expect(missing.status().state).toBe('error');
    expect(missing.status().lastError).toMatch(/default_alias "absent"/);
    const refused = store('expired').src;
    await refused.start();
    expect(refused.status().lastError).toMatch(/default_alias "expired"/);
  });

  it('an empty folder holds no keys (no_keys); a missing folder at start is a status error', async () => {
    const { src } = store();
    await src.start();
    expect(src.status()).toMatchObject({ state: 'no_keys', keys: 0, loaded: true });
    expect(src.current()!.keys).toHaveLength(0);
    const log = captureLogger();
    const missing = new TruststoreKeySource({ path: 'nope' }, base, { issuer: 'g', logger: log.logger });
    sources.push(missing);
    await missing.start();
    expect(missing.status().lastError).toBe('truststore nope: cannot read folder (ENOENT)');
  });

  it('a certificate that expires while running is retired at the next reload', async () => {
    put('a.pem', createSelfSignedCertificate(ec).pem);
    put('short.pem', createSelfSignedCertificate(rsa, { notAfter: new Date(Date.now() + day) }).pem);
    const clock = new ManualClock();
    const { src } = store(undefined, { clock });
    await src.start();
    expect(src.current()!.keys).toHaveLength(2);
    clock.advanceMs(2 * day);
    await src.reload();
    expect([...src.current()!.byKid.keys()]).toEqual(['a']);
    expect(src.generation).toBe(2);
  });

  it('reloads when a certificate is added or removed', async () => {
    put('a.pem', createSelfSignedCertificate(ec).pem);
    const { src } = store();
    await src.start();
    // Real polling below: the watcher stats real files on disk.
    await new Promise((r) => setTimeout(r, 20));
    put('b.pem', createSelfSignedCertificate(rsa).pem);
    const end = Date.now() + 3000;
    while (!src.current()!.byKid.has('b') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(src.current()!.byKid.has('b')).toBe(true);
    unlinkSync(join(base, 'certs', 'a.pem'));
    while (src.current()!.byKid.has('a') && Date.now() < end + 3000)
      await new Promise((r) => setTimeout(r, 20));
    expect(src.current()!.byKid.has('a')).toBe(false);
  });
});

describe('truststore: removing a certificate removes trust', () => {
  it('a deleted certificate loses trust at the next reload; the others stay (new generation)', async () => {
    put('a.pem', createSelfSignedCertificate(ec).pem);
    put('b.pem', createSelfSignedCertificate(rsa).pem);
    const { src } = store();
    await src.start();
    unlinkSync(join(base, 'certs', 'a.pem'));
    await src.reload();
    expect([...src.current()!.byKid.keys()]).toEqual(['b']);
    expect(src.generation).toBe(2);
    expect(src.status()).toMatchObject({ state: 'ready', keys: 1 });
  });

  it('deleting every certificate leaves no keys: empty set, no_keys, a warning', async () => {
    put('a.pem', createSelfSignedCertificate(ec).pem);
    const { src, log } = store('a');
    await src.start();
    expect(src.current()!.defaultKey).toBeDefined();
    unlinkSync(join(base, 'certs', 'a.pem'));
    await src.reload();
    expect(src.current()!.keys).toHaveLength(0);
    expect(src.current()!.defaultKey).toBeUndefined();
    expect(src.generation).toBe(2);
    expect(src.status()).toMatchObject({ state: 'no_keys', keys: 0 });
    expect(src.status().lastError).toBeUndefined();
    expect(log.lines.find((l) => l.level === 'warn' && /no usable keys/.test(String(l.msg)))).toMatchObject({
      issuer: 'gateway',
      source: 'truststore',
    });
  });

  it('a deleted folder leaves no keys; recreating it restores them', async () => {
    put('a.pem', createSelfSignedCertificate(ec).pem);
    const { src } = store();
    await src.start();
    rmSync(join(base, 'certs'), { recursive: true });
    await src.reload();
    expect(src.current()!.keys).toHaveLength(0);
    expect(src.status().state).toBe('no_keys');
    mkdirSync(join(base, 'certs'));
    put('b.pem', createSelfSignedCertificate(rsa).pem);
    await src.reload();
    expect([...src.current()!.byKid.keys()]).toEqual(['b']);
  });

  it('deleting the default_alias certificate drops the default key; the other aliases still verify', async () => {
    put('main.pem', createSelfSignedCertificate(ec).pem);
    put('other.pem', createSelfSignedCertificate(rsa).pem);
    const { src, log } = store('main');
    await src.start();
    unlinkSync(join(base, 'certs', 'main.pem'));
    await src.reload();
    const set = src.current()!;
    expect(set.defaultKey).toBeUndefined();
    expect([...set.byKid.keys()]).toEqual(['other']);
    expect(src.generation).toBe(2);
    expect(log.lines.some((l) => l.level === 'warn' && /default_alias "main"/.test(String(l.msg)))).toBe(
      true,
    );
  });

  it('a certificate file that exists but does not parse keeps its previous key, with an error log', async () => {
    put('a.pem', createSelfSignedCertificate(ec).pem);
    put('b.pem', createSelfSignedCertificate(rsa).pem);
    const { src, log } = store();
    await src.start();
    const before = src.current()!.byKid.get('a')![0];
    put('a.pem', '-----BEGIN CERT'); // caught mid-write
    await src.reload();
    expect(src.current()!.byKid.get('a')![0]).toBe(before);
    expect(src.current()!.keys).toHaveLength(2);
    expect(src.generation).toBe(1);
    expect(log.lines.find((l) => l.level === 'error')).toMatchObject({
      issuer: 'gateway',
      alias: 'a',
      reason: 'not a certificate',
      msg: 'truststore certificate cannot be loaded; keeping the previous one',
    });
  });
});
