// The Helm chart and the Istio / Envoy Gateway examples under deploy/, checked offline
// with the real tools (npm run k8s:install): `helm lint` and `helm template` over every
// values file, every rendered object against the Kubernetes schemas (kubernetes-validate,
// strict: unknown fields fail), custom resources against their CRD schemas, the rendered
// service config through the service's own `check-config`, and the examples against the
// chart they point at.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { findEnvoy, REPO_ROOT, validate as envoyValidate } from '../helpers/envoy.js';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';
import {
  CHART_DIR,
  helmTemplate,
  isCustomResource,
  k8sToolsOrSkip,
  parseManifests,
  run,
  validateCustomResource,
  type K8sTools,
} from '../helpers/k8s-tools.js';

// These suites start real processes (helm, the service, strace, promtool); a loaded CI
// machine can make each of them take seconds.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const EXAMPLES = join(REPO_ROOT, 'deploy', 'examples');
/** Every values file the chart is checked with: its ci/ folder and the examples' values. */
const VALUES_FILES = [
  ...readdirSync(join(CHART_DIR, 'ci')).map((f) => join('deploy/helm/envoy-jwt-authz/ci', f)),
  'deploy/examples/istio/values.yaml',
  'deploy/examples/envoy-gateway/values.yaml',
];
/** The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas shipped. */
const KUBERNETES_VERSIONS = ['1.25.0', '1.37.0'];
const CONFIG_DIR = '/etc/envoy-jwt-authz/config';

const tools = k8sToolsOrSkip('deploy/ (helm chart, examples)', ['helm', 'kubernetes-validate', 'crd-models']);

const kinds = (objs: any[]) => objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
const one = (objs: any[], kind: string, name?: string) => {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found, `${kind}${name ? `/${name}` : ''}`).toHaveLength(1);
  return found[0];
};

/** The ConfigMap with the service's config.yaml (the Envoy one, envoyConfig, is another). */
const serviceConfigMap = (objs: any[]) =>
  one(
    objs.filter((o) => o.data?.['config.yaml'] !== undefined),
    'ConfigMap',
  );

/** kubernetes-validate --strict on core objects; the output of failures ('' when all pass). */
async function validateCore(t: K8sTools, objs: any[], dir: string): Promise<string> {
  const file = join(dir, `objects-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, objs.map((o) => YAML.stringify(o)).join('---\n'));
  const out: string[] = [];
  for (const v of KUBERNETES_VERSIONS) {
    const r = await run(t.kubernetesValidate!, ['--strict', '--quiet', '-k', v, file]);
    if (r.code !== 0) out.push(`[${v}] ${r.stdout}${r.stderr}`);
  }
  return out.join('\n');
}

/** Every `*_file` / `*_files` value in a config object, with its field path. */
function filePaths(node: unknown, path = ''): { field: string; value: string }[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => filePaths(v, `${path}[${i}]`));
  if (!node || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([k, v]) => {
    const field = path ? `${path}.${k}` : k;
    if (/_files?$/.test(k)) {
      const values = Array.isArray(v) ? v : [v];
      return values.filter((x): x is string => typeof x === 'string').map((value) => ({ field, value }));
    }
    return filePaths(v, field);
  });
}

describe.skipIf(!tools)('Helm chart deploy/helm/envoy-jwt-authz', () => {
  const t = tools!;
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'k8s-deploy-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('has values files to check: default, minimal, everything enabled, the two examples', () => {
    expect(VALUES_FILES.map((f) => f.split('/').slice(-2).join('/')).sort()).toEqual([
      'ci/default-values.yaml',
      'ci/full-values.yaml',
      'ci/minimal-values.yaml',
      'envoy-gateway/values.yaml',
      'istio/values.yaml',
    ]);
  });

  for (const values of VALUES_FILES) {
    describe(values, () => {
      let objs: any[];
      beforeAll(async () => {
        objs = await helmTemplate(t.helm!, ['-f', join(REPO_ROOT, values)]);
      });

      it('helm lint --strict passes', async () => {
        const r = await run(t.helm!, ['lint', CHART_DIR, '--strict', '-f', join(REPO_ROOT, values)]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
      });

      it('every rendered object validates (core: Kubernetes schemas, strict; custom: CRD schemas)', async () => {
        expect(objs.length).toBeGreaterThanOrEqual(3);
        expect(
          await validateCore(
            t,
            objs.filter((o) => !isCustomResource(o)),
            dir,
          ),
        ).toBe('');
        for (const o of objs.filter(isCustomResource))
          expect(await validateCustomResource(t.models!, o)).toEqual([]);
      });

      it('the pod is locked down: non-root uid 1000, read-only root fs, no SA token, no capabilities', () => {
        const pod = one(objs, 'Deployment').spec.template.spec;
        expect(pod.automountServiceAccountToken).toBe(false);
        expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000 });
        const [c] = pod.containers;
        expect(c.securityContext).toEqual({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        // Writable volumes: only the optional /tmp emptyDir.
        const writable = c.volumeMounts.filter((m: any) => m.readOnly !== true).map((m: any) => m.mountPath);
        expect(writable).toEqual(pod.volumes.some((v: any) => v.emptyDir) ? ['/tmp'] : []);
        const sa = objs.find((o) => o.kind === 'ServiceAccount');
        if (sa) expect(sa.automountServiceAccountToken).toBe(false);
      });

      it('ports, probes, Service and config agree', () => {
        const deployment = one(objs, 'Deployment');
        const [c] = deployment.spec.template.spec.containers;
        const port = (name: string) => c.ports.find((p: any) => p.name === name).containerPort as number;
        expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
        expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
        expect(c.args).toEqual(['serve', '--config', `${CONFIG_DIR}/config.yaml`]);
        const config = YAML.parse(serviceConfigMap(objs).data['config.yaml']);
        expect(config.server.grpc_address).toBe(`0.0.0.0:${port('grpc')}`);
        expect(config.server.http_address).toBe(`0.0.0.0:${port('http')}`);
        const service = one(objs, 'Service', deployment.metadata.name);
        expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
        expect(service.spec.ports).toEqual([
          { name: 'grpc', port: port('grpc'), targetPort: 'grpc', protocol: 'TCP', appProtocol: 'grpc' },
          { name: 'http', port: port('http'), targetPort: 'http', protocol: 'TCP', appProtocol: 'http' },
        ]);
        const pdb = objs.find((o) => o.kind === 'PodDisruptionBudget');
        if (pdb) expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
        const monitor = objs.find((o) => o.kind === 'ServiceMonitor');
        if (monitor) {
          expect(monitor.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
          expect(monitor.spec.endpoints[0]).toMatchObject({ port: 'http', path: '/metrics' });
        }
        expect(c.env).toContainEqual({
          name: 'NODE_OPTIONS',
          value: expect.stringMatching(/^--max-old-space-size=\d+$/),
        });
      });

      it('every file the config names lies in a mounted volume', () => {
        const pod = one(objs, 'Deployment').spec.template.spec;
        const mounts = pod.containers[0].volumeMounts.map((m: any) => m.mountPath as string);
        const config = YAML.parse(serviceConfigMap(objs).data['config.yaml']);
        for (const { field, value } of filePaths(config)) {
          const abs = posix.resolve(CONFIG_DIR, value);
          expect(
            mounts.some((m: string) => abs.startsWith(`${m}/`)),
            `${field}: ${value} (${abs}) is not under a mount: ${mounts.join(', ')}`,
          ).toBe(true);
        }
      });

      it('the rendered config passes the service’s check-config (with key files where the mounts put them)', () => {
        const config = YAML.parse(serviceConfigMap(objs).data['config.yaml']);
        // /etc/envoy-jwt-authz/* → <tmp>/*: config/, keys/, jwks/, … as the pod sees them.
        const root = mkdtempSync(join(dir, 'etc-'));
        mkdirSync(join(root, 'config'));
        const key = generateEcKeyPair({ kid: 'k8s-test' });
        for (const { value } of filePaths(config)) {
          const target = join(root, 'config', value);
          mkdirSync(dirname(target), { recursive: true });
          writeFileSync(target, JSON.stringify(/jwks/.test(value) ? makeJwks(key) : key.privateJwk));
        }
        const file = join(root, 'config', 'config.yaml');
        writeFileSync(file, YAML.stringify(config));
        const out = execFileSync(
          process.execPath,
          [join(REPO_ROOT, 'dist', 'main.js'), 'check-config', '--config', file],
          {
            encoding: 'utf8',
          },
        );
        expect(out).toContain('configuration OK');
      });
    });
  }

  it('a config change rolls the pods (checksum annotation); a replica change does not', async () => {
    const checksum = async (...set: string[]) =>
      one(
        await helmTemplate(
          t.helm!,
          set.flatMap((s) => ['--set', s]),
        ),
        'Deployment',
      ).spec.template.metadata.annotations['checksum/config'] as string;
    const base = await checksum();
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(await checksum('replicaCount=5')).toBe(base);
    expect(await checksum('config.log.level=debug')).not.toBe(base);
    expect(await checksum('ports.grpc=19001')).not.toBe(base);
  });

  it('optional objects: PDB, headless Service and ServiceAccount by default; HPA, ServiceMonitor, NetworkPolicy when enabled', async () => {
    expect(kinds(await helmTemplate(t.helm!, []))).toEqual([
      'ConfigMap/envoy-jwt-authz',
      'Deployment/envoy-jwt-authz',
      'PodDisruptionBudget/envoy-jwt-authz',
      'Service/envoy-jwt-authz',
      'Service/envoy-jwt-authz-headless',
      'ServiceAccount/envoy-jwt-authz',
    ]);
    const full = await helmTemplate(t.helm!, ['-f', join(CHART_DIR, 'ci', 'full-values.yaml')]);
    expect(kinds(full)).toEqual([
      'ConfigMap/envoy-jwt-authz',
      'ConfigMap/envoy-jwt-authz-envoy',
      'Deployment/envoy-jwt-authz',
      'HorizontalPodAutoscaler/envoy-jwt-authz',
      'NetworkPolicy/envoy-jwt-authz',
      'PodDisruptionBudget/envoy-jwt-authz',
      'Service/envoy-jwt-authz',
      'Service/envoy-jwt-authz-headless',
      'ServiceAccount/authz',
      'ServiceMonitor/envoy-jwt-authz',
    ]);
    // With the HPA, the Deployment leaves replicas to it.
    expect(one(full, 'Deployment').spec.replicas).toBeUndefined();
  });

  describe('envoyConfig: the ext_authz filter and cluster of envoy/envoy-replicas.yaml, for your own Envoy', () => {
    const replicas = YAML.parse(readFileSync(join(REPO_ROOT, 'envoy', 'envoy-replicas.yaml'), 'utf8'));
    const shippedCluster = replicas.static_resources.clusters.find((c: any) => c.name === 'ext_authz');
    const shippedFilter =
      replicas.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.find(
        (f: any) => f.name === 'envoy.filters.http.ext_authz',
      );
    /** The chart's ConfigMap <fullname>-envoy, parsed: its filter and cluster. */
    const rendered = async (...args: string[]) => {
      const cm = one(
        await helmTemplate(t.helm!, ['--set', 'envoyConfig.enabled=true', ...args]),
        'ConfigMap',
        'envoy-jwt-authz-envoy',
      );
      expect(Object.keys(cm.data).sort()).toEqual(['ext_authz_cluster.yaml', 'ext_authz_filter.yaml']);
      return {
        cm,
        filter: YAML.parse(cm.data['ext_authz_filter.yaml']),
        cluster: YAML.parse(cm.data['ext_authz_cluster.yaml']),
      };
    };

    it('is rendered only when enabled, and validates', async () => {
      expect(kinds(await helmTemplate(t.helm!, []))).not.toContain('ConfigMap/envoy-jwt-authz-envoy');
      const { cm } = await rendered();
      expect(await validateCore(t, [cm], dir)).toBe('');
      // It points at the headless Service: without one it refuses to render.
      const r = await run(t.helm!, [
        'template',
        'x',
        CHART_DIR,
        '--set',
        'envoyConfig.enabled=true',
        '--set',
        'service.headless=false',
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('envoyConfig.enabled needs service.headless');
      // The timeouts are durations.
      const bad = await run(t.helm!, ['template', 'x', CHART_DIR, '--set', 'envoyConfig.checkTimeout=500ms']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('/envoyConfig/checkTimeout');
    });

    it('filter and cluster equal envoy/envoy-replicas.yaml (retries, health check, outlier detection, timeouts), endpoint = headless Service', async () => {
      const { filter, cluster } = await rendered('--set', 'ports.grpc=19001');
      expect(filter).toEqual(shippedFilter);
      const { load_assignment: endpoints, ...rest } = cluster;
      const { load_assignment: _shippedEndpoints, ...shippedRest } = shippedCluster;
      expect(rest).toEqual(shippedRest);
      expect(endpoints).toEqual({
        cluster_name: 'ext_authz',
        endpoints: [
          {
            lb_endpoints: [
              {
                endpoint: {
                  address: {
                    socket_address: {
                      address: 'envoy-jwt-authz-headless.authz.svc.cluster.local',
                      port_value: 19001,
                    },
                  },
                },
              },
            ],
          },
        ],
      });
    });

    it('the timeouts are values', async () => {
      const { filter, cluster } = await rendered(
        '--set',
        'envoyConfig.checkTimeout=2s',
        '--set',
        'envoyConfig.connectTimeout=1s',
        '--set',
        'envoyConfig.healthCheck.interval=3s',
        '--set',
        'envoyConfig.healthCheck.timeout=1.5s',
      );
      const grpc = filter.typed_config.grpc_service;
      expect(grpc.timeout).toBe('2s');
      expect(grpc.retry_policy.retry_back_off.max_interval).toBe('2s');
      expect(cluster.connect_timeout).toBe('1s');
      expect(cluster.health_checks[0]).toMatchObject({ interval: '3s', timeout: '1.5s' });
    });

    it('the rendered filter and cluster in a minimal bootstrap pass the real `envoy --mode validate`', async (ctx) => {
      const envoy = await findEnvoy();
      if ('reason' in envoy) {
        console.warn(`[envoy] SKIPPED: chart envoyConfig validate: ${envoy.reason}`);
        ctx.skip();
        return;
      }
      const { filter, cluster } = await rendered();
      const bootstrap = {
        static_resources: {
          listeners: [
            {
              name: 'ingress_http',
              address: { socket_address: { address: '127.0.0.1', port_value: 8080 } },
              filter_chains: [
                {
                  filters: [
                    {
                      name: 'envoy.filters.network.http_connection_manager',
                      typed_config: {
                        '@type':
                          'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                        stat_prefix: 'ingress_http',
                        route_config: {
                          virtual_hosts: [
                            {
                              name: 'all',
                              domains: ['*'],
                              routes: [{ match: { prefix: '/' }, direct_response: { status: 200 } }],
                            },
                          ],
                        },
                        http_filters: [
                          filter,
                          {
                            name: 'envoy.filters.http.router',
                            typed_config: {
                              '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                            },
                          },
                        ],
                      },
                    },
                  ],
                },
              ],
            },
          ],
          clusters: [cluster],
        },
      };
      const file = join(dir, 'envoy-bootstrap.yaml');
      writeFileSync(file, YAML.stringify(bootstrap));
      const ok = await envoyValidate(envoy, file);
      expect(ok.ok, ok.output).toBe(true);
      // The check can fail: a misspelt field in the cluster is refused.
      writeFileSync(
        file,
        YAML.stringify({
          ...bootstrap,
          static_resources: {
            ...bootstrap.static_resources,
            clusters: [{ ...cluster, conect_timeout: '1s' }],
          },
        }),
      );
      expect((await envoyValidate(envoy, file)).ok).toBe(false);
    });
  });

  it('NetworkPolicy: the gRPC port only from the configured gateway / mesh selectors, HTTP separately', async () => {
    const from = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'gw' } } }];
    const objs = await helmTemplate(t.helm!, [
      '--set',
      'networkPolicy.enabled=true',
      '--set-json',
      `networkPolicy.grpc.from=${JSON.stringify(from)}`,
    ]);
    const policy = one(objs, 'NetworkPolicy');
    expect(policy.spec.podSelector.matchLabels).toEqual(one(objs, 'Deployment').spec.selector.matchLabels);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    expect(policy.spec.ingress).toEqual([
      { ports: [{ port: 'grpc', protocol: 'TCP' }], from },
      { ports: [{ port: 'http', protocol: 'TCP' }] },
    ]);
    // No selectors: refuse to render rather than open (or close) the port silently.
    const r = await run(t.helm!, [
      'template',
      'x',
      CHART_DIR,
      '--set',
      'networkPolicy.enabled=true',
      '--set-json',
      'networkPolicy.grpc.from=[]',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('networkPolicy.grpc.from is empty');
  });

  it('values.schema.json refuses a misspelt or mistyped value, and covers every value', async () => {
    const render = (...args: string[]) => run(t.helm!, ['template', 'x', CHART_DIR, ...args]);
    const typo = await render('--set', 'replicas=3');
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toContain("additional properties 'replicas' not allowed");
    const port = await render('--set', 'ports.grpc=abc');
    expect(port.code).not.toBe(0);
    expect(port.stderr).toContain('/ports/grpc');
    const nested = await render('--set', 'networkPolicy.grpcc.from=x');
    expect(nested.code).not.toBe(0);
    // A mount that would shadow the config or keys folder.
    const shadow = await render('--set-json', 'extraMounts=[{"name":"keys","secretName":"s"}]');
    expect(shadow.code).not.toBe(0);
    const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8'));
    const values = YAML.parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8'));
    expect(Object.keys(schema.properties).sort()).toEqual(Object.keys(values).sort());
  });

  it('NOTES warn when downstream tokens would be signed with a per-pod ephemeral key', async () => {
    const notes = async (...args: string[]) => {
      const r = await run(t.helm!, [
        'install',
        'envoy-jwt-authz',
        CHART_DIR,
        '-n',
        'authz',
        '--dry-run=client',
        ...args,
      ]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.slice(r.stdout.indexOf('NOTES:'));
    };
    const ephemeral = await notes(
      '--set-json',
      'config.upstream={"token":{"issuer":"https://a","audiences":["b"]}}',
    );
    expect(ephemeral).toContain('envoy-jwt-authz.authz.svc.cluster.local:9001');
    expect(ephemeral).toContain('WARNING: upstream.token has no signing key file');
    expect(await notes('-f', join(EXAMPLES, 'istio', 'values.yaml'))).not.toContain('WARNING');
  });

  it('a topology spread constraint with its own labelSelector keeps it', async () => {
    const own = {
      maxSkew: 2,
      topologyKey: 'zone',
      whenUnsatisfiable: 'DoNotSchedule',
      labelSelector: { matchLabels: { a: 'b' } },
    };
    const objs = await helmTemplate(t.helm!, [
      '--set-json',
      `topologySpreadConstraints=${JSON.stringify([own])}`,
    ]);
    expect(one(objs, 'Deployment').spec.template.spec.topologySpreadConstraints).toEqual([own]);
  });

  it('refuses listen addresses in config (the chart owns them, from ports.*)', async () => {
    const r = await run(t.helm!, [
      'template',
      'x',
      CHART_DIR,
      '--set',
      'config.server.grpc_address=0.0.0.0:7000',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('config.server.grpc_address');
  });

  it('the validators catch mistakes (a misspelt field, a wrong type, a bad enum)', async () => {
    const objs = await helmTemplate(t.helm!, []);
    const typo = structuredClone(objs);
    const c = one(typo, 'Deployment').spec.template.spec.containers[0];
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    expect(await validateCore(t, typo, dir)).toContain("'readinesProbe' was unexpected");
    const badPort = structuredClone(objs);
    one(badPort, 'Service', 'envoy-jwt-authz').spec.ports[0].port = 'grpc';
    expect(await validateCore(t, badPort, dir)).not.toBe('');
    const policy = parseManifests(
      readFileSync(join(EXAMPLES, 'istio', 'authorization-policy.yaml'), 'utf8'),
    )[0];
    policy.spec.action = 'CUSTUM';
    expect((await validateCustomResource(t.models!, policy)).join()).toContain('action');
    // CRD schemas allow unknown fields; the model's declared types do not.
    const custom = parseManifests(
      readFileSync(join(EXAMPLES, 'istio', 'authorization-policy.yaml'), 'utf8'),
    )[0];
    custom.spec.providr = custom.spec.provider;
    custom.spec.rules[0].to[0].operation.pathz = ['/x'];
    expect(await validateCustomResource(t.models!, custom)).toEqual([
      'security.istio.io/v1 AuthorizationPolicy orders-ext-authz: AuthorizationPolicy.spec.rules[0].to[0].operation.pathz: unknown field',
      'security.istio.io/v1 AuthorizationPolicy orders-ext-authz: AuthorizationPolicy.spec.providr: unknown field',
    ]);
    const sp = parseManifests(
      readFileSync(join(EXAMPLES, 'envoy-gateway', 'security-policy.yaml'), 'utf8'),
    )[0];
    sp.spec.extAuth.failOpn = sp.spec.extAuth.failOpen;
    sp.spec.extAuth.grpc.backendRefs[0].prot = 9001;
    expect(await validateCustomResource(t.models!, sp)).toEqual([
      'gateway.envoyproxy.io/v1alpha1 SecurityPolicy orders-ext-authz: SecurityPolicy.spec.extAuth.grpc.backendRefs[0].prot: unknown field',
      'gateway.envoyproxy.io/v1alpha1 SecurityPolicy orders-ext-authz: SecurityPolicy.spec.extAuth.failOpn: unknown field',
    ]);
    const full = await helmTemplate(t.helm!, ['-f', join(CHART_DIR, 'ci', 'full-values.yaml')]);
    const monitor = one(full, 'ServiceMonitor');
    monitor.spec.endpoints[0].scrapeInterval = '1m';
    expect((await validateCustomResource(t.models!, monitor)).join()).toContain(
      'endpoints[0].scrapeInterval: unknown field',
    );
  });
});

describe.skipIf(!tools)('deploy/examples against their CRD schemas and the chart', () => {
  const t = tools!;
  const load = (...p: string[]) => parseManifests(readFileSync(join(EXAMPLES, ...p), 'utf8'));

  it('every example object validates against its CRD schema', async () => {
    const files = ['istio/mesh-config.yaml', 'istio/authorization-policy.yaml', 'envoy-gateway/gateway.yaml'];
    files.push('envoy-gateway/security-policy.yaml');
    const objs = files.flatMap((f) => load(...f.split('/')));
    expect(objs.map((o) => o.kind).sort()).toEqual([
      'AuthorizationPolicy',
      'AuthorizationPolicy',
      'Gateway',
      'GatewayClass',
      'HTTPRoute',
      'IstioOperator',
      'ReferenceGrant',
      'SecurityPolicy',
    ]);
    for (const o of objs) expect(await validateCustomResource(t.models!, o)).toEqual([]);
  });

  it('Istio: the extension provider points at the chart’s Service and gRPC port, fails closed', async () => {
    const objs = await helmTemplate(t.helm!, ['-f', join(EXAMPLES, 'istio', 'values.yaml')]);
    const service = one(objs, 'Service', 'envoy-jwt-authz');
    const grpc = service.spec.ports.find((p: any) => p.name === 'grpc');
    const [operator] = load('istio', 'mesh-config.yaml');
    const provider = operator.spec.meshConfig.extensionProviders[0];
    expect(provider.envoyExtAuthzGrpc).toEqual({
      service: `${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`,
      port: grpc.port,
      timeout: '0.5s',
      failOpen: false,
      statusOnError: '503',
    });
    // The istiod Helm values say the same.
    const istiod = YAML.parse(readFileSync(join(EXAMPLES, 'istio', 'istiod-values.yaml'), 'utf8'));
    expect(istiod.meshConfig).toEqual(operator.spec.meshConfig);
    for (const policy of load('istio', 'authorization-policy.yaml')) {
      expect(policy.spec).toMatchObject({ action: 'CUSTOM', provider: { name: provider.name } });
    }
    // The namespace the meshed workloads live in may reach the gRPC port.
    const np = one(objs, 'NetworkPolicy');
    const namespaces = np.spec.ingress[0].from.map(
      (f: any) => f.namespaceSelector?.matchLabels['kubernetes.io/metadata.name'],
    );
    for (const policy of load('istio', 'authorization-policy.yaml'))
      expect(namespaces).toContain(policy.metadata.namespace);
  });

  it('Envoy Gateway: SecurityPolicy extAuth.grpc → the chart’s Service, allowed by a ReferenceGrant', async () => {
    const objs = await helmTemplate(t.helm!, ['-f', join(EXAMPLES, 'envoy-gateway', 'values.yaml')]);
    const service = one(objs, 'Service', 'envoy-jwt-authz');
    const grpc = service.spec.ports.find((p: any) => p.name === 'grpc');
    const examples = [
      ...load('envoy-gateway', 'gateway.yaml'),
      ...load('envoy-gateway', 'security-policy.yaml'),
    ];
    const policy = one(examples, 'SecurityPolicy');
    expect(policy.spec.extAuth.failOpen).toBe(false);
    expect(policy.spec.extAuth.grpc.backendRefs).toEqual([
      { name: service.metadata.name, namespace: service.metadata.namespace, port: grpc.port },
    ]);
    const route = one(examples, 'HTTPRoute');
    expect(policy.spec.targetRefs).toEqual([
      { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: route.metadata.name },
    ]);
    expect(route.metadata.namespace).toBe(policy.metadata.namespace);
    const gateway = one(examples, 'Gateway');
    expect(route.spec.parentRefs).toEqual([{ name: gateway.metadata.name }]);
    expect(gateway.spec.gatewayClassName).toBe(one(examples, 'GatewayClass').metadata.name);
    const grant = one(examples, 'ReferenceGrant');
    expect(grant.metadata.namespace).toBe(service.metadata.namespace);
    expect(grant.spec).toEqual({
      from: [
        { group: 'gateway.envoyproxy.io', kind: 'SecurityPolicy', namespace: policy.metadata.namespace },
      ],
      to: [{ group: '', kind: 'Service', name: service.metadata.name }],
    });
  });
});
