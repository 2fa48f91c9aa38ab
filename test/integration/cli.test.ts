// The CLI as users run it: `node dist/main.js …` (npm test builds first).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { importJWK, jwtVerify } from 'jose';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';

const MAIN = new URL('../../dist/main.js', import.meta.url).pathname;
const ROOT = new URL('../../', import.meta.url).pathname;
const ENV = {
  ...process.env,
  AUTHZ_LOG_LEVEL: 'info',
  AUTHZ_GRPC_ADDRESS: '127.0.0.1:0',
  AUTHZ_HTTP_ADDRESS: '127.0.0.1:0',
};

function run(args: string[], env: NodeJS.ProcessEnv = ENV) {
  return spawnSync(process.execPath, [MAIN, ...args], { env, encoding: 'utf8', timeout: 20000 });
}

const dirs: string[] = [];
const allDirs: string[] = [];
function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'authz-cli-'));
  dirs.push(dir);
  allDirs.push(dir);
  return dir;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
afterAll(() => {
  // Every folder this file made is gone (no authz-cli-* left behind in the temp folder).
  expect(allDirs.filter((d) => existsSync(d))).toEqual([]);
});

/** A port nothing listens on (bound once by the OS, then released). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Holds a port (as another process would) until closed. */
async function occupy(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** Starts `serve`, resolves once the line matching `ready` appeared on stdout or stderr. */
function serve(args: string[], env: NodeJS.ProcessEnv = ENV) {
  const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (out += b));
  const waitFor = (re: RegExp, ms = 15000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const t0 = Date.now();
      const tick = () => {
        const m = out.match(re);
        if (m) return resolve(m);
        if (child.exitCode !== null) return reject(new Error(`exited ${child.exitCode}: ${out}`));
        if (Date.now() - t0 > ms) return reject(new Error(`timeout waiting for ${re}: ${out}`));
        setTimeout(tick, 50); // real polling: output of a real child process
      };
      tick();
    });
  const exited = () =>
    new Promise<number | null>((resolve) =>
      child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve),
    );
  return { child, waitFor, exited, output: () => out };
}

function validConfig(jwks: unknown) {
  return {
    log: { level: 'info' },
    issuers: [{ name: 'corp', issuer: 'https://idp.example.com', audiences: ['api'], jwks }],
  };
}

describe('check-config', () => {
  it('exits 0 and prints a summary for a valid config', () => {
    const dir = tmp();
    const file = join(dir, 'config.yaml');
    writeFileSync(file, JSON.stringify(validConfig(makeJwks(generateEcKeyPair()))));
    const r = run(['check-config', '--config', file]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('"name": "corp"');
    expect(r.stdout).toContain('configuration OK');
  });

  it('exits 1 and lists every problem with its config path', () => {
    const dir = tmp();
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      [
        'issuers:',
        '  - name: a',
        '    issuer: https://a.example.com',
        '    jwks_uri: https://a.example.com/jwks',
        '  - name: b',
        '    issuer: https://b.example.com',
        '    audiences: [x]',
        '    jwks_uri: http://idp.example.com/jwks',
        '    algorithms: [none]',
        'rules:',
        '  - match: { path_regex: "(" }',
        'bogus: 1',
      ].join('\n'),
    );
    const r = run(['check-config', '--config', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('issuers[0].audiences: required');
    expect(r.stderr).toContain('bogus: unknown key');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('names the rule with an invalid regex', () => {
    const dir = tmp();
    const file = join(dir, 'config.json');
    writeFileSync(
      file,
      JSON.stringify({
        ...validConfig(makeJwks(generateEcKeyPair())),
        rules: [{ name: 'bad', match: { path_regex: '(' } }],
      }),
    );
    const r = run(['check-config', '--config', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/rules\[0\]\.match\.path_regex/);
  });

  it('a missing config file is one line, `config file not found: <path>`, exit 1 (serve too)', () => {
    const dir = tmp();
    const missing = join(dir, 'nope.yaml');
    for (const args of [
      ['check-config', '--config', missing],
      ['serve', '--config', missing],
    ]) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toBe(`error: config file not found: ${missing}\n`);
    }
    const viaEnv = run(['serve'], { ...ENV, AUTHZ_CONFIG: missing });
    expect(viaEnv.status).toBe(1);
    expect(viaEnv.stderr).toBe(`error: config file not found: ${missing} (from AUTHZ_CONFIG)\n`);
    const folder = run(['check-config', '--config', dir]);
    expect(folder.status).toBe(1);
    expect(folder.stderr).toBe(`error: config file is a folder, not a file: ${dir}\n`);
  });

  it('exits 2 on a usage error', () => {
    expect(run(['check-config']).status).toBe(2);
    expect(run(['frobnicate']).status).toBe(2);
    expect(run(['serve', '--nope']).status).toBe(2);
  });
});

describe('keygen and mint', () => {
  it('keygen prints a private and public JWK; mint signs a token that verifies with it', async () => {
    const k = run(['keygen', '--alg', 'ES256', '--kid', 'k1']);
    expect(k.status).toBe(0);
    const keys = JSON.parse(k.stdout);
    expect(keys.private).toMatchObject({ kty: 'EC', crv: 'P-256', kid: 'k1', alg: 'ES256' });
    expect(keys.private.d).toBeTypeOf('string');
    expect(keys.public.d).toBeUndefined();
    const dir = tmp();
    writeFileSync(join(dir, 'key.json'), JSON.stringify(keys.private));
    const m = run([
      'mint',
      '--key',
      join(dir, 'key.json'),
      '--claims',
      '{"iss":"https://i","sub":"bob","aud":"api"}',
      '--ttl',
      '120',
    ]);
    expect(m.status).toBe(0);
    const { payload, protectedHeader } = await jwtVerify(
      m.stdout.trim(),
      await importJWK(keys.public, 'ES256'),
      {
        issuer: 'https://i',
        audience: 'api',
      },
    );
    expect(payload.sub).toBe('bob');
    expect((payload.exp as number) - (payload.iat as number)).toBe(120);
    expect(protectedHeader.kid).toBe('k1');
  });

  it('mint names --key when the key does not fit the alg', () => {
    const k = JSON.parse(run(['keygen', '--alg', 'ES256']).stdout);
    const dir = tmp();
    writeFileSync(join(dir, 'key.json'), JSON.stringify(k.private));
    const r = run(['mint', '--key', join(dir, 'key.json'), '--alg', 'RS256', '--claims', '{}']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/- --key: .*ES256/);
  });

  it('keygen refuses an unknown alg with exit 2', () => {
    expect(run(['keygen', '--alg', 'none']).status).toBe(2);
  });

  it('keygen --api-key prints a new key once and the keys_file entry that accepts it', () => {
    const r = run(['keygen', '--api-key', '--id', 'partner-1']);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { api_key: string; entry: Record<string, unknown> };
    // 32 random bytes, base64url, behind a recognisable prefix.
    expect(out.api_key).toMatch(/^ejak_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(out.api_key.slice(5), 'base64url')).toHaveLength(32);
    const hash = `sha256:${createHash('sha256').update(out.api_key).digest('base64url')}`;
    expect(out.entry).toEqual({ id: 'partner-1', hash, sub: 'partner-1', scopes: [] });
    // The key is on stdout once, and nowhere else.
    expect(r.stdout.split(out.api_key)).toHaveLength(2);
    expect(r.stderr).not.toContain(out.api_key);
    const other = JSON.parse(run(['keygen', '--api-key']).stdout) as typeof out;
    expect(other.api_key).not.toBe(out.api_key);
    expect(other.entry.id).toMatch(/^key-[0-9a-f]{8}$/);
    // The printed entry is what a keys_file takes.
    const dir = tmp();
    writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys: [out.entry, other.entry] }));
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ api_keys: [{ name: 'partners', header: 'x-api-key', keys_file: 'keys.json' }] }),
    );
    const c = run(['check-config', '--config', join(dir, 'config.json')]);
    expect(c.status, c.stdout + c.stderr).toBe(0);
    expect(c.stdout).toContain('"keys": 2');
    // A malformed entry: serve and check-config exit 1 naming the field, the file and the entry.
    writeFileSync(
      join(dir, 'keys.json'),
      JSON.stringify({ keys: [out.entry, { ...other.entry, hash: 'x' }] }),
    );
    for (const args of [['check-config'], ['serve']]) {
      const bad = run([...args, '--config', join(dir, 'config.json')]);
      expect(bad.status, args[0]).toBe(1);
      expect(bad.stderr).toContain(
        `api_keys[0].keys_file: keys.json: keys[1] (id "${String(other.entry.id)}").hash: must be`,
      );
      expect(bad.stdout + bad.stderr).not.toContain(out.api_key);
    }
  });

  it('keygen --id without --api-key, or --api-key with --alg, is a usage error (exit 2)', () => {
    expect(run(['keygen', '--id', 'x']).status).toBe(2);
    expect(run(['keygen', '--api-key', '--alg', 'ES256']).status).toBe(2);
  });

  it('mint --ttl -120 makes a token that expired 120 s ago, and the service refuses it', async () => {
    const keys = JSON.parse(run(['keygen', '--alg', 'ES256', '--kid', 'k1']).stdout);
    const dir = tmp();
    writeFileSync(join(dir, 'key.json'), JSON.stringify(keys.private));
    const claims = '{"iss":"https://idp.example.com","sub":"bob","aud":"api"}';
    const mint = (ttl: string) =>
      run(['mint', '--key', join(dir, 'key.json'), '--claims', claims, '--ttl', ttl]);
    const expired = mint('-120');
    expect(expired.status, expired.stderr).toBe(0);
    expect(expired.stderr).toMatch(/expired 120 s ago/);
    const [, body] = expired.stdout.trim().split('.');
    const payload = JSON.parse(Buffer.from(body!, 'base64url').toString()) as { iat: number; exp: number };
    const now = Math.floor(Date.now() / 1000);
    expect(payload.exp).toBeGreaterThanOrEqual(now - 120 - 30);
    expect(payload.exp).toBeLessThanOrEqual(now - 120 + 1);
    expect(payload.iat).toBeLessThan(payload.exp); // issued before it expired
    // An `exp` given in --claims wins, and then no note about the TTL is printed.
    const given = run([
      'mint',
      '--key',
      join(dir, 'key.json'),
      '--claims',
      '{"exp":2000000000}',
      '--ttl',
      '-120',
    ]);
    expect(given.status).toBe(0);
    expect(given.stderr).toBe('');
    expect(mint('0').status).toBe(2);
    expect(mint('-1.5').status).toBe(2);

    // The real service: a fresh token from the same key is allowed, the expired one is not.
    writeFileSync(join(dir, 'config.json'), JSON.stringify(validConfig({ keys: [keys.public] })));
    const s = serve(['serve', '--config', join(dir, 'config.json')]);
    const port = (await s.waitFor(/"grpc_port":(\d+)/))[1]!;
    await s.waitFor(/"msg":"ready"/);
    const check = (token: string) =>
      JSON.parse(run(['check', '--address', `127.0.0.1:${port}`, '--path', '/x', '--token', token]).stdout);
    expect(check(mint('300').stdout.trim()).decision).toBe('allow');
    const denied = check(expired.stdout.trim());
    expect(denied.decision).toBe('deny');
    expect(denied.http_status).toBe(401);
    expect(JSON.stringify(denied)).toContain('expired');
    s.child.kill('SIGTERM');
    expect(await s.exited()).toBe(0);
  });
});

describe('a closed stdout', () => {
  // `cmd | false`: the reader is gone before the command writes (node takes far longer to
  // start than `false`), so every write meets EPIPE. PIPESTATUS[0] is the command's own status.
  it.each([['keygen'], ['help'], ['keygen --alg RS256'], ['--version']])(
    '`%s | false` ends quietly with exit 0 (no EPIPE, no stack trace)',
    (command) => {
      const r = spawnSync(
        'bash',
        ['-c', `"${process.execPath}" "${MAIN}" ${command} | false; echo "status=\${PIPESTATUS[0]}"`],
        { env: ENV, encoding: 'utf8', timeout: 20000 },
      );
      expect(r.stdout.trim()).toBe('status=0');
      expect(r.stderr).toBe('');
    },
  );
});

describe('serve', () => {
  it('demo mode: starts with no config and prints a token and a check command that is allowed', async () => {
    const s = serve([]);
    const m = await s.waitFor(/Try it:\s+(node dist\/main\.js check [^\n]+)/);
    const args = m[1]!.replace(/^node dist\/main\.js /, '').split(' ');
    const r = run(args);
    expect(r.status).toBe(0);
    const decision = JSON.parse(r.stdout);
    expect(decision.decision).toBe('allow');
    expect(decision.headers['x-user-id']).toBe('demo-user');
    s.child.kill('SIGTERM');
    expect(await s.exited()).toBe(0);
  });

  it('demo mode listens on 127.0.0.1 only, both ports (it trusts a key it just printed)', async () => {
    // The demo's own addresses: no AUTHZ_*_ADDRESS override (so the fixed ports 9001/9002).
    const { AUTHZ_GRPC_ADDRESS: _g, AUTHZ_HTTP_ADDRESS: _h, ...env } = ENV;
    const s = serve([], env);
    const m = await s.waitFor(/"grpc_address":"([^"]+)","grpc_port":(\d+),"http_port":(\d+)/);
    expect(m[1]).toBe('127.0.0.1:9001');
    const reach = (host: string, port: number) =>
      new Promise<boolean>((resolve) => {
        const c = connect({ host, port }, () => {
          c.destroy();
          resolve(true);
        });
        c.once('error', () => resolve(false));
      });
    for (const port of [Number(m[2]), Number(m[3])]) {
      expect(await reach('127.0.0.1', port)).toBe(true);
      // another address of this machine (Linux routes all of 127/8 to lo) finds nothing listening
      expect(await reach('127.0.0.2', port)).toBe(false);
    }
    s.child.kill('SIGTERM');
    expect(await s.exited()).toBe(0);
  });

  it('a bad config exits 1 at startup with the field named', () => {
    const dir = tmp();
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'issuers:\n  - name: x\n    issuer: https://x\n    audiences: []\n    jwks_uri: https://x/jwks\n',
    );
    const r = run(['serve', '--config', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('issuers[0].audiences: must not be empty');
  });

  it('SIGHUP reloads a valid config and keeps the old one when the new one is invalid', async () => {
    const key = generateEcKeyPair({ kid: 'k' });
    const dir = tmp();
    const file = join(dir, 'config.yaml');
    const base = validConfig(makeJwks(key));
    writeFileSync(file, JSON.stringify(base));
    const s = serve(['serve', '--config', file]);
    const port = (await s.waitFor(/"grpc_port":(\d+)/))[1]!;
    await s.waitFor(/"msg":"ready"/);
    const address = `127.0.0.1:${port}`;
    const denyAll = () => JSON.parse(run(['check', '--address', address, '--path', '/x']).stdout);
    expect(denyAll().http_status).toBe(401);

    writeFileSync(file, 'issuers: [');
    s.child.kill('SIGHUP');
    await s.waitFor(/reload rejected/);
    expect(denyAll().http_status).toBe(401);

    writeFileSync(file, JSON.stringify({ ...base, default_action: 'deny' }));
    s.child.kill('SIGHUP');
    await s.waitFor(/configuration reloaded/);
    expect(denyAll().http_status).toBe(403);
    s.child.kill('SIGTERM');
    expect(await s.exited()).toBe(0);
  });

  it('SIGHUP after the config file was deleted logs `config file not found` and keeps serving', async () => {
    const dir = tmp();
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      JSON.stringify({ ...validConfig(makeJwks(generateEcKeyPair())), default_action: 'deny' }),
    );
    const s = serve(['serve', '--config', file]);
    const port = (await s.waitFor(/"grpc_port":(\d+)/))[1]!;
    await s.waitFor(/"msg":"ready"/);
    rmSync(file);
    s.child.kill('SIGHUP');
    const line = (await s.waitFor(/^.*reload rejected.*$/m))[0];
    expect(JSON.parse(line).problems).toEqual([`config file not found: ${file}`]);
    const r = run(['check', '--address', `127.0.0.1:${port}`, '--path', '/x']);
    expect(JSON.parse(r.stdout).http_status).toBe(403);
    s.child.kill('SIGTERM');
    expect(await s.exited()).toBe(0);
  });

  it('server.workers: 2 processes share the ports and /metrics aggregates both', async () => {
    const key = generateEcKeyPair({ kid: 'k' });
    const dir = tmp();
    const file = join(dir, 'config.yaml');
    writeFileSync(file, JSON.stringify({ ...validConfig(makeJwks(key)), server: { workers: 2 } }));
    const s = serve(['serve', '--config', file], {
      ...ENV,
      AUTHZ_GRPC_ADDRESS: '127.0.0.1:0',
      AUTHZ_HTTP_ADDRESS: '127.0.0.1:0',
    });
    // port 0 in a cluster: every worker shares the one port the primary picked
    const ports = await s.waitFor(/"grpc_port":(\d+),"http_port":(\d+)[\s\S]*"grpc_port":\d+/);
    await s.waitFor(/"msg":"ready"[\s\S]*"msg":"ready"/);
    const now = Math.floor(Date.now() / 1000);
    const { SignJWT } = await import('jose');
    const t = await new SignJWT({ sub: 'u' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k' })
      .setIssuer('https://idp.example.com')
      .setAudience('api')
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(key.privateKey);
    for (let i = 0; i < 4; i++) {
      const r = run(['check', '--address', `127.0.0.1:${ports[1]}`, '--token', t]);
      expect(JSON.parse(r.stdout).decision).toBe('allow');
    }
    const text = await (await fetch(`http://127.0.0.1:${ports[2]}/metrics`)).text();
    expect(text).toMatch(/authz_check_total\{decision="allow",reason="authenticated",issuer="corp"\} 4/);
    s.child.kill('SIGTERM');
    expect(await s.exited()).toBe(0);
  });
});

describe('check-config reads what the config names', () => {
  it('lists every missing file, missing folder and bad address in one run, with their paths', () => {
    const dir = tmp();
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      [
        'server:',
        '  grpc_address: 127.0.0.1:99999',
        '  http_address: localhost:abc',
        'issuers:',
        '  - name: a',
        '    issuer: https://a.example.com',
        '    audiences: [api]',
        `    jwks: ${JSON.stringify(makeJwks(generateEcKeyPair()))}`,
        '  - name: b',
        '    issuer: https://b.example.com',
        '    audiences: [api]',
        '    jwks_file: ./x.json',
        '  - name: c',
        '    issuer: https://c.example.com',
        '    audiences: [api]',
        '    truststore: { path: ./certs }',
        'upstream:',
        '  token:',
        '    issuer: https://authz.example.com',
        '    signing: { alg: ES256, key_file: ./signing.jwk.json }',
      ].join('\n'),
    );
    // the addresses come from the file here, not from the environment
    const { AUTHZ_GRPC_ADDRESS: _g, AUTHZ_HTTP_ADDRESS: _h, ...env } = ENV;
    const r = run(['check-config', '--config', file], env);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('issuers[1].jwks_file: cannot read ./x.json: no such file');
    expect(r.stderr).toContain('issuers[2].truststore.path: cannot read ./certs: no such folder');
    expect(r.stderr).toMatch(/server\.grpc_address: "127\.0\.0\.1:99999": .*65535/);
    expect(r.stderr).toMatch(/server\.http_address: "localhost:abc": .*65535/);
    expect(r.stderr).toContain(
      'upstream.token.signing.key_file: cannot read ./signing.jwk.json: no such file',
    );
    // each problem once
    expect(r.stderr.match(/signing\.key_file/g)).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('reports a JWKS file that does not parse, and passes once the files are there', () => {
    const dir = tmp();
    const file = join(dir, 'config.yaml');
    const config = {
      issuers: [
        { name: 'f', issuer: 'https://f.example.com', audiences: ['api'], jwks_file: './keys/jwks.json' },
        { name: 't', issuer: 'https://t.example.com', audiences: ['api'], truststore: { path: './certs' } },
      ],
    };
    writeFileSync(file, JSON.stringify(config));
    mkdirSync(join(dir, 'keys'));
    mkdirSync(join(dir, 'certs'));
    writeFileSync(join(dir, 'keys', 'jwks.json'), '{not json');
    const bad = run(['check-config', '--config', file]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/issuers\[0\]\.jwks_file: .*json/i);

    // an empty truststore folder holds no keys: reported, like an unreadable one
    expect(bad.stderr).toMatch(/issuers\[1\]\.truststore\.path: /);
    writeFileSync(join(dir, 'keys', 'jwks.json'), JSON.stringify(makeJwks(generateEcKeyPair())));
    const good = run(['check-config', '--config', join(dir, 'config.yaml')]);
    expect(good.stderr).not.toContain('issuers[0]');
  });

  it('fetches jwks_uri only with --fetch and reports an unreachable one', async () => {
    const dir = tmp();
    const file = join(dir, 'config.yaml');
    const port = await freePort();
    writeFileSync(
      file,
      JSON.stringify({
        issuers: [
          {
            name: 'remote',
            issuer: 'https://idp.example.com',
            audiences: ['api'],
            jwks_uri: `http://127.0.0.1:${port}/jwks.json`,
            jwks_cache: { timeout_ms: 1000 },
          },
        ],
      }),
    );
    const offline = run(['check-config', '--config', file]);
    expect(offline.status, offline.stderr).toBe(0);
    expect(offline.stdout).toContain('configuration OK');
    const fetched = run(['check-config', '--config', file, '--fetch']);
    expect(fetched.status).toBe(1);
    expect(fetched.stderr).toMatch(/issuers\[0\]\.jwks_uri: .*(ECONNREFUSED|refused|network)/i);
  });
});

describe('serve fails early on addresses', () => {
  it('a bad address names the environment variable it came from (and the field), exit 1, no stack', () => {
    const r = run(['serve'], { ...ENV, AUTHZ_GRPC_ADDRESS: '127.0.0.1:99999' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/AUTHZ_GRPC_ADDRESS \(server\.grpc_address\): "127\.0\.0\.1:99999"/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const h = run(['serve'], { ...ENV, AUTHZ_HTTP_ADDRESS: 'localhost:abc' });
    expect(h.status).toBe(1);
    expect(h.stderr).toMatch(/AUTHZ_HTTP_ADDRESS \(server\.http_address\): "localhost:abc"/);
    // check-config names it too.
    const dir = tmp();
    writeFileSync(join(dir, 'c.json'), JSON.stringify(validConfig(makeJwks(generateEcKeyPair()))));
    const c = run(['check-config', '--config', join(dir, 'c.json')], {
      ...ENV,
      AUTHZ_GRPC_ADDRESS: '127.0.0.1:99999',
    });
    expect(c.status).toBe(1);
    expect(c.stderr).toMatch(/- AUTHZ_GRPC_ADDRESS \(server\.grpc_address\): "127\.0\.0\.1:99999"/);
  });

  it('a port already in use is one line naming the environment variable that set it, exit 1', async () => {
    const busy = await occupy();
    try {
      for (const [variable, field] of [
        ['AUTHZ_GRPC_ADDRESS', 'server.grpc_address'],
        ['AUTHZ_HTTP_ADDRESS', 'server.http_address'],
      ] as const) {
        const r = run(['serve'], { ...ENV, [variable]: `127.0.0.1:${busy.port}` });
        expect(r.status).toBe(1);
        expect(r.stderr.trim().split('\n')).toEqual([
          `error: ${variable} (${field}): cannot listen on 127.0.0.1:${busy.port} (address already in use)`,
        ]);
      }
    } finally {
      busy.server.close();
    }
  });

  it('a busy port set in the config file is blamed on the config field', async () => {
    const busy = await occupy();
    const { AUTHZ_GRPC_ADDRESS: _g, AUTHZ_HTTP_ADDRESS: _h, ...env } = ENV;
    try {
      const dir = tmp();
      const file = join(dir, 'config.json');
      writeFileSync(
        file,
        JSON.stringify({
          ...validConfig(makeJwks(generateEcKeyPair())),
          server: { grpc_address: `127.0.0.1:${busy.port}`, http_address: '127.0.0.1:0' },
        }),
      );
      const r = run(['serve', '--config', file], env);
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split('\n')).toEqual([
        `error: server.grpc_address: cannot listen on 127.0.0.1:${busy.port} (address already in use)`,
      ]);
    } finally {
      busy.server.close();
    }
  });
});

describe('--version and help', () => {
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;

  it('--version prints the package version', () => {
    const r = run(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  const OPTIONS: Record<string, string[]> = {
    check: ['--address', '--token', '--method', '--path', '--host', '--header', '--context', '--timeout'],
    mint: ['--key', '--claims', '--ttl', '--alg', '--typ'],
    'check-config': ['--config', '--fetch'],
    keygen: ['--alg', '--kid', '--api-key', '--id'],
    serve: ['--config'],
  };
  for (const [command, options] of Object.entries(OPTIONS)) {
    it(`help ${command} and ${command} --help print its usage with every option`, () => {
      for (const args of [
        ['help', command],
        [command, '--help'],
      ]) {
        const r = run(args);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^usage: envoy-jwt-authz ${command} `));
        for (const o of options) expect(r.stdout).toMatch(new RegExp(`^\\s+(-\\w, )?${o}\\b`, 'm'));
      }
    });
  }

  it('help with no command lists the commands; help of an unknown command is a usage error', () => {
    const r = run(['help']);
    expect(r.status).toBe(0);
    for (const c of Object.keys(OPTIONS)) expect(r.stdout).toContain(`  ${c} `);
    expect(run(['help', 'frobnicate']).status).toBe(2);
  });
});

/** pid → parent pid of every process (Linux /proc). */
function processParents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.set(Number(name), ppid);
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

function descendants(pid: number): number[] {
  const parents = processParents();
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const [child, parent] of parents) {
      if (parent === p) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\S+ \S+ Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/\(.*\)/, 'x'));
  } catch {
    return false;
  }
}

async function canBind(port: number): Promise<boolean> {
  const srv = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise((r) => srv.close(r));
  return ok;
}

describe('npm start', () => {
  it.skipIf(process.platform !== 'linux')(
    'SIGTERM to the process npm start started stops the service and frees its ports',
    async () => {
      const dir = tmp();
      const file = join(dir, 'config.yaml');
      writeFileSync(file, JSON.stringify(validConfig(makeJwks(generateEcKeyPair()))));
      const npm = spawn('npm', ['start', '--silent', '--', '--config', file], {
        cwd: ROOT,
        env: ENV,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(npm);
      let out = '';
      npm.stdout!.on('data', (b) => (out += b));
      npm.stderr!.on('data', (b) => (out += b));
      const t0 = Date.now();
      while (!/"msg":"ready"/.test(out)) {
        if (npm.exitCode !== null || Date.now() - t0 > 20000) throw new Error(`npm start: ${out}`);
        await new Promise((r) => setTimeout(r, 50)); // real polling: a real npm child process
      }
      const [, grpcPort, httpPort] = /"grpc_port":(\d+),"http_port":(\d+)/.exec(out)!;
      const tree = descendants(npm.pid!);
      expect(tree.length).toBeGreaterThan(0);
      const exited = new Promise((r) => npm.once('exit', r));
      process.kill(npm.pid!, 'SIGTERM');
      await exited;
      const t1 = Date.now();
      // Real polling: real processes must exit after the signal.
      while (tree.some(alive) && Date.now() - t1 < 10000) await new Promise((r) => setTimeout(r, 100));
      const orphans = tree.filter(alive);
      for (const pid of orphans) process.kill(pid, 'SIGKILL'); // do not leave them behind on failure
      expect(orphans, `still running after npm exited:\n${out}`).toEqual([]);
      expect(await canBind(Number(grpcPort))).toBe(true);
      expect(await canBind(Number(httpPort))).toBe(true);
      expect(out).toMatch(/"signal":"SIGTERM"/);
    },
    40000,
  );
});

describe('demo mode token', () => {
  it('is printed as plain text for the person, never inside a log line', async () => {
    const s = serve([], { ...ENV, AUTHZ_LOG_LEVEL: 'trace' }); // every log line there is
    const m = await s.waitFor(/Try it:\s+(node \S+ check [^\n]+)/);
    const token = /--token (\S+)/.exec(m[1]!)![1]!;
    expect(s.output()).toMatch(new RegExp(`^  ${token.replace(/[.-]/g, '\\$&')}$`, 'm'));
    // the token is used once, so any log line about a check would be seen too
    const args = m[1]!.replace(/^node \S+ /, '').split(' ');
    expect(JSON.parse(run(args).stdout).decision).toBe('allow');
    s.child.kill('SIGTERM');
    expect(await s.exited()).toBe(0);
    const logLines = s
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    expect(logLines.length).toBeGreaterThan(2);
    for (const line of logLines) {
      JSON.parse(line);
      expect(line).not.toContain(token);
      expect(line).not.toContain(token.split('.')[2]!); // not even the signature
    }
  });
});

describe('repository hygiene', () => {
  it('shell examples do not pipe into grep -q under pipefail (SIGPIPE would fail a match)', () => {
    const folder = join(ROOT, 'docs/examples');
    const scripts = readdirSync(folder).filter((f) => f.endsWith('.sh'));
    expect(scripts.length).toBeGreaterThan(0);
    for (const name of scripts) {
      const text = readFileSync(join(folder, name), 'utf8');
      if (!/set -[a-z]*o pipefail|set -o pipefail/.test(text)) continue;
      const offending = text
        .split('\n')
        .filter((l) => !l.trimStart().startsWith('#') && /\|\s*grep\s+(-\w*q|--quiet)/.test(l));
      expect(offending, name).toEqual([]);
    }
  });

  it.skipIf(!existsSync(join(ROOT, '.git')))(
    'no private key is committed outside test/ and bench/, and examples/demo-keys/ is ignored',
    () => {
      const files = spawnSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
        .stdout.split('\0')
        .filter((f) => f && !/^(test|bench)\//.test(f) && existsSync(join(ROOT, f)));
      expect(files.length).toBeGreaterThan(20);
      const pemLabel = new RegExp(
        // a label followed by base64 lines: a real block, not code that names the label
        ['-----BEGIN', '(RSA |EC |ENCRYPTED |OPENSSH )?PRIVATE', 'KEY-----\\r?\\n[A-Za-z0-9+/]{40}'].join(
          ' ',
        ),
      );
      const jwkPrivate = /"d"\s*:\s*"[A-Za-z0-9_-]{20,}"/;
      const holding = files.filter((f) => {
        const text = readFileSync(join(ROOT, f), 'utf8');
        return pemLabel.test(text) || jwkPrivate.test(text);
      });
      expect(holding).toEqual([]);
      const ignored = spawnSync('git', ['check-ignore', '-q', 'examples/demo-keys/private.jwk.json'], {
        cwd: ROOT,
      });
      expect(ignored.status).toBe(0);
    },
  );

  it('no production dependency in the lock file needs a newer Node than 20', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; engines?: { node?: string } }>;
    };
    const tooNew = Object.entries(lock.packages)
      .filter(([name, p]) => name && !p.dev && /^>=\s*(\d+)/.exec(p.engines?.node ?? '')?.[1])
      .filter(([, p]) => Number(/^>=\s*(\d+)/.exec(p.engines!.node!)![1]) > 20)
      .map(([name, p]) => `${name} ${p.engines!.node}`);
    expect(tooNew).toEqual([]);
  });
});
