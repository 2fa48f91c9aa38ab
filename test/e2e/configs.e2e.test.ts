// Every Envoy config the repo ships or documents, rendered onto test addresses,
// must pass `envoy --mode validate` on the real Envoy.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  bootstrapsInMarkdown,
  envoyOrSkip,
  renderEnvoyConfig,
  shippedEnvoyYaml,
  startEnvoy,
  validate,
} from '../helpers/envoy.js';

const envoy = await envoyOrSkip('Envoy config validation');
const dir = mkdtempSync(join(tmpdir(), 'envoy-configs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
async function expectValid(doc: unknown): Promise<void> {
  const file = join(dir, `config-${++n}.yaml`);
  writeFileSync(file, YAML.stringify(doc));
  const result = await validate(envoy!, file);
  expect(result.output, 'envoy --mode validate').not.toMatch(/error|exception/i);
  expect(result.ok).toBe(true);
}

describe.skipIf(!envoy)('Envoy accepts the configs in the repo', () => {
  it('envoy/envoy.yaml validates as shipped', async () => {
    await expectValid(YAML.parse(shippedEnvoyYaml()));
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
      const res = await fetch(`${running.adminUrl}/ready`);
      expect(await res.text()).toMatch(/LIVE/);
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

  const deploy = readFileSync(join(REPO_ROOT, 'docs', 'deploy.md'), 'utf8');
  for (const { line, doc } of bootstrapsInMarkdown(deploy)) {
    it(`docs/deploy.md bootstrap at line ${line} validates`, async () => {
      await expectValid(renderEnvoyConfig(doc));
    });
  }
});
