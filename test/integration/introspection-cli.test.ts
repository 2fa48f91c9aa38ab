// check-config with an introspected issuer, as users run it (`node dist/main.js`; npm test builds first).
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startIntrospectionServer } from '../helpers/introspection-server.js';

const MAIN = new URL('../../dist/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'introspection-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (file: string) =>
  spawnSync(process.execPath, [MAIN, 'check-config', '--config', file], {
    env: { ...process.env, AUTHZ_GRPC_ADDRESS: '127.0.0.1:0', AUTHZ_HTTP_ADDRESS: '127.0.0.1:0' },
    encoding: 'utf8',
    timeout: 20000,
  });

describe('check-config with introspection', () => {
  const file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({
      issuers: [
        {
          name: 'legacy',
          issuer: 'https://legacy-idp.example.com',
          audiences: ['api'],
          introspection: {
            endpoint: 'https://legacy-idp.example.com/oauth2/introspect',
            client_id: 'authz',
            client_secret_file: 'idp.secret',
          },
        },
      ],
    }),
  );

  it('names an unreadable client_secret_file', () => {
    const r = run(file);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('issuers[0].introspection.client_secret_file: cannot read idp.secret');
  });

  it('passes with the secret there: no keys to load, the endpoint in the summary', () => {
    writeFileSync(join(dir, 'idp.secret'), 'the-secret\n');
    const r = run(file);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('introspection https://legacy-idp.example.com/oauth2/introspect');
    expect(r.stdout).not.toContain('the-secret');
  });
});

describe('check-config --fetch asks the introspection endpoint', () => {
  // Not spawnSync: the endpoint runs in this process and must answer while the CLI waits.
  const runAsync = (file: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [MAIN, 'check-config', '--config', file, '--fetch'],
        {
          env: { ...process.env, AUTHZ_GRPC_ADDRESS: '127.0.0.1:0', AUTHZ_HTTP_ADDRESS: '127.0.0.1:0' },
          timeout: 20000,
        },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('passes when the client is accepted; names the endpoint and the refused credentials otherwise', async () => {
    const idp = await startIntrospectionServer({ clientId: 'authz', clientSecret: 'right' });
    try {
      const write = (secret: string) => {
        const sub = mkdtempSync(join(dir, 'fetch-'));
        writeFileSync(join(sub, 'idp.secret'), `${secret}\n`);
        const file = join(sub, 'config.json');
        writeFileSync(
          file,
          JSON.stringify({
            issuers: [
              {
                name: 'legacy',
                issuer: 'https://legacy-idp.example.com',
                audiences: ['api'],
                introspection: { endpoint: idp.url, client_id: 'authz', client_secret_file: 'idp.secret' },
              },
            ],
          }),
        );
        return file;
      };
      const ok = await runAsync(write('right'));
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      expect(idp.requests).toHaveLength(1);
      const bad = await runAsync(write('wrong'));
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain(
        'issuers[0].introspection.endpoint: status 401 (the client_id / client secret were refused)',
      );
      expect(bad.stderr).not.toContain('wrong');
    } finally {
      await idp.close();
    }
  });
});
