import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  configJsonSchema,
  configJsonSchemaText,
  configurationMarkdown,
  schemaRows,
} from '../../../src/config/docs.js';
import { loadConfigFile } from '../../../src/config/load.js';

// The generated files are current, the complete reference names every key of the schema,
// and every example config declares, and passes, the published JSON Schema and the loader.

const root = fileURLToPath(new URL('../../../', import.meta.url));
const read = (file: string) => readFileSync(join(root, file), 'utf8');

/** Every .yaml/.yml under examples/ and docs/. */
function exampleConfigs(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(join(root, dir))) {
      const rel = join(dir, name);
      if (statSync(join(root, rel)).isDirectory()) walk(rel);
      else if (/\.ya?ml$/.test(name)) out.push(rel);
    }
  };
  walk('examples');
  walk('docs');
  return out;
}

/**
 * The reference with its optional keys uncommented: a comment line that is a YAML key
 * (`# key: value`, `#   - key: value`) loses its "# ", so it sits at the indentation it
 * shows. Prose comments never start with `word:`.
 */
function uncommentKeys(text: string): string {
  return text
    .split('\n')
    .map((line) => line.replace(/^(\s*)# ((?:\s*)(?:- )?[a-z_][a-z0-9_]*:(?:\s|$))/, '$1$2'))
    .join('\n');
}

/** Whether a key path (`issuers[].jwks_cache.timeout_ms`) occurs somewhere in a document. */
function present(doc: unknown, segments: string[]): boolean {
  if (segments.length === 0) return true;
  const [head, ...rest] = segments as [string, ...string[]];
  if (head.endsWith('[]')) {
    const list = (doc as Record<string, unknown> | undefined)?.[head.slice(0, -2)];
    return Array.isArray(list) && list.some((item) => present(item, rest));
  }
  if (doc === null || typeof doc !== 'object' || !(head in doc)) return false;
  return present((doc as Record<string, unknown>)[head], rest);
}

describe('generated configuration files', () => {
  it('schema/config.schema.json is what npm run schema:generate writes', () => {
    expect(read('schema/config.schema.json'), 'stale: run npm run schema:generate').toBe(
      configJsonSchemaText(),
    );
  });

  it('docs/configuration.md is what npm run schema:generate writes', () => {
    expect(read('docs/configuration.md'), 'stale: run npm run schema:generate').toBe(configurationMarkdown());
  });

  it('the JSON Schema is valid 2020-12 and documents every key', () => {
    const ajv = new Ajv2020({ allErrors: true });
    expect(ajv.validateSchema(configJsonSchema()), JSON.stringify(ajv.errors)).toBe(true);
    const undocumented = schemaRows()
      .filter((r) => typeof r.node.description !== 'string' || r.node.description === '')
      .map((r) => r.path);
    expect(undocumented).toEqual([]);
  });
});

describe('example configs', () => {
  const files = exampleConfigs();
  const ajv = new Ajv2020({ allErrors: true });
  const validate = ajv.compile(configJsonSchema());

  it('finds the examples', () => {
    expect(files).toEqual(expect.arrayContaining(['examples/config.yaml', 'examples/demo-config.yaml']));
  });

  it.each(files)('%s names the schema on its first line', (file) => {
    const schemaPath = relative(join(root, file, '..'), join(root, 'schema/config.schema.json'));
    expect(read(file).split('\n')[0]).toBe(`# yaml-language-server: $schema=${schemaPath}`);
  });

  it.each(files)('%s passes the JSON Schema and the loader', (file) => {
    const doc: unknown = YAML.parse(read(file));
    expect(validate(doc), JSON.stringify(validate.errors, null, 2)).toBe(true);
    expect(() => loadConfigFile(join(root, file), {})).not.toThrow();
  });

  it('examples/config.yaml (the complete reference) shows every key of the schema', () => {
    const doc: unknown = YAML.parse(uncommentKeys(read('examples/config.yaml')), { uniqueKeys: false });
    const missing = schemaRows()
      .map((r) => r.path)
      .filter((path) => !present(doc, path.split('.')));
    expect(missing).toEqual([]);
  });

  it('a key missing from the reference is noticed, commented or not', () => {
    const text = 'server:\n  # workers: 2\nissuers:\n  - name: a\n';
    const doc: unknown = YAML.parse(uncommentKeys(text));
    expect(present(doc, ['server', 'workers'])).toBe(true);
    expect(present(doc, ['issuers[]', 'name'])).toBe(true);
    expect(present(doc, ['issuers[]', 'issuer'])).toBe(false);
    expect(present(YAML.parse(uncommentKeys('# Prose: about keys\n')), ['Prose'])).toBe(false);
  });
});
