// Envoy access logs never write a token: no query string (where `?access_token=…` travels)
// and no credential header (Authorization, Cookie, DPoP, Proxy-Authorization, our minted
// token's header), in every Envoy config of the repo (envoy/, examples/, docs), every
// Envoy fragment in the docs, and every access-log field the tests and benchmarks add.
// The real Envoy's log file is checked in test/e2e/envoy.e2e.test.ts.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  accessLogFormatProblems,
  accessLogStrings,
  ENVOY_DOCS,
  envoyFragments,
  REPO_ROOT,
} from '../helpers/envoy.js';

/** An operator, spelt so that this file holds none of the bad ones it tests. */
const op = (body: string) => `%${body}%`;

const SKIP = new Set(['node_modules', 'dist', '.git', '.venv-envoy', 'coverage', 'protos']);
function repoFiles(dir = REPO_ROOT): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (SKIP.has(e.name)) return [];
    const path = join(dir, e.name);
    return e.isDirectory() ? repoFiles(path) : [relative(REPO_ROOT, path)];
  });
}
const files = repoFiles();
const read = (file: string) => readFileSync(join(REPO_ROOT, file), 'utf8');

/** Problems of every string under an access-log key, as "where: what". */
function docProblems(where: string, doc: unknown): string[] {
  const problems = accessLogStrings(doc).flatMap(({ at, value }) =>
    accessLogFormatProblems(value).map((p) => `${where} ${at}: ${p}`),
  );
  // Istio writes its default format, which logs the path with its query, when only a file is set.
  const mesh = (doc as { spec?: { meshConfig?: Record<string, unknown> } } | null)?.spec?.meshConfig ?? doc;
  if (mesh && typeof mesh === 'object' && 'accessLogFile' in mesh && !('accessLogFormat' in mesh))
    problems.push(`${where}: accessLogFile without accessLogFormat (Istio's default format logs the query)`);
  return problems;
}

describe('the access-log format check', () => {
  it.each([
    op('REQ(:PATH)'),
    op('REQ(:path)'),
    op('REQ(X-ENVOY-ORIGINAL-PATH?:PATH)'),
    op('REQ(X-ENVOY-ORIGINAL-PATH?:PATH):256'),
    op('PATH'),
    op('PATH(WQ)'),
    op('PATH(WQ:ORIG)'),
    op('QUERY_PARAM(access_token)'),
    op('CEL(request.path)'),
    op('CEL(request.query)'),
    op('REQ(AUTHORIZATION)'),
    op('REQ(authorization)'),
    op('REQ(Proxy-Authorization)'),
    op('REQ(COOKIE)'),
    op('REQ(DPOP)'),
    op('REQ(X-JWT-ASSERTION)'),
    op('REQ(X-MISSING?AUTHORIZATION)'),
    op('REQ_WITHOUT_QUERY(AUTHORIZATION)'),
    op('RESP(SET-COOKIE)'),
    op("CEL(request.headers['authorization'])"),
    op('CEL(request.headers)'),
    `[${op('START_TIME')}] "${op('REQ(:METHOD)')} ${op('REQ(X-ENVOY-ORIGINAL-PATH?:PATH)')} ${op('PROTOCOL')}"`,
  ])('refuses %s', (format) => {
    expect(accessLogFormatProblems(format)).not.toEqual([]);
  });

  it.each([
    op('REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)'),
    op('REQ_WITHOUT_QUERY(:PATH)'),
    op('REQ_WITHOUT_QUERY(:PATH):100'),
    op('PATH(NQ)'),
    op('PATH(NQ:ORIG)'),
    op('REQ(:METHOD)'),
    op('REQ(:AUTHORITY)'),
    op('REQ(X-REQUEST-ID)'),
    op('RESP(WWW-AUTHENTICATE)'),
    op('DYNAMIC_METADATA(envoy.filters.http.ext_authz)'),
    op('CEL(request.url_path)'),
    op('RESPONSE_CODE'),
    '100%',
  ])('accepts %s', (format) => {
    expect(accessLogFormatProblems(format)).toEqual([]);
  });

  it('finds formats under access_log, log_format and Istio keys, not elsewhere', () => {
    const doc = {
      access_log: [{ typed_config: { log_format: { json_format: { path: op('REQ(:PATH)') } } } }],
      request_headers_to_add: [{ header: { value: op('REQ(:METHOD)') } }],
      spec: { meshConfig: { accessLogFile: '/dev/stdout', accessLogFormat: op('PATH') } },
    };
    expect(accessLogStrings(doc).map((s) => s.at)).toEqual([
      'access_log[0].typed_config.log_format.json_format.path',
      'spec.meshConfig.accessLogFormat',
    ]);
    expect(docProblems('x', doc)).toHaveLength(2);
    expect(docProblems('x', { spec: { meshConfig: { accessLogFile: '/dev/stdout' } } })).toHaveLength(1);
  });
});

describe('no access log in the repo writes a query string or a credential', () => {
  const yamlFiles = files.filter((f) => /\.ya?ml$/.test(f));

  it('finds the Envoy configs to check (envoy/envoy.yaml among them)', () => {
    expect(yamlFiles).toContain('envoy/envoy.yaml');
    const withLogs = yamlFiles.filter((f) =>
      YAML.parseAllDocuments(read(f)).some((d) => accessLogStrings(d.toJS()).length > 0),
    );
    expect(withLogs).toContain('envoy/envoy.yaml');
  });

  it('every YAML file (Envoy bootstraps, Istio mesh config, examples)', () => {
    const problems = yamlFiles.flatMap((f) =>
      YAML.parseAllDocuments(read(f)).flatMap((d, i) => docProblems(`${f}#${i}`, d.toJS())),
    );
    expect(problems).toEqual([]);
  });

  it('every Envoy fragment in the docs (every Markdown file)', () => {
    const markdown = files.filter((f) => f.endsWith('.md'));
    const fragments = markdown.flatMap(envoyFragments);
    expect(fragments.length).toBeGreaterThan(5);
    // configs.e2e validates the fragments of ENVOY_DOCS on the real Envoy: none lives elsewhere
    expect([...new Set(fragments.map((f) => f.file))].filter((f) => !ENVOY_DOCS.includes(f))).toEqual([]);
    const problems = fragments.flatMap((f) => {
      const doc: unknown = YAML.parse(f.text);
      // A bare list of log fields (`sub: "%DYNAMIC_METADATA(…)%"`) is an access-log fragment as a whole.
      const strings =
        accessLogStrings(doc).length > 0 ? accessLogStrings(doc) : accessLogStrings(doc, '', true);
      return strings.flatMap(({ at, value }) =>
        accessLogFormatProblems(value).map((p) => `${f.file}:${f.line} ${at}: ${p}`),
      );
    });
    expect(problems).toEqual([]);
  });

  it('every format string the tests and benchmarks add to Envoy configs', () => {
    const self = relative(REPO_ROOT, new URL(import.meta.url).pathname);
    const sources = files.filter((f) => /^(test|bench|scripts)\/.*\.(ts|mts|mjs|js)$/.test(f) && f !== self);
    expect(sources).toContain('test/e2e/envoy.e2e.test.ts');
    const problems = sources.flatMap((f) => accessLogFormatProblems(read(f)).map((p) => `${f}: ${p}`));
    expect(problems).toEqual([]);
  });
});
