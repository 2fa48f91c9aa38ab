// The real Envoy talking mTLS to the gRPC listener: envoy/envoy.yaml with its
// commented TLS variant of the ext_authz cluster switched on (the block between
// tls-variant-begin/end, uncommented as a user would), pointed at test certificates.
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, shippedEnvoyYaml, type RunningEnvoy } from '../helpers/envoy.js';
import { httpGet as get, startStack, type Stack } from '../helpers/stack.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';

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

describe.skipIf(!envoy)('Envoy → mTLS → ext_authz gRPC listener', () => {
  let pki: TestPki;
  let stack: Stack;
  let proxy: RunningEnvoy;

  beforeAll(async () => {
    pki = createTestPki();
    const server = pki.issue('authz-server');
    const client = pki.issue('envoy-client', { server: false });
    const tls = shippedTlsVariant();
    const ctx = tls.typed_config.common_tls_context;
    tls.typed_config.sni = 'localhost';
    ctx.tls_certificates[0].certificate_chain.filename = client.cert;
    ctx.tls_certificates[0].private_key.filename = client.key;
    ctx.validation_context.trusted_ca.filename = pki.caCert;
    ctx.validation_context.match_typed_subject_alt_names[0].matcher.exact = 'localhost';
    stack = await startStack(envoy!, {
      dir: pki.dir,
      config: {
        server: { grpc_tls: { cert_file: server.cert, key_file: server.key, client_ca_file: pki.caCert } },
        rules: [
          { name: 'internal', match: { path_separated_prefix: '/internal' }, action: 'deny' },
          { name: 'rest', match: { path_prefix: '/' }, action: 'allow' },
        ],
      },
      service: { logLevel: 'info' },
      envoy: {
        mutate: (d) => {
          const cluster = d.static_resources.clusters.find((c: any) => c.name === 'ext_authz');
          cluster.transport_socket = tls;
        },
      },
    });
    proxy = stack.envoy;
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
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
