// The Grafana dashboard (deploy/grafana/) and the Prometheus alerts (deploy/prometheus/)
// use only what the service really exports: the real `serve` process is started, checked
// through and scraped, and every metric, label and label value the queries name is
// looked up in that scrape. The alerts pass `promtool check rules` and their unit tests
// (`promtool test rules`), and those unit tests catch a changed threshold.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { freePort, REPO_ROOT } from '../helpers/envoy.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';
import { GRAFANA_DASHBOARD_DTS, k8sToolsOrSkip, run, unknownFields } from '../helpers/k8s-tools.js';

// These suites start real processes (helm, the service, strace, promtool); a loaded CI
// machine can make each of them take seconds.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const DASHBOARD = join(REPO_ROOT, 'deploy', 'grafana', 'envoy-jwt-authz.json');
const ALERTS = join(REPO_ROOT, 'deploy', 'prometheus', 'alerts.yaml');
const ALERT_TESTS = join(REPO_ROOT, 'deploy', 'prometheus', 'alerts.test.yaml');
const MAIN = join(REPO_ROOT, 'dist', 'main.js');
/** Labels Prometheus adds to every scraped series (target labels) and the histogram's `le`. */
const TARGET_LABELS = new Set([
  'namespace',
  'job',
  'pod',
  'instance',
  'service',
  'endpoint',
  'container',
  'le',
]);
const PROMQL_WORDS = new Set([
  'by',
  'without',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'inf',
  'nan',
]);

/** What a /metrics text exports: series names (histogram parts included) → label names and values seen. */
export interface Exported {
  names: Set<string>;
  labels: Map<string, Map<string, Set<string>>>;
}

/**
 * The label names each metric is declared with in the service (src/observability/metrics.ts),
 * for the series the scrape holds no sample of yet (token endpoint, rate limits, …).
 */
async function declaredLabels(): Promise<Map<string, string[]>> {
  const { Metrics } = await import('../../src/observability/metrics.js');
  const metrics = new Metrics({ processMetrics: false });
  const out = new Map<string, string[]>();
  for (const m of metrics.registry.getMetricsAsArray())
    out.set((m as any).name, [...((m as any).labelNames ?? [])]);
  return out;
}

export function parseExposition(text: string): Exported {
  const names = new Set<string>();
  const labels = new Map<string, Map<string, Set<string>>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      const [, name, kind] = type;
      names.add(name!);
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      if (kind === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}\s/.exec(line);
    if (!sample) continue;
    let byLabel = labels.get(sample[1]!);
    if (!byLabel) labels.set(sample[1]!, (byLabel = new Map()));
    for (const m of sample[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      let values = byLabel.get(m[1]!);
      if (!values) byLabel.set(m[1]!, (values = new Set()));
      values.add(m[2]!);
    }
  }
  return { names, labels };
}

/**
 * The problems of one PromQL expression against an export: unknown metric names, label
 * names a metric does not carry, and exact label values never seen for (or allowed in) it.
 */
export function problemsOf(
  expr: string,
  exported: Exported,
  allowedValues: Record<string, ReadonlySet<string>> = {},
): string[] {
  const problems: string[] = [];
  const text = expr.replace(/\$\{?[a-zA-Z_]+\}?/g, '1m');
  // Selectors first: metric{matchers}.
  for (const m of text.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g)) {
    const [, metric, matchers] = m;
    if (!exported.names.has(metric!)) continue; // reported below
    const base = metric!.replace(/_(bucket|sum|count)$/, '');
    const seen = exported.labels.get(metric!) ?? exported.labels.get(base);
    for (const mm of matchers!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
      const [, label, op, value] = mm;
      if (TARGET_LABELS.has(label!)) continue;
      if (!seen?.has(label!)) problems.push(`${metric}: no label ${label}`);
      else if (op === '=') {
        const allowed = allowedValues[label!] ?? seen.get(label!)!;
        // A declared label with no sample yet has no values to compare with.
        if (allowed.size > 0 && !allowed.has(value!))
          problems.push(`${metric}: ${label}="${value}" is not a value it has`);
      }
    }
  }
  const bare = text
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+|ms|[smhdwy])?\b/gi, '0');
  // Grouping labels must exist on some metric of the expression (or be target labels).
  const metrics = [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
    .map((m) => m[0])
    .filter((n) => exported.names.has(n));
  for (const g of bare.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const label of g[1]!.split(',').map((s) => s.trim())) {
      if (!label || TARGET_LABELS.has(label)) continue;
      const carried = metrics.some((n) =>
        (exported.labels.get(n) ?? exported.labels.get(n.replace(/_bucket$/, '')))?.has(label),
      );
      if (!carried) problems.push(`by (${label}): no metric of the expression has it`);
    }
  }
  const withoutGroups = bare.replace(/\b(?:by|without)\s*\([^)]*\)/g, '');
  for (const m of withoutGroups.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, word, call] = m;
    if (call || PROMQL_WORDS.has(word!.toLowerCase()) || /^\d/.test(word!)) continue;
    if (!exported.names.has(word!)) problems.push(`${word}: not exported by the service`);
  }
  return [...new Set(problems)];
}

/** Every PromQL expression of the dashboard (targets and template variable queries). */
function dashboardExprs(dash: any): string[] {
  const targets = dash.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr as string));
  const variables = dash.templating.list
    .filter((v: any) => v.type === 'query')
    .map((v: any) => {
      const q = typeof v.query === 'string' ? v.query : v.query.query;
      return /label_values\((.*),\s*\w+\)$/.exec(q)![1]!;
    });
  return [...targets, ...variables];
}

const alertRules = (): any[] => YAML.parse(readFileSync(ALERTS, 'utf8')).groups.flatMap((g: any) => g.rules);

/** The deny reasons the service can report (the union type in src/core/decision.ts). */
function denyReasons(): Set<string> {
  const src = readFileSync(join(REPO_ROOT, 'src', 'core', 'decision.ts'), 'utf8');
  const union = /export type DenyReason =([^;]*);/.exec(src)![1]!;
  return new Set([...union.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]!));
}

describe('the dashboard and the alerts name only what the running service exports', () => {
  const ec = generateEcKeyPair({ kid: 'obs-1' });
  let jwks: JwksServer;
  let dir: string;
  let child: ChildProcess;
  let exported: Exported;
  let scrape: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'k8s-observability-'));
    jwks = await startJwksServer({ jwks: makeJwks(ec) });
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(makeJwks(ec)));
    const [grpc, http] = [await freePort(), await freePort()];
    const config = {
      server: { grpc_address: `127.0.0.1:${grpc}`, http_address: `127.0.0.1:${http}` },
      log: { level: 'warn' },
      issuers: [
        { name: 'remote', issuer: 'https://remote.example', audiences: ['api'], jwks_uri: jwks.url },
        { name: 'local', issuer: 'https://local.example', audiences: ['api'], jwks_file: './jwks.json' },
      ],
      default_action: 'authenticate',
      upstream: { claim_headers: { 'x-user-id': 'sub' } },
    };
    writeFileSync(join(dir, 'config.yaml'), YAML.stringify(config));
    // The real process, as the image runs it (process and Node metrics included).
    child = spawn(process.execPath, [MAIN, 'serve', '--config', join(dir, 'config.yaml')], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const base = `http://127.0.0.1:${http}`;
    // Generous: a loaded CI machine can take many seconds to start a Node process.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(`${base}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error('the service did not become ready');
      await new Promise((r) => setTimeout(r, 50)); // polling a real child process
    }
    const token = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'ES256', kid: 'obs-1' })
      .setIssuer('https://remote.example')
      .setAudience('api')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(ec.privateKey);
    const check = (...args: string[]) =>
      execFileSync(
        process.execPath,
        [MAIN, 'check', '--address', `127.0.0.1:${grpc}`, '--path', '/x', ...args],
        {
          encoding: 'utf8',
        },
      );
    expect(check('--token', token)).toMatch(/allow/i);
    try {
      check();
    } catch {
      // `check` exits non-zero on a denial; the denial is what we want counted.
    }
    scrape = await (await fetch(`${base}/metrics`)).text();
    exported = parseExposition(scrape);
    // A metric without samples yet: its declared label names (no values seen).
    for (const [name, labelNames] of await declaredLabels()) {
      if (!exported.names.has(name) || exported.labels.has(name)) continue;
      exported.labels.set(name, new Map(labelNames.map((l) => [l, new Set<string>()])));
    }
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await jwks?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the scrape has the service’s metrics with samples (allow and deny decisions counted)', () => {
    for (const n of ['authz_check_total', 'authz_check_duration_seconds_bucket', 'authz_jwks_keys']) {
      expect(exported.names).toContain(n);
    }
    expect([...exported.labels.get('authz_check_total')!.get('decision')!].sort()).toEqual(['allow', 'deny']);
    expect(exported.names).toContain('process_cpu_seconds_total');
  });

  it('every dashboard query names exported metrics, labels and values', () => {
    const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
    const exprs = dashboardExprs(dash);
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    const allowed = { reason: denyReasons() };
    expect(exprs.flatMap((e) => problemsOf(e, exported, allowed).map((p) => `${e}\n  → ${p}`))).toEqual([]);
  });

  it('every alert names exported metrics, labels and values', () => {
    const rules = alertRules();
    expect(rules.map((r) => r.alert)).toEqual([
      'EnvoyJwtAuthzKeysUnavailable',
      'EnvoyJwtAuthzDenyRateSpike',
      'EnvoyJwtAuthzStoreDown',
      'EnvoyJwtAuthzCheckLatencyHigh',
    ]);
    const allowed = { reason: denyReasons() };
    expect(
      rules.flatMap((r) => problemsOf(r.expr, exported, allowed).map((p) => `${r.alert}: ${p}`)),
    ).toEqual([]);
    // The latency alert reads the histogram the service exports.
    expect(rules[3].expr).toContain('authz_check_duration_seconds_bucket');
  });

  it('the checker reports a metric, a label or a value the service does not have', () => {
    const allowed = { reason: denyReasons() };
    expect(problemsOf('sum(rate(authz_checks_total[5m]))', exported)).toEqual([
      'authz_checks_total: not exported by the service',
    ]);
    expect(problemsOf('sum by (route) (rate(authz_check_total[5m]))', exported)).toEqual([
      'by (route): no metric of the expression has it',
    ]);
    expect(problemsOf('rate(authz_check_total{decison="deny"}[5m])', exported)).toEqual([
      'authz_check_total: no label decison',
    ]);
    expect(problemsOf('rate(authz_check_total{decision="denied"}[5m])', exported)).toEqual([
      'authz_check_total: decision="denied" is not a value it has',
    ]);
    expect(problemsOf('rate(authz_check_total{reason="store_down"}[5m])', exported, allowed)).toEqual([
      'authz_check_total: reason="store_down" is not a value it has',
    ]);
    expect(problemsOf('up{job="x"} == 0', exported)).toEqual(['up: not exported by the service']);
  });

  it('the dashboard is well formed: unique panel ids, one data source variable, every authz query filtered by $namespace and $job', () => {
    const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
    expect(dash.uid).toBe('envoy-jwt-authz');
    const ids = dash.panels.map((p: any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dash.templating.list.map((v: any) => v.name)).toEqual(['datasource', 'namespace', 'job']);
    for (const p of dash.panels) {
      expect(p.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const t of p.targets) {
        for (const sel of t.expr.matchAll(/(authz_|process_|nodejs_)[a-z_]+\{([^}]*)\}/g)) {
          expect(sel[2], t.expr).toContain('namespace=~"$namespace"');
          expect(sel[2], t.expr).toContain('job=~"$job"');
        }
      }
    }
  });
});

describe('finding the k8s tools: skip and say why, fail under CI=true', () => {
  it('a missing tool skips the suite with a reason; under CI=true it fails the run', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      expect(k8sToolsOrSkip('probe', ['promtool'], { PATH: '' })).toBeUndefined();
      expect(warn).toHaveBeenCalledWith(
        expect.stringMatching(/^\[k8s\] SKIPPED: probe: no promtool .*k8s:install/),
      );
      expect(() => k8sToolsOrSkip('probe', ['promtool'], { PATH: '', CI: 'true' })).toThrow(
        /^\[k8s\] FAILED \(CI=true\): probe: no promtool/,
      );
    } finally {
      warn.mockRestore();
    }
  });
});

const grafana = k8sToolsOrSkip('deploy/grafana (Grafana dashboard schema)', ['grafana-schema']);

describe.skipIf(!grafana)('the dashboard against Grafana’s dashboard schema (@grafana/schema)', () => {
  const check = (dash: unknown) =>
    unknownFields(GRAFANA_DASHBOARD_DTS, dash, { type: 'Dashboard', path: 'dashboard', openSpec: false });

  it('every field of the dashboard, its panels, targets and variables is one Grafana defines', () => {
    expect(check(JSON.parse(readFileSync(DASHBOARD, 'utf8')))).toEqual([]);
  });

  it('a misspelt field is reported', () => {
    const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
    dash.panels[0].gridpos = dash.panels[0].gridPos;
    dash.panels[1].fieldConfig.defaults.unitt = 's';
    dash.templating.list[1].includAll = true;
    dash.refreshh = '1m';
    expect(check(dash).sort()).toEqual([
      'dashboard.panels[0].gridpos: unknown field',
      'dashboard.panels[1].fieldConfig.defaults.unitt: unknown field',
      'dashboard.refreshh: unknown field',
      'dashboard.templating.list[1].includAll: unknown field',
    ]);
  });
});

const promtool = k8sToolsOrSkip('deploy/prometheus (promtool)', ['promtool'])?.promtool;

describe.skipIf(!promtool)('Prometheus alerting rules', () => {
  it('promtool check rules passes', async () => {
    const r = await run(promtool!, ['check', 'rules', ALERTS]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS: 4 rules found');
  });

  it('promtool test rules passes (each alert fires on its failure, not on a healthy job beside it)', async () => {
    const r = await run(promtool!, ['test', 'rules', ALERT_TESTS]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS');
  });

  it('the unit tests catch a changed threshold or a dropped condition', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'k8s-alerts-'));
    try {
      cpSync(ALERT_TESTS, join(dir, 'alerts.test.yaml'));
      const mutants = [
        (s: string) => s.replace('> 0.05\n', '> 0.1\n'),
        (s: string) => s.replace('> 0.5\n', '> 0.9\n'),
        (s: string) =>
          s.replace(
            /\n\s+or\n\s+sum by \(namespace, job\) \(rate\(authz_rate_limit_errors_total\[5m\]\)\) > 0/,
            '',
          ),
        (s: string) =>
          s.replace(
            'max by (namespace, job, issuer) (authz_jwks_keys) == 0',
            'max by (namespace, job, issuer) (authz_jwks_keys) < 0',
          ),
      ];
      const original = readFileSync(ALERTS, 'utf8');
      for (const mutate of mutants) {
        const mutated = mutate(original);
        expect(mutated).not.toBe(original);
        writeFileSync(join(dir, 'alerts.yaml'), mutated);
        const r = await run(promtool!, ['test', 'rules', join(dir, 'alerts.test.yaml')]);
        expect(r.code, r.stdout).not.toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
