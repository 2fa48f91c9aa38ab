// The CLI as users run it: `node dist/main.js …` (npm test builds first).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { importJWK, jwtVerify } from 'jose';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';

const MAIN = new URL('../../dist/main.js', import.meta.url).pathname;
const ENV = {
  ...process.env,
  AUTHZ_LOG_LEVEL: 'info',
  AUTHZ_GRPC_ADDRESS: '127.0.0.1:0',
  AUTHZ_HTTP_ADDRESS: '127.0.0.1:0',
};

function run(args: string[], env: NodeJS.ProcessEnv = ENV) {
  return spawnSync(process.execPath, [MAIN, ...args], { env, encoding: 'utf8', timeout: 20000 });
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'authz-cli-'));
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

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
        setTimeout(tick, 50);
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
