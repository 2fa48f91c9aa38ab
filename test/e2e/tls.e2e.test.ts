// The real Envoy talking mTLS to the gRPC listener: envoy/envoy.yaml with its
// commented TLS variant of the ext_authz cluster switched on (the block between
// tls-variant-begin/end, uncommented as a user would), pointed at test certificates.
import type { Server } from 'node:http';
import { request } from 'node:http';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  envoyOrSkip,
  renderEnvoyConfig,
  shippedEnvoyYaml,
  startEnvoy,
  type RunningEnvoy,
} from '../helpers/envoy.js';
import { App } from '../../src/server/app.js';
import { loadConfigObject } from '../../src/config/load.js';
import { Metrics } from '../../src/observability/metrics.js';
import { captureLogger } from '../helpers/logger.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';
import { startEcho } from '../helpers/echo-upstream.mjs';

const envoy = await envoyOrSkip('Envoy mTLS to the ext_authz service');

/** The commented TLS block of the shipped envoy.yaml, uncommented and parsed. */
function shippedTlsVariant(): any {
  const text = shippedEnvoyYaml();
  const begin = text.indexOf('# tls-variant-begin');
  const end = text.indexOf('# tls-variant-end');
  expect(begin).toBeGreaterThan(0);
  const lines = text
    .slice(begin, end)
    .split('\n')
    .slice(1)
    .map((l) => l.replace(/^\s*# ?/, ''))
    .filter((l) => l.trim() !== '');
  return YAML.parse(lines.join('\n')).transport_socket;
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!envoy)('Envoy → mTLS → ext_authz gRPC listener', () => {
  let pki: TestPki;
  let svc: App;
  let echo: Server;
  let proxy: RunningEnvoy;
  const logs = captureLogger('info');

  beforeAll(async () => {
    pki = createTestPki();
    const server = pki.issue('authz-server');
    const client = pki.issue('envoy-client', { server: false });
    svc = await App.start(
      loadConfigObject(
        {
          server: { grpc_tls: { cert_file: server.cert, key_file: server.key, client_ca_file: pki.caCert } },
          rules: [
            { name: 'internal', match: { path_separated_prefix: '/internal' }, action: 'deny' },
            { name: 'rest', match: { path_prefix: '/' }, action: 'allow' },
          ],
        },
        pki.dir,
        {},
      ),
      {
        logger: logs.logger,
        metrics: new Metrics({ processMetrics: false }),
        grpcAddress: '127.0.0.1:0',
        httpAddress: '127.0.0.1:0',
      },
    );
    echo = await startEcho(0);
    const tls = shippedTlsVariant();
    const ctx = tls.typed_config.common_tls_context;
    tls.typed_config.sni = 'localhost';
    ctx.tls_certificates[0].certificate_chain.filename = client.cert;
    ctx.tls_certificates[0].private_key.filename = client.key;
    ctx.validation_context.trusted_ca.filename = pki.caCert;
    ctx.validation_context.match_typed_subject_alt_names[0].matcher.exact = 'localhost';
    const doc = renderEnvoyConfig(shippedEnvoyYaml(), {
      clusters: {
        ext_authz: `127.0.0.1:${svc.grpcPort}`,
        backend: `127.0.0.1:${(echo.address() as { port: number }).port}`,
      },
      mutate: (d) => {
        const cluster = d.static_resources.clusters.find((c: any) => c.name === 'ext_authz');
        cluster.transport_socket = tls;
      },
    });
    proxy = await startEnvoy(envoy!, doc);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await svc?.shutdown(0);
    await new Promise((r) => echo?.close(r));
    pki?.cleanup();
  });

  it('Envoy checks over mTLS: the service denies /internal and allows the rest', async () => {
    const denied = await get(proxy.port, '/internal/x');
    expect(denied.status, denied.body).toBe(403);
    expect(JSON.parse(denied.body)).toEqual({ error: 'forbidden' });
    const allowed = await get(proxy.port, '/public/x');
    expect(allowed.status, allowed.body).toBe(200);
    const stats = await proxy.stats('cluster\\.ext_authz\\.ssl\\.(handshake|connection_error)');
    expect(stats['cluster.ext_authz.ssl.handshake']).toBeGreaterThan(0);
    expect(stats['cluster.ext_authz.ssl.connection_error'] ?? 0).toBe(0);
  });
});
