// docs/deploy.md "TLS and mTLS": TLS and mTLS on the gRPC listener (and TLS on the HTTP listener), with
// certificates reloaded from disk without dropping live connections; certificate
// problems are config errors naming the field; gRPC on a unix socket.
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../src/server/app.js';
import { inspectConfigFile, loadConfigObject } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { Metrics } from '../../src/observability/metrics.js';
import { authorizationService } from '../../src/envoy/protos.js';
import { envoyCheckRequest, runCheck } from '../../src/cli/check.js';
import { createSelfSignedCertificate, generateEcKeyPair } from '../helpers/keys.js';
import { captureLogger } from '../helpers/logger.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';

// The CLI as users run it (npm test builds dist first).
const MAIN = new URL('../../dist/main.js', import.meta.url).pathname;
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [MAIN, ...args], { timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

const ALLOW_ALL = { rules: [{ name: 'all', match: { path_prefix: '/' }, action: 'allow' }] };
const CHECK = { method: 'GET', path: '/x', host: 'h', headers: [], context: [], timeoutMs: 3000 };

let pki: TestPki;
beforeAll(() => {
  pki = createTestPki();
});
afterAll(() => pki.cleanup());

const running: App[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.shutdown(0);
});

async function start(server: Record<string, unknown>, logs = captureLogger('info')): Promise<App> {
  const s = await App.start(loadConfigObject({ ...ALLOW_ALL, server }, pki.dir, {}), {
    logger: logs.logger,
    metrics: new Metrics({ processMetrics: false }),
    grpcAddress: (server.grpc_address as string | undefined) ?? '127.0.0.1:0',
    httpAddress: '127.0.0.1:0',
  });
  running.push(s);
  return s;
}

/** A raw TLS HTTP/2 session: the serial of the certificate it was served, and a Check over it. */
async function session(port: number, client?: { cert: string; key: string }) {
  const s = http2.connect(`https://localhost:${port}`, {
    ca: readFileSync(pki.caCert),
    ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  const socket = s.socket as unknown as import('node:tls').TLSSocket;
  const check = () =>
    new Promise<string>((resolve, reject) => {
      const req = s.request({
        ':method': 'POST',
        ':path': '/envoy.service.auth.v3.Authorization/Check',
        'content-type': 'application/grpc',
      });
      let status = '';
      req.on('response', (h) => (status = String(h['grpc-status'] ?? '')));
      req.on('trailers', (t) => (status = String(t['grpc-status'])));
      req.on('error', reject);
      req.on('close', () => resolve(status));
      req.resume();
      const body = authorizationService().Check!.requestSerialize(envoyCheckRequest(CHECK));
      const head = Buffer.alloc(5);
      head.writeUInt32BE(body.length, 1);
      req.end(Buffer.concat([head, body]));
    });
  return { s, serial: socket.getPeerCertificate().serialNumber, check };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('gRPC listener TLS', () => {
  it('mTLS: a client with a certificate from the CA is served; one without is refused', async () => {
    const srv = pki.issue('srv-mtls');
    const cli = pki.issue('client-a', { server: false });
    const svc = await start({
      grpc_tls: { cert_file: srv.cert, key_file: srv.key, client_ca_file: pki.caCert },
    });
    const address = `localhost:${svc.grpcPort}`;
    const ok = await runCheck({ ...CHECK, address, tlsCa: pki.caCert, tlsCert: cli.cert, tlsKey: cli.key });
    expect(ok).toMatchObject({ decision: 'allow' });
    await expect(runCheck({ ...CHECK, address, tlsCa: pki.caCert })).rejects.toMatchObject({ code: 14 });
    // Nor does plaintext get through.
    await expect(runCheck({ ...CHECK, address })).rejects.toMatchObject({ code: 14 });
  });

  it('require_client_cert: false accepts clients without a certificate', async () => {
    const srv = pki.issue('srv-optional');
    const svc = await start({
      grpc_tls: {
        cert_file: srv.cert,
        key_file: srv.key,
        client_ca_file: pki.caCert,
        require_client_cert: false,
      },
    });
    const res = await runCheck({ ...CHECK, address: `localhost:${svc.grpcPort}`, tlsCa: pki.caCert });
    expect(res).toMatchObject({ decision: 'allow' });
  });

  it('a rotated certificate is served to new connections; a live connection keeps working; a bad rotation is rejected', async () => {
    const first = pki.issue('srv-rot-1');
    const second = pki.issue('srv-rot-2');
    const live = join(pki.dir, 'live');
    copyFileSync(first.cert, `${live}.crt`);
    copyFileSync(first.key, `${live}.key`);
    const logs = captureLogger('info');
    const svc = await start({ grpc_tls: { cert_file: 'live.crt', key_file: 'live.key' } }, logs);

    const a = await session(svc.grpcPort);
    expect(await a.check()).toBe('0');
    const firstSerial = a.serial;

    copyFileSync(second.cert, `${live}.crt`);
    copyFileSync(second.key, `${live}.key`);
    await until(() => logs.lines.some((l) => l.msg === 'TLS certificate reloaded'));
    const b = await session(svc.grpcPort);
    expect(b.serial).not.toBe(firstSerial);
    expect(await b.check()).toBe('0');
    // The connection made before the rotation still answers, on its old certificate.
    expect(await a.check()).toBe('0');

    // A key that does not match: logged, and the current certificate stays.
    copyFileSync(first.key, `${live}.key`);
    await until(() => logs.lines.some((l) => l.msg.startsWith('TLS certificate reload rejected')));
    const rejected = logs.lines.find((l) => l.msg.startsWith('TLS certificate reload rejected'))!;
    expect(JSON.stringify(rejected.problems)).toContain('server.grpc_tls.key_file');
    const c = await session(svc.grpcPort);
    expect(c.serial).toBe(b.serial);
    expect(await c.check()).toBe('0');
    for (const x of [a, b, c]) x.s.close();
    expect(logs.text()).not.toContain('PRIVATE KEY');
  });
});

describe('check and check-config commands', () => {
  it('check --tls-ca/--tls-cert/--tls-key talks mTLS; check-config names a mismatched key', async () => {
    const srv = pki.issue('srv-cli');
    const cli1 = pki.issue('client-cli', { server: false });
    const svc = await start({
      grpc_tls: { cert_file: srv.cert, key_file: srv.key, client_ca_file: pki.caCert },
    });
    const address = `localhost:${svc.grpcPort}`;
    const ok = await cli([
      'check',
      '--address',
      address,
      '--path',
      '/x',
      '--tls-ca',
      pki.caCert,
      '--tls-cert',
      cli1.cert,
      '--tls-key',
      cli1.key,
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ decision: 'allow' });
    const noCert = await cli([
      'check',
      '--address',
      address,
      '--path',
      '/x',
      '--timeout',
      '1500',
      '--tls-ca',
      pki.caCert,
    ]);
    expect(noCert.code).not.toBe(0);

    const other = pki.issue('srv-cli-other');
    const file = join(pki.dir, 'cli-config.json');
    writeFileSync(
      file,
      JSON.stringify({ ...ALLOW_ALL, server: { grpc_tls: { cert_file: srv.cert, key_file: other.key } } }),
    );
    const bad = await cli(['check-config', '--config', file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr + bad.stdout).toMatch(
      /server\.grpc_tls\.key_file: .* is not the key of the certificate/,
    );
  });
});

describe('certificate problems are config errors naming the field', () => {
  it('mismatched key, expired certificate, unreadable file: at start and in check-config', async () => {
    const one = pki.issue('srv-one');
    const two = pki.issue('srv-two');
    await expect(start({ grpc_tls: { cert_file: one.cert, key_file: two.key } })).rejects.toThrow(
      /server\.grpc_tls\.key_file: .* is not the key of the certificate/,
    );
    const pair = generateEcKeyPair();
    const expired = createSelfSignedCertificate(pair, {
      subject: 'localhost',
      notBefore: new Date(Date.now() - 2 * 86400_000),
      notAfter: new Date(Date.now() - 86400_000),
    });
    writeFileSync(join(pki.dir, 'expired.crt'), expired.pem);
    writeFileSync(join(pki.dir, 'expired.key'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await expect(start({ http_tls: { cert_file: 'expired.crt', key_file: 'expired.key' } })).rejects.toThrow(
      /server\.http_tls\.cert_file: the certificate expired/,
    );
    await expect(start({ grpc_tls: { cert_file: 'nope.crt', key_file: one.key } })).rejects.toBeInstanceOf(
      ConfigError,
    );

    const file = join(pki.dir, 'config.json');
    writeFileSync(
      file,
      JSON.stringify({
        ...ALLOW_ALL,
        server: {
          grpc_tls: { cert_file: one.cert, key_file: two.key },
          http_tls: { cert_file: 'nope.crt', key_file: one.key, client_ca_file: 'expired.crt' },
        },
      }),
    );
    const { problems } = inspectConfigFile(file, {}, { readFiles: true });
    expect(problems.join('\n')).toMatch(/server\.grpc_tls\.key_file: .* is not the key/);
    expect(problems.join('\n')).toMatch(/server\.http_tls\.cert_file: cannot read nope\.crt: no such file/);
  });

  it('config validation: key without certificate, require_client_cert without a CA', () => {
    expect(() => loadConfigObject({ server: { grpc_tls: { key_file: 'k.pem' } } }, pki.dir, {})).toThrow(
      /server\.grpc_tls\.cert_file: required/,
    );
    expect(() =>
      loadConfigObject(
        { server: { grpc_tls: { cert_file: 'c', key_file: 'k', require_client_cert: true } } },
        pki.dir,
        {},
      ),
    ).toThrow(/server\.grpc_tls\.require_client_cert: needs client_ca_file/);
  });
});

describe('HTTP listener TLS', () => {
  it('serves /healthz over HTTPS with the configured certificate', async () => {
    const srv = pki.issue('srv-http');
    const svc = await start({ http_tls: { cert_file: srv.cert, key_file: srv.key } });
    const body = await new Promise<string>((resolve, reject) =>
      https
        .get(`https://localhost:${svc.httpPort}/healthz`, { ca: readFileSync(pki.caCert) }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve(text));
        })
        .on('error', reject),
    );
    expect(JSON.parse(body)).toEqual({ status: 'ok' });
  });
});

describe('unix socket', () => {
  it('checks over unix:/path; a stale socket file is replaced, a live one is not taken over', async () => {
    const path = join(pki.dir, 'authz.sock');
    // A socket file nobody listens on, as a killed process leaves it.
    execFileSync('python3', [
      '-c',
      `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(path)})`,
    ]);
    expect(existsSync(path)).toBe(true);
    await start({ grpc_address: `unix:${path}` });
    const res = await runCheck({ ...CHECK, address: `unix:${path}` });
    expect(res).toMatchObject({ decision: 'allow' });
    // A second server on the same live socket fails instead of stealing it.
    await expect(start({ grpc_address: `unix:${path}` })).rejects.toMatchObject({ listener: 'grpc' });
    expect(await runCheck({ ...CHECK, address: `unix:${path}` })).toMatchObject({ decision: 'allow' });
  });
});
