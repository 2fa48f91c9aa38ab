// The offline Kubernetes / Prometheus tools for the deploy/ checks: where to find them,
// how to run them, how to skip visibly when they are missing.
//
// `npm run k8s:install` (scripts/k8s-tools-install.sh) installs them all:
//   helm                 .k8s-tools/bin/helm (or HELM_BIN, or helm on PATH)
//   kubernetes-validate  .venv-k8s/bin/kubernetes-validate (or on PATH)
//   promtool             on PATH (Debian's prometheus package) or PROMTOOL_BIN
//   CRD models           .k8s-tools/node_modules/@kubernetes-models/*
//   Grafana schema       .k8s-tools/node_modules/@grafana/schema (the Dashboard type)
// A suite whose tools are missing is skipped and says why ("[k8s] SKIPPED: …"), except
// under CI=true where the run fails, as with a missing Envoy (see envoy.ts).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import YAML from 'yaml';
import { REPO_ROOT } from './envoy.js';

export const K8S_TOOLS_DIR = join(REPO_ROOT, '.k8s-tools');
export const K8S_VENV = join(REPO_ROOT, '.venv-k8s');
export const CHART_DIR = join(REPO_ROOT, 'deploy', 'helm', 'envoy-jwt-authz');
/** Grafana's dashboard model (interface Dashboard), from npm @grafana/schema. */
export const GRAFANA_DASHBOARD_DTS = join(
  K8S_TOOLS_DIR,
  'node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts',
);

export type K8sTool = 'helm' | 'kubernetes-validate' | 'promtool' | 'crd-models' | 'grafana-schema';

export interface K8sTools {
  helm?: string;
  kubernetesValidate?: string;
  promtool?: string;
  /** node_modules folder holding @kubernetes-models/*. */
  models?: string;
  /** Why each missing tool is missing. */
  missing: Partial<Record<K8sTool, string>>;
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

export function run(
  bin: string,
  args: string[],
  opts: { cwd?: string; input?: string; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      bin,
      args,
      { cwd: opts.cwd ?? REPO_ROOT, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 32 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Finds every tool (see the top of this file). */
export function findK8sTools(env: NodeJS.ProcessEnv = process.env): K8sTools {
  const missing: K8sTools['missing'] = {};
  const first = (...c: (string | undefined)[]) => c.find((p) => p && existsSync(p));
  const hint = 'run `npm run k8s:install`';
  const helm = first(env.HELM_BIN, join(K8S_TOOLS_DIR, 'bin', 'helm'), onPath('helm', env));
  if (!helm) missing.helm = `no helm (HELM_BIN unset, no ${K8S_TOOLS_DIR}/bin/helm, none on PATH); ${hint}`;
  const kubernetesValidate = first(
    join(K8S_VENV, 'bin', 'kubernetes-validate'),
    onPath('kubernetes-validate', env),
  );
  if (!kubernetesValidate)
    missing['kubernetes-validate'] = `no kubernetes-validate (no ${K8S_VENV}, none on PATH); ${hint}`;
  const promtool = first(env.PROMTOOL_BIN, onPath('promtool', env));
  if (!promtool) missing.promtool = `no promtool (PROMTOOL_BIN unset, none on PATH); ${hint}`;
  const models = join(K8S_TOOLS_DIR, 'node_modules');
  const haveModels = existsSync(join(models, '@kubernetes-models', 'istio'));
  if (!haveModels) missing['crd-models'] = `no CRD models in ${models}/@kubernetes-models; ${hint}`;
  if (!existsSync(GRAFANA_DASHBOARD_DTS)) missing['grafana-schema'] = `no ${GRAFANA_DASHBOARD_DTS}; ${hint}`;
  return { helm, kubernetesValidate, promtool, models: haveModels ? models : undefined, missing };
}

/**
 * For a suite: the tools when all of `need` are there, or undefined after printing why
 * the suite skips. Under CI=true a missing tool throws (the run fails) instead.
 */
export function k8sToolsOrSkip(
  suite: string,
  need: K8sTool[],
  env: NodeJS.ProcessEnv = process.env,
): K8sTools | undefined {
  const tools = findK8sTools(env);
  const reasons = need.map((t) => tools.missing[t]).filter((r): r is string => r !== undefined);
  if (reasons.length === 0) return tools;
  const line = `[k8s] SKIPPED: ${suite}: ${reasons.join('; ')}`;
  if (env.CI === 'true') throw new Error(line.replace('SKIPPED', 'FAILED (CI=true)'));
  console.warn(line);
  return undefined;
}

/** `helm template` of the chart: the rendered objects (comments and empty documents dropped). */
export async function helmTemplate(
  helm: string,
  args: string[],
  release = 'envoy-jwt-authz',
  namespace = 'authz',
): Promise<any[]> {
  const r = await run(helm, ['template', release, CHART_DIR, '--namespace', namespace, ...args]);
  if (r.code !== 0) throw new Error(`helm template ${args.join(' ')} failed: ${r.stderr}`);
  return parseManifests(r.stdout);
}

/** Every object in a multi-document YAML stream. */
export function parseManifests(text: string): any[] {
  return YAML.parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(d.errors.map((e) => e.message).join('; '));
      return d.toJS();
    })
    .filter((o) => o && typeof o === 'object');
}

/** The @kubernetes-models package that holds a CRD group's models. */
const MODEL_PACKAGES: Record<string, string> = {
  'security.istio.io': 'istio',
  'networking.istio.io': 'istio',
  'install.istio.io': 'istio',
  'telemetry.istio.io': 'istio',
  'gateway.envoyproxy.io': 'envoy-gateway',
  'gateway.networking.k8s.io': 'gateway-api',
  'monitoring.coreos.com': 'prometheus-operator',
};

/** True for objects of a CRD group that the models cover (everything else is core Kubernetes). */
export function isCustomResource(obj: { apiVersion?: string }): boolean {
  return String(obj.apiVersion).split('/')[0]! in MODEL_PACKAGES;
}

/**
 * Validates a custom resource against its CRD's OpenAPI schema (the compiled validator
 * in @kubernetes-models/*), and, since those schemas allow unknown fields, also looks
 * every field up in the model's type declarations (a misspelt field is reported).
 * Returns the problems ([] when valid).
 */
export async function validateCustomResource(models: string, obj: any): Promise<string[]> {
  const [group, version] = String(obj.apiVersion).split('/');
  const pkg = group !== undefined ? MODEL_PACKAGES[group] : undefined;
  if (!pkg || !version) return [`${obj.apiVersion} ${obj.kind}: no CRD model for this group`];
  const file = join(models, '@kubernetes-models', pkg, group!, version, `${obj.kind}.js`);
  if (!existsSync(file)) return [`${obj.apiVersion} ${obj.kind}: no model (${file})`];
  const mod = await import(pathToFileURL(file).href);
  const Model = mod[obj.kind] ?? mod.default;
  const where = `${obj.apiVersion} ${obj.kind} ${obj.metadata?.name}`;
  try {
    new Model(obj).validate();
  } catch (err) {
    return [`${where}: ${(err as Error).message}`];
  }
  return unknownFields(file.replace(/\.js$/, '.d.ts'), obj).map((p) => `${where}: ${p}`);
}

const checkers = new Map<string, { checker: ts.TypeChecker; root: ts.Type }>();

/**
 * The fields of `obj` that its model's declared type (interface I<Kind> in the .d.ts)
 * does not have, as paths. A CRD whose spec is left open (x-kubernetes-preserve-unknown-fields:
 * the model declares no `spec`) is not looked into.
 */
export function unknownFields(
  dts: string,
  obj: any,
  opts: { type?: string; path?: string; openSpec?: boolean } = {},
): string[] {
  const typeName = opts.type ?? `I${obj.kind}`;
  const key = `${dts}#${typeName}`;
  let entry = checkers.get(key);
  if (!entry) {
    const program = ts.createProgram([dts], { noEmit: true, skipLibCheck: true, types: [] });
    const checker = program.getTypeChecker();
    const iface = program
      .getSourceFile(dts)!
      .statements.find(
        (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === typeName,
      );
    if (!iface) return [`no interface ${typeName} in ${dts}`];
    checkers.set(key, (entry = { checker, root: checker.getTypeAtLocation(iface) }));
  }
  const { checker, root } = entry;
  const open = (opts.openSpec ?? true) && !checker.getPropertyOfType(root, 'spec');
  const out: string[] = [];
  // A value checked against every type it may have (unions, intersections of unions):
  // a field is unknown only when none of them declares it.
  const walk = (value: unknown, types: ts.Type[], path: string): void => {
    if (value === null || typeof value !== 'object') return;
    const candidates = types
      .map((t) => checker.getNonNullableType(t))
      .flatMap((t) => (t.isUnion() ? t.types : [t]))
      .filter((t) => !(t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Null)));
    if (candidates.some((t) => t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown))) return;
    if (Array.isArray(value)) {
      const elements = candidates
        .flatMap((t) => (t.isIntersection() ? t.types : [t]))
        .filter((t) => checker.isArrayType(t))
        .map((t) => checker.getTypeArguments(t as ts.TypeReference)[0]!);
      if (elements.length === 0) out.push(`${path}: a list where none is expected`);
      else value.forEach((v, i) => walk(v, elements, `${path}[${i}]`));
      return;
    }
    const objects = candidates.filter((t) => t.flags & ts.TypeFlags.Object || t.isIntersection());
    if (objects.length === 0 || objects.some((t) => checker.getIndexInfosOfType(t).length > 0)) return;
    for (const [key, v] of Object.entries(value)) {
      const props = objects.map((t) => checker.getPropertyOfType(t, key)).filter((p) => p !== undefined);
      if (props.length === 0) out.push(`${path}.${key}: unknown field`);
      else
        walk(
          v,
          props.map((p) => checker.getTypeOfSymbol(p)),
          `${path}.${key}`,
        );
    }
  };
  const checked = { ...obj };
  if (open) delete checked.spec;
  walk(checked, [root], opts.path ?? obj.kind);
  return out;
}
