// check-config with an introspected issuer, as users run it (`node dist/main.js`; npm test builds first).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

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
