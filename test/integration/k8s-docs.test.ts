// docs/kubernetes.md: every shell command in it runs as shown (helm template / lint,
// promtool, the key generation), the ones that need a cluster name files that exist and
// render, and the values table matches the chart's values.yaml.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { REPO_ROOT } from '../helpers/envoy.js';
import { CHART_DIR, k8sToolsOrSkip, parseManifests } from '../helpers/k8s-tools.js';

// These suites start real processes (helm, the service, strace, promtool); a loaded CI
// machine can make each of them take seconds.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const DOC = readFileSync(join(REPO_ROOT, 'docs', 'kubernetes.md'), 'utf8');

/** The commands of every ```sh block, continuation lines joined, in order. */
function shellCommands(markdown: string): string[] {
  const out: string[] = [];
  for (const block of markdown.matchAll(/^( *)```sh\n([\s\S]*?)^\1```$/gm)) {
    const text = block[2]!.replace(/\\\n\s*/g, ' ');
    for (const line of text.split('\n')) {
      const cmd = line.trim();
      if (cmd && !cmd.startsWith('#')) out.push(cmd.replace(/\s+/g, ' '));
    }
  }
  return out;
}

/** What the test does with a command: run it, or (needs a cluster) check what it names. */
function kindOf(cmd: string): 'run' | 'install' | 'kubectl' | 'external' | 'npm' | 'unknown' {
  if (/^(helm (template|lint)|promtool|node dist\/main\.js|mkdir -p) /.test(cmd)) return 'run';
  if (/^helm install \S+ deploy\/helm\/envoy-jwt-authz /.test(cmd)) return 'install';
  if (/^kubectl /.test(cmd)) return 'kubectl';
  if (/^(istioctl install|helm upgrade istiod istio\/istiod) /.test(cmd)) return 'external';
  if (/^npm run k8s:(install|validate)$/.test(cmd)) return 'npm';
  return 'unknown';
}

describe('docs/kubernetes.md', () => {
  const commands = shellCommands(DOC);

  it('has commands, and every one is of a kind this test runs or checks', () => {
    expect(commands.length).toBeGreaterThanOrEqual(15);
    expect(commands.filter((c) => kindOf(c) === 'unknown')).toEqual([]);
    expect(commands.filter((c) => kindOf(c) === 'run').length).toBeGreaterThanOrEqual(6);
  });

  it('the files the cluster commands apply exist and hold objects', () => {
    for (const cmd of commands.filter((c) => kindOf(c) !== 'run')) {
      for (const f of cmd.matchAll(/(?:^| )-f (\S+)/g)) {
        const file = join(REPO_ROOT, f[1]!);
        expect(existsSync(file), `${cmd}: ${f[1]}`).toBe(true);
        expect(parseManifests(readFileSync(file, 'utf8')).length, f[1]).toBeGreaterThanOrEqual(1);
      }
    }
  });

  it('the values table names every top-level value, and every key it names exists in values.yaml', () => {
    const values = YAML.parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8'));
    const rows = [...DOC.matchAll(/^\| (`[^|]+`) \| ([^|]+) \|/gm)].filter((r) => !r[1]!.includes('/'));
    const keys = rows.flatMap((r) =>
      [...r[1]!.matchAll(/`([a-zA-Z.]+)`/g)].map((m) => ({ key: m[1]!, unset: r[2]!.includes('(unset)') })),
    );
    const has = (path: string) =>
      path.split('.').reduce<any>((o, k) => (o && k in o ? o[k] : undefined), values) !== undefined;
    for (const { key, unset } of keys) {
      // Alert names and the like share the table syntax; only dotted value paths and top-level keys count.
      if (/^EnvoyJwtAuthz/.test(key)) continue;
      expect(has(key) || unset, `${key} is in the table but not in values.yaml`).toBe(true);
    }
    const named = new Set(keys.map((k) => k.key.split('.')[0]));
    expect(Object.keys(values).filter((k) => !named.has(k))).toEqual([]);
  });
});

const tools = k8sToolsOrSkip('docs/kubernetes.md commands', ['helm', 'promtool']);

describe.skipIf(!tools)('docs/kubernetes.md commands run as shown', () => {
  // A working folder laid out like the repository (dist/, deploy/ linked), with helm and
  // promtool on PATH, so the commands run exactly as written and their files land here.
  let cwd: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(() => {
    cwd = mkdtempSync(join(tmpdir(), 'k8s-docs-'));
    for (const d of ['dist', 'deploy', 'node_modules', 'package.json'])
      symlinkSync(join(REPO_ROOT, d), join(cwd, d));
    mkdirSync(join(cwd, '.bin'));
    symlinkSync(tools!.helm!, join(cwd, '.bin', 'helm'));
    symlinkSync(tools!.promtool!, join(cwd, '.bin', 'promtool'));
    env = { ...process.env, PATH: `${join(cwd, '.bin')}:${process.env.PATH}` };
  });
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  const sh = (cmd: string) =>
    execFileSync('bash', ['-o', 'pipefail', '-c', cmd], { cwd, env, encoding: 'utf8', maxBuffer: 32 << 20 });

  it('each helm / promtool / node command exits 0; helm template prints objects; the key is a private JWK', () => {
    for (const cmd of shellCommands(DOC).filter((c) => kindOf(c) === 'run')) {
      const out = sh(cmd);
      if (cmd.startsWith('helm template')) expect(parseManifests(out).length, cmd).toBeGreaterThanOrEqual(1);
    }
    const key = JSON.parse(readFileSync(join(cwd, 'keys', 'signing.jwk.json'), 'utf8'));
    expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', kid: '2026-01', d: expect.any(String) });
  });

  it('each `helm install` of the chart renders with the same arguments', () => {
    const installs = shellCommands(DOC).filter((c) => kindOf(c) === 'install');
    expect(installs.length).toBeGreaterThanOrEqual(3);
    for (const cmd of installs) {
      expect(
        parseManifests(sh(cmd.replace(/^helm install /, 'helm template '))).length,
      ).toBeGreaterThanOrEqual(5);
    }
  });
});
