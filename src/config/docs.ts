import { ConfigSchema } from './schema.js';
import { hasDefault, type SchemaNode } from './validate.js';

// What `npm run schema:generate` writes, made from the schema: the published JSON Schema
// (schema/config.schema.json) and the configuration reference (docs/configuration.md).
// The tests regenerate both in memory and fail when the committed files differ.

export const JSON_SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';

/** A copy of the schema as plain JSON (no TypeBox symbols). */
function plain(node: unknown): SchemaNode {
  return JSON.parse(JSON.stringify(node)) as SchemaNode;
}

/**
 * The published JSON Schema (2020-12): descriptions and defaults kept; a key the loader
 * fills is not required; the loader's `x-` notes are dropped (a computed default goes
 * into the description).
 */
export function configJsonSchema(): Record<string, unknown> {
  const publish = (node: SchemaNode): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      if (k.startsWith('x-')) continue;
      if (k === 'properties') {
        const props: Record<string, unknown> = {};
        for (const [name, prop] of Object.entries(v as Record<string, SchemaNode>))
          props[name] = publish(prop);
        out.properties = props;
      } else if (k === 'required') {
        const props = node.properties as Record<string, SchemaNode>;
        const required = (v as string[]).filter((name) => !hasDefault(props[name]!));
        if (required.length > 0) out.required = required;
      } else if (k === 'items' || k === 'not') out[k] = publish(v as SchemaNode);
      else if (k === 'anyOf') out.anyOf = (v as SchemaNode[]).map(publish);
      else if (k === 'patternProperties') {
        const pp: Record<string, unknown> = {};
        for (const [re, s] of Object.entries(v as Record<string, SchemaNode>)) pp[re] = publish(s);
        out.patternProperties = pp;
      } else out[k] = v;
    }
    if (typeof node['x-default-text'] === 'string' && typeof out.description === 'string')
      out.description = `${out.description} (default: ${node['x-default-text']})`;
    return out;
  };
  const body = publish(plain(ConfigSchema));
  return { $schema: JSON_SCHEMA_DIALECT, title: 'envoy-jwt-authz configuration', ...body };
}

/** The JSON Schema file's text. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

const md = (s: string) => s.replace(/\|/g, '\\|');

/** The type of a node in words. */
export function typeText(node: SchemaNode): string {
  if (node['x-comma-list']) return 'string or list of strings';
  if (node['x-shorthand']) return `${node['x-shorthand'] as string} name or object`;
  if (node.anyOf) {
    const kinds = (node.anyOf as SchemaNode[]).map((b) =>
      b.const !== undefined ? String(b.const) : typeText(b),
    );
    return kinds.join(' or ');
  }
  if (node.enum) return `one of ${(node.enum as string[]).join(', ')}`;
  const range = (): string => {
    const lo = node.minimum as number | undefined;
    const hi = node.maximum as number | undefined;
    if (lo !== undefined && hi !== undefined) return ` ${lo}–${hi}`;
    if (lo !== undefined) return ` ≥ ${lo}`;
    if (hi !== undefined) return ` ≤ ${hi}`;
    return '';
  };
  switch (node.type) {
    case 'string':
      return node.minLength ? 'non-empty string' : 'string';
    case 'integer':
      return `integer${range()}`;
    case 'number':
      return `number${range()}`;
    case 'boolean':
      return 'boolean';
    case 'null':
      return 'null';
    case 'array': {
      const items = node.items as SchemaNode;
      const objects =
        items.type === 'object' || (items.anyOf as SchemaNode[] | undefined)?.some((b) => b.properties);
      const what = objects
        ? 'objects'
        : items.anyOf
          ? `${typeText(items).replace(/ or /g, ', ')} values`
          : items.enum
            ? `values from ${(items.enum as string[]).join(', ')}`
            : `${typeText(items)}s`;
      return `${node.minItems ? 'non-empty ' : ''}list of ${what}`;
    }
    case 'object':
      if (node.properties) return 'object';
      return `map of name → ${typeText(Object.values(node.patternProperties as Record<string, SchemaNode>)[0]!)}`;
    default:
      return 'any';
  }
}

function defaultText(node: SchemaNode, required: boolean): string {
  if (typeof node['x-default-text'] === 'string') return node['x-default-text'];
  if ('default' in node) {
    const d: unknown = node.default;
    if (d !== null && typeof d === 'object' && !Array.isArray(d) && node.properties)
      return '(its keys’ defaults)';
    return `\`${JSON.stringify(d)}\``;
  }
  return required ? '**required**' : '—';
}

interface Row {
  path: string;
  node: SchemaNode;
  required: boolean;
}

/** Every key of the schema, depth first: `issuers[].jwks_cache.timeout_ms`. */
export function schemaRows(node: SchemaNode = plain(ConfigSchema), path = '', required = false): Row[] {
  const rows: Row[] = path ? [{ path, node, required }] : [];
  const objectOf = (n: SchemaNode): SchemaNode | undefined =>
    n.properties ? n : (n.anyOf as SchemaNode[] | undefined)?.find((b) => b.properties);
  const target = node.type === 'array' ? (node.items as SchemaNode) : node;
  const obj = objectOf(target);
  if (!obj) return rows;
  const base = node.type === 'array' ? `${path}[]` : path;
  const req = new Set<string>(obj.required ?? []);
  for (const [k, v] of Object.entries(obj.properties as Record<string, SchemaNode>))
    rows.push(...schemaRows(v, base ? `${base}.${k}` : k, req.has(k) && !hasDefault(v)));
  return rows;
}

/** docs/configuration.md. */
export function configurationMarkdown(): string {
  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated from the configuration schema by `npm run schema:generate`; do not edit by hand. -->',
    '',
    'Every key of the configuration file (YAML or JSON), grouped by section: its type, default',
    'and meaning. Unknown keys are errors. `[]` in a path stands for every item of a list.',
    'The same schema is published as [schema/config.schema.json](../schema/config.schema.json)',
    '(JSON Schema 2020-12) for editors; [examples/config.yaml](../examples/config.yaml) shows',
    'every key in use.',
    '',
    'Environment overrides: ' +
      schemaRows()
        .filter((r) => r.node['x-env'])
        .map((r) => `\`${r.node['x-env'] as string}\` (\`${r.path}\`)`)
        .join(', ') +
      '.',
    '',
  ];
  const top = ConfigSchema.properties;
  for (const key of Object.keys(top)) {
    const rows = schemaRows().filter(
      (r) => r.path === key || r.path.startsWith(`${key}.`) || r.path.startsWith(`${key}[]`),
    );
    const head = rows[0]!;
    out.push(`## \`${key}\``, '', md(String(head.node.description ?? '')), '');
    out.push('| key | type | default | description |', '| --- | --- | --- | --- |');
    for (const r of rows) {
      out.push(
        `| \`${r.path}\` | ${md(typeText(r.node))} | ${md(defaultText(r.node, r.required))} | ${md(String(r.node.description ?? ''))} |`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}
